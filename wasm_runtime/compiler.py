"""Precompiling an untrusted module in a child process the host can stop: bounded in wall
time (killed), CPU time and address space (rlimits), and in the artifact it may produce.

Static bounds (``shape.ModuleBounds``) refuse the obvious compile bombs before this runs;
what they cannot foresee (a module within them that costs the compiler minutes or GiBs)
ends here as ``InvalidModule`` instead of holding the node's cores or memory.

The child is a fork of the node's compile zygote (:mod:`wasm_runtime.compile_zygote`),
which has wasmtime imported already: a deploy's compile starts in milliseconds instead of
the ~100 ms a fresh Python and its imports took.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

from wasm_runtime.compile_zygote import EXIT_INVALID, EXIT_NO_MEMORY, FRAME
from wasm_runtime.errors import InvalidModule, WasmRuntimeError
from wasm_runtime.types import MIB

_STDERR_TAIL = 2000


@dataclasses.dataclass(frozen=True)
class CompileLimits:
    # Measured here (TCG host, 2 cores): 90,000 tiny functions, near the static bound,
    # compile in 4.4 s to a 30 MiB artifact; ordinary modules in well under a second.
    timeout_s: float = 30.0
    memory_bytes: int = 2048 * MIB  # the child's address space
    # The most a VM loads. The guest keeps an artifact once, as a file it maps
    # (wasm_runtime.staging), so a 100 MiB module (its data compiles to as much) runs in
    # a 512 MiB guest; whole in one frame it once took the guest down while loading.
    artifact_bytes: int = 128 * MIB


# Components are larger: a componentize-py app is an 18 MB component (a CPython) that
# compiled here in 4 s idle and 20 s with both cores busy, to a 40 MB artifact; Spin's
# Python SDK builds 38 MB ones.
COMPONENT_COMPILE_LIMITS = CompileLimits(timeout_s=300.0, memory_bytes=8192 * MIB)


class CompileWorkerError(WasmRuntimeError):
    """The compile worker itself failed (not the module): a bug or a broken install."""


class _Zygote:
    """This process's compile zygote (:mod:`wasm_runtime.compile_zygote`), started on first
    use and again after it died; ended with the process (``atexit``; it also ends by itself
    when this process goes, however)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def request(self, header: dict[str, int]) -> socket.socket:
        """A socket to one child compiling under ``header``'s limits."""
        ours, theirs = socket.socketpair()
        try:
            with self._lock:
                if self._proc is not None and self._proc.poll() is not None:
                    self._stop()  # it died since the last request: a new one
                for attempt in (1, 2):
                    if self._control is None:
                        self._start()
                    assert self._control is not None
                    try:
                        socket.send_fds(
                            self._control, [json.dumps(header).encode()], [theirs.fileno()]
                        )
                        break
                    except OSError as err:  # it died: start another, once
                        self._stop()
                        if attempt == 2:
                            raise CompileWorkerError(f"the compile zygote failed: {err}") from err
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return ours

    def _start(self) -> None:
        mine, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [*ZYGOTE_ARGV],
                stdin=child.fileno(),
                stdout=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as err:
            mine.close()
            raise CompileWorkerError(f"the compile zygote did not start: {err}") from err
        finally:
            child.close()
        self._control = mine

    def _stop(self) -> None:
        if self._control is not None:
            self._control.close()  # EOF: it kills its children and exits
            self._control = None
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self._stop()


ZYGOTE_ARGV = (sys.executable, "-m", "wasm_runtime.compile_zygote")
_ZYGOTE = _Zygote()
atexit.register(_ZYGOTE.close)


def zygote_pid() -> int | None:
    """The compile zygote's pid (None before the first compile): tests look for its children."""
    return _ZYGOTE.pid


