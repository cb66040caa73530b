"""The compile zygote of :mod:`wasm_runtime.compiler`: one process per node, with wasmtime
already imported, that forks a child per module to compile.

Why: a fresh ``python -m`` child per deploy spent about 100 ms starting Python and
importing wasmtime, against 2-5 ms to compile a small module. A fork of this process
starts with both done.

Protocol. The node's end of the control socket is this process's stdin (a
``SOCK_SEQPACKET`` pair). Each request is one message: a JSON header
``{"artifact_max", "cpu_s", "memory_bytes"}`` with one descriptor attached, a stream
socket for that request. The child reads the module from it until EOF, then writes
frames (a tag byte, an 8-byte big-endian length, the payload): ``P`` its pid, then ``A``
the artifact or ``E`` a refusal as JSON, and exits with one of the ``EXIT_*`` codes. Once it
is reaped, this process writes ``S`` (its exit code, negative for a signal) and closes the
socket. EOF on the control socket (the node ended, however) kills every child and ends
this process.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import traceback

FRAME = struct.Struct(">cq")
# A child's exit codes besides 0: the module refused (its ``E`` frame says why), out of
# address space, and the limits leaving the worker itself no room (ours, not the module's).
EXIT_INVALID = 3
EXIT_NO_MEMORY = 4
EXIT_WORKER = 5


def frame(tag: bytes, payload: bytes) -> bytes:
    return FRAME.pack(tag, len(payload)) + payload


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _own_address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(fd: int, header: dict[str, int]) -> int:
    """In the forked child: compile what arrives on ``fd`` under the header's limits."""
    from wasm_runtime.engine import precompile
    from wasm_runtime.errors import InvalidModule

    _write(fd, frame(b"P", struct.pack(">q", os.getpid())))
    # All of it first, whatever follows: a socket closed with bytes unread resets the
    # node's end before it has read the answer.
    wasm = _read_all(fd)
    memory = header["memory_bytes"]
    if _own_address_space() >= memory:
        message = f"the compile worker alone needs more than {memory} bytes of address space"
        _write(fd, frame(b"E", message.encode()))
        return EXIT_WORKER
    cpu = header["cpu_s"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort is an answer, not a dump
    try:
        artifact = precompile(wasm)
    except InvalidModule as refused:
        refusal = {"reason": refused.reason, "message": refused.message}
        _write(fd, frame(b"E", json.dumps(refusal).encode()))
        return EXIT_INVALID
    except MemoryError:
        return EXIT_NO_MEMORY
    if len(artifact) > header["artifact_max"]:
        message = (
            f"the compiled module is {len(artifact)} bytes, "
            f"above the limit of {header['artifact_max']}"
        )
        refusal = {"reason": "artifact_too_large", "message": message}
        _write(fd, frame(b"E", json.dumps(refusal).encode()))
        return EXIT_INVALID
    _write(fd, frame(b"A", artifact))
    return 0


def serve(control: socket.socket) -> None:
    # Imported before any fork, so no child pays for it (this is the point of the zygote).
    import wasm_runtime.engine  # noqa: F401

    children: dict[int, int] = {}  # pid -> its request's descriptor
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj is control:
                    try:
                        data, fds, _flags, _addr = socket.recv_fds(control, 4096, 1)
                    except OSError:
                        data, fds = b"", []
                    if not data:
                        return  # the node is gone
                    pid = _fork(json.loads(data), fds[0], control, wake_r, wake_w)
                    children[pid] = fds[0]
                else:
                    os.read(wake_r, 4096)
                _reap(children)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        for pid in list(children):
            os.waitpid(pid, 0)


def _fork(header: dict[str, int], fd: int, *inherited: socket.socket | int) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = EXIT_WORKER
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for held in inherited:  # a child holds only its own request
            os.close(held if isinstance(held, int) else held.fileno())
        code = _child(fd, header)
    except MemoryError:
        code = EXIT_NO_MEMORY
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _reap(children: dict[int, int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = children.pop(pid, None)
        if fd is None:
            continue
        try:
            code = os.waitstatus_to_exitcode(status)
            _write(fd, frame(b"S", struct.pack(">q", code)))
        except OSError:
            pass  # the node stopped waiting for it
        finally:
            os.close(fd)


if __name__ == "__main__":
    serve(socket.socket(fileno=sys.stdin.fileno()))
