"""Closing a listening socket without resetting what the kernel already accepted.

When a listening TCP socket closes, the kernel resets every connection in its accept
queue: clients that had connected and sent their request get a reset, not an answer
(a call cut at shutdown). So a stopping server first makes the kernel drop new SYNs on
its listening sockets (a classic BPF filter: handshakes already under way still finish),
then keeps accepting until their accept queues stay empty, and only then closes them.
A client refused this way retries its SYN and is refused outright once the socket is
closed.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Protocol

SO_ATTACH_FILTER = 26
# struct tcp_info: for a listening socket, tcpi_unacked is its accept queue's length.
_TCP_INFO_UNACKED = struct.Struct("=I")
_TCP_INFO_UNACKED_AT = 24


class _Insn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Insn))]


# The TCP header starts the packet a listening socket's filter sees: its flags are byte 13.
# A segment with SYN and without ACK (a new connection) is dropped; anything else is kept.
_DROP_NEW_CONNECTIONS = (
    (0x30, 0, 0, 13),  # ldb [13]          A = the TCP flags
    (0x54, 0, 0, 0x12),  # and #SYN|ACK
    (0x15, 0, 1, 0x02),  # jeq #SYN, drop, keep
    (0x06, 0, 0, 0),  # drop: ret #0
    (0x06, 0, 0, 0xFFFFFFFF),  # keep: ret #-1 (all of it)
)


class SocketLike(Protocol):
    def setsockopt(self, level: int, optname: int, value: bytes, /) -> None: ...
    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...


def refuse_new_connections(sock: SocketLike) -> None:
    """New connections to ``sock`` no longer complete; those under way and queued do."""
    insns = (_Insn * len(_DROP_NEW_CONNECTIONS))(*(_Insn(*i) for i in _DROP_NEW_CONNECTIONS))
    prog = _Prog(len(_DROP_NEW_CONNECTIONS), insns)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(prog))


def accept_queue_length(sock: SocketLike) -> int:
    """Connections the kernel accepted on listening ``sock`` that nobody has taken yet."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    (unacked,) = _TCP_INFO_UNACKED.unpack_from(info, _TCP_INFO_UNACKED_AT)
    return int(unacked)