class _Reply:
    """What a compile child and the zygote wrote: its pid, its artifact or refusal, and its
    exit code."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.pid: int | None = None
        self.payload: tuple[bytes, bytes] | None = None  # (tag, bytes)
        self.code: int | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= FRAME.size:
            tag, length = FRAME.unpack_from(self._buf)
            if len(self._buf) < FRAME.size + length:
                return
            body = bytes(self._buf[FRAME.size : FRAME.size + length])
            del self._buf[: FRAME.size + length]
            if tag == b"P":
                self.pid = struct.unpack(">q", body)[0]
            elif tag == b"S":
                self.code = struct.unpack(">q", body)[0]
            else:
                self.payload = (tag, body)


async def precompile_isolated(wasm: bytes, limits: CompileLimits | None = None) -> bytes:
    """The artifact of ``wasm`` as ``engine.precompile`` makes it, compiled in a child."""
    limits = limits or CompileLimits()
    # CPU time counts every compiler thread, so it bounds an orphaned child too (the
    # parent is what enforces the wall time).
    cpu_s = math.ceil(limits.timeout_s * (os.cpu_count() or 1)) + 2
    header = {
        "artifact_max": limits.artifact_bytes,
        "cpu_s": cpu_s,
        "memory_bytes": limits.memory_bytes,
    }
    for attempt in (1, 2):
        reply = await _compile_once(wasm, header, limits.timeout_s)
        if reply.pid is None and reply.code is None and attempt == 1:
            continue  # the zygote died holding the request (no child, no word): once more
        return _outcome(reply, limits)
    raise AssertionError("unreachable")


async def _compile_once(wasm: bytes, header: dict[str, int], timeout_s: float) -> _Reply:
    loop = asyncio.get_running_loop()
    sock = await asyncio.to_thread(_ZYGOTE.request, header)  # the first starts the zygote
    sock.setblocking(False)
    reply = _Reply()
    try:
        try:
            async with asyncio.timeout(timeout_s):
                await _exchange(loop, sock, wasm, reply)
        except TimeoutError:
            raise InvalidModule(
                "compile_timeout",
                f"compiling the module took longer than the limit of {timeout_s:g} s",
            ) from None
    finally:
        if reply.code is None:  # timed out or cancelled: never leave it running
            await _kill(loop, sock, reply)
        sock.close()
    return reply


async def _exchange(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, wasm: bytes, reply: _Reply
) -> None:
    with contextlib.suppress(OSError):  # a child that died early reads no more
        await loop.sock_sendall(sock, wasm)
        sock.shutdown(socket.SHUT_WR)
    # A reset ends the stream like EOF: the zygote died with the request in its hands.
    with contextlib.suppress(ConnectionResetError):
        while data := await loop.sock_recv(sock, 1 << 20):
            reply.feed(data)


async def _kill(loop: asyncio.AbstractEventLoop, sock: socket.socket, reply: _Reply) -> None:
    """Kill the child (its pid is known before it reads the module) and wait until the
    zygote has reaped it."""
    with contextlib.suppress(OSError):  # TimeoutError is one: a zygote that hangs
        async with asyncio.timeout(5):
            while reply.pid is None and (data := await loop.sock_recv(sock, 1 << 20)):
                reply.feed(data)
            if reply.pid is not None:
                os.kill(reply.pid, signal.SIGKILL)
            while reply.code is None and (data := await loop.sock_recv(sock, 1 << 20)):
                reply.feed(data)


def _outcome(reply: _Reply, limits: CompileLimits) -> bytes:
    code, (tag, body) = reply.code, reply.payload or (b"", b"")
    if code == 0 and tag == b"A":
        return body
    if code == EXIT_INVALID and tag == b"E":
        refused = json.loads(body)
        raise InvalidModule(refused["reason"], refused["message"])
    if code == EXIT_NO_MEMORY or (code is not None and code < 0):
        # Out of address space (Python's MemoryError, or the compiler aborting on a failed
        # allocation) or past its CPU time: the module costs more than a node gives it.
        raise InvalidModule(
            "compile_resources",
            f"compiling the module needed more than {limits.memory_bytes // MIB} MiB of "
            f"memory or {limits.timeout_s:g} s of the host's cores",
        )
    detail = body.decode(errors="replace")[-_STDERR_TAIL:]
    raise CompileWorkerError(f"the compile worker exited with {code}: {detail}")
