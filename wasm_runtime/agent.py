"""The guest agent: PID 1 of the microVM, serving shim requests over a virtio-serial port.

The agent reads frames on one thread and runs loads and invocations on a small
thread pool, so several requests can be in flight; replies are written under a
lock in whatever order they finish. Nothing a peer sends can stop it: a bad
frame gets an error reply with ``id: None``, a failing handler gets an error
reply with the request's id, and the loop carries on.

It also runs on the host (``Agent`` over any byte channel), which is how the
image builder traces the modules the guest needs and how unit tests drive it.
"""

from __future__ import annotations

import collections
import itertools
import os
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from wasm_runtime import guestos, protocol
from wasm_runtime.errors import (
    ErrorCode,
    FunctionNotLoaded,
    InvalidModule,
    ProtocolError,
    UnknownOp,
)
from wasm_runtime.hostcalls import HostAnswer, HostRequest
from wasm_runtime.hostfuncs import Bridge
from wasm_runtime.protocol import Event, Op
from wasm_runtime.replies import AgentStats, Hello, LoadReply, ResumeReply
from wasm_runtime.staging import Staging
from wasm_runtime.types import Invocation

if TYPE_CHECKING:
    from wasm_runtime.component.runner import LoadedComponent
    from wasm_runtime.runner import FunctionRuntime, LoadedFunction

AGENT_VERSION = "0.1.0"
# Small enough to stay below malloc's mmap threshold: a fresh 1 MiB buffer per read
# costs more than the read itself in a TCG guest.
READ_CHUNK = 64 * 1024
# Python threads; calls in flight beyond this queue inside the agent.
DEFAULT_WORKERS = 4


# A call read from the channel: request id, op and its arguments.
_Work = tuple[int, Op, dict[str, Any]]


class _Waiter:
    """A hostcall's answer, reader to caller by a bare lock (an Event costs more in TCG)."""

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.answer: object = None


class Channel(Protocol):
    def read(self, n: int) -> bytes: ...
    def write(self, data: bytes) -> None: ...


class FdChannel:
    """A byte channel over a file descriptor (the virtio port, or a socket on the host)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, n: int) -> bytes:
        return os.read(self.fd, n)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


class Agent:
    def __init__(
        self,
        channel: Channel,
        runtime: FunctionRuntime,
        workers: int = DEFAULT_WORKERS,
        on_shutdown: Callable[[], None] | None = None,
        tlb: guestos.TlbWarmer | None = None,
    ) -> None:
        self._channel = channel
        self._tlb = tlb
        self._runtime = runtime
        self._workers = workers
        self._leadership = threading.Lock()  # held by the one thread reading the channel
        self._decoder = protocol.FrameDecoder()
        self._backlog: collections.deque[_Work] = collections.deque()
        self._busy = 0  # calls running (at most ``workers``)
        self._write_lock = threading.Lock()
        self._functions: dict[str, LoadedFunction | LoadedComponent] = {}
        self._on_shutdown = on_shutdown
        self._started = time.monotonic()
        self._in_flight = 0
        self._served = 0
        self._bad_frames = 0
        self._counter_lock = threading.Lock()
        self._stopping = False
        self._hostcall_ids = itertools.count(1)
        self._hostcalls: dict[int, _Waiter] = {}
        self._staging = Staging(Path(runtime.work_dir) / "staging")

    # -- output -------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        try:
            frame = protocol.encode_frame(message)
        except ProtocolError as err:
            # The only way a reply grows too large is a result we built;
            # report that instead of killing the channel.
            frame = protocol.encode_frame(
                protocol.error_reply(message.get("id"), ErrorCode.INTERNAL, str(err))
            )
        with self._write_lock:
            self._channel.write(frame)

    def hello(self, boot_s: float | None = None) -> None:
        self.send(
            protocol.event(
                Event.HELLO,
                Hello(
                    protocol=protocol.PROTOCOL_VERSION,
                    agent=AGENT_VERSION,
                    python=sys.version.split()[0],
                    boot_s=boot_s,
                    pid=os.getpid(),
                ).to_wire(),
            )
        )

    # -- input --------------------------------------------------------------
    def serve(self) -> None:
        """Read and dispatch until the channel ends or a shutdown request.

        Leader and followers: one thread at a time reads (the leader). Given a call, it
        hands the reading to the next thread and runs the call itself, so a call starts on
        the thread that read it instead of waking a pool worker (under TCG that wake-up was
        a third of a warm call's time in the guest). ``workers`` calls run at once; one more
        thread keeps reading then, queueing further calls and answering pings at once.
        """
        threads = [
            threading.Thread(target=self._work, name=f"call-{i}", daemon=True)
            for i in range(self._workers)
        ]
        for thread in threads:
            thread.start()
        self._work()
        for thread in threads:
            thread.join()

    def _work(self) -> None:
        while True:
            item = self._queued()
            if item is None:
                with self._leadership:
                    item = self._lead()
            if item is None:
                return
            self._run_counted(*item)

    def _queued(self) -> _Work | None:
        with self._counter_lock:
            if self._backlog:
                self._busy += 1
                return self._backlog.popleft()
        return None

    def _lead(self) -> _Work | None:
        """Read until a call this thread may run (None: the channel ended or shut down)."""
        while not self._stopping:
            try:
                msg = self._decoder.next_message()
            except ProtocolError as err:
                self._bad_frames += 1
                self.send(protocol.error_reply(None, ErrorCode.BAD_FRAME, str(err)))
                continue
            if msg is None:
                if not self._read_more():
                    self._stopping = True
                continue
            item = self._dispatch(msg)
            if item is None:
                continue
            with self._counter_lock:
                self._in_flight += 1
                if self._busy < self._workers:
                    self._busy += 1
                    return item
                self._backlog.append(item)  # the next thread to finish a call runs it
        return None

    def _read_more(self) -> bool:
        """Feed the decoder; False when the channel has ended for good."""
        while True:
            try:
                data = self._channel.read(READ_CHUNK)
            except InterruptedError:
                continue
            if data:
                self._decoder.feed(data)
                return True
            if self._stopping or not self._keep_reading_after_eof():
                return False

    def _keep_reading_after_eof(self) -> bool:
        # On a virtio port, EOF means the host side is (for now) disconnected;
        # the guest must keep serving for when it comes back. On a host
        # socket (tests, tracing) EOF is final.
        if os.getpid() == 1:
            time.sleep(0.05)
            return True
        return False

    def _dispatch(self, msg: dict[str, Any]) -> _Work | None:
        """Answer a control request here; return a call (load, invoke, unload) to run."""
        try:
            ids = protocol.hostcall_ids(msg)
            if ids is not None:
                self._answered(ids[0], msg)
                return None
            req_id, op, args = protocol.parse_request(msg)
        except UnknownOp as err:
            self.send(protocol.error_reply(err.req_id, ErrorCode.UNKNOWN_OP, str(err)))
            return None
        except ProtocolError as err:
            self._bad_frames += 1
            self.send(
                protocol.error_reply(protocol.request_id(msg), ErrorCode.BAD_REQUEST, str(err))
            )
            return None
        # A stage's chunk is written here, in order (chunks must arrive in order anyway).
        if op in (Op.PING, Op.STATS, Op.RESUME, Op.STAGE):
            self._run(req_id, op, args)
        elif op is Op.SHUTDOWN:
            self._stopping = True
            self._run(req_id, op, args)
        else:
            return req_id, op, args
        return None

    def _run_counted(self, req_id: int, op: Op, args: dict[str, Any]) -> None:
        try:
            reply = self._reply_for(req_id, op, args)
        finally:
            # Counted as done before the reply leaves, so a stats request sent
            # after the reply arrived never sees this call in flight.
            with self._counter_lock:
                self._in_flight -= 1
                self._busy -= 1
                self._served += 1
        self._send_reply(reply)
        # After the reply, off the call's own path.
        self._runtime.drop_retired()
        if self._tlb is not None:
            self._tlb.after_call()

    def _run(self, req_id: int, op: Op, args: dict[str, Any]) -> None:
        self._send_reply(self._reply_for(req_id, op, args))
        if op is Op.SHUTDOWN and self._on_shutdown is not None:
            self._on_shutdown()

    def _send_reply(self, reply: dict[str, Any]) -> None:
        try:
            self.send(reply)
        except OSError:
            traceback.print_exc()

    def _reply_for(self, req_id: int, op: Op, args: dict[str, Any]) -> dict[str, Any]:
        try:
            result = self._handlers[op](self, req_id, args)
            reply = protocol.ok_reply(req_id, result)
        except InvalidModule as err:
            reply = protocol.error_reply(
                req_id, ErrorCode.INVALID_MODULE, err.message, {"reason": err.reason}
            )
        except FunctionNotLoaded as err:
            reply = protocol.error_reply(
                req_id, ErrorCode.NOT_LOADED, str(err), {"fn_id": err.fn_id}
            )
        except KeyError as err:
            reply = protocol.error_reply(req_id, ErrorCode.BAD_REQUEST, f"missing argument {err}")
        except ProtocolError as err:
            reply = protocol.error_reply(req_id, ErrorCode.BAD_REQUEST, str(err))
        except Exception as err:  # the agent must outlive any one request
            traceback.print_exc()
            reply = protocol.error_reply(req_id, ErrorCode.INTERNAL, f"{type(err).__name__}: {err}")
        return reply

    # -- handlers -----------------------------------------------------------
    def _ping(self, req_id: int, args: dict[str, Any]) -> dict[str, Any]:
        return {"echo": args.get("echo"), "uptime_s": time.monotonic() - self._started}

    def _stage(self, req_id: int, args: dict[str, Any]) -> dict[str, Any]:
        size = self._staging.write(int(args["stage"]), int(args["offset"]), args["data"])
        return {"size": size}

    def _load(self, req_id: int, args: dict[str, Any]) -> dict[str, Any]:
        fn_id = str(args["fn_id"])
        started = time.perf_counter()
        staged = [args["artifact"]] + ([args["files"]] if args.get("files") else [])
        paths = self._staging.take([(int(b["stage"]), int(b["size"])) for b in staged])
        try:
            loaded = self._runtime.load(
                paths[0],
                precompiled=bool(args.get("precompiled", True)),
                files_tar=paths[1].read_bytes() if len(paths) > 1 else None,
                name=fn_id,
            )
        finally:
            for path in paths:  # what wasmtime mapped stays until the function is unloaded
                path.unlink(missing_ok=True)
        self._functions[fn_id] = loaded
        return LoadReply(fn_id, (time.perf_counter() - started) * 1000).to_wire()

    def _invoke(self, req_id: int, args: dict[str, Any]) -> dict[str, Any]:
        fn_id = str(args["fn_id"])
        loaded = self._functions.get(fn_id)
        if loaded is None:
            raise FunctionNotLoaded(fn_id)
        invocation = Invocation.from_wire(args["invocation"])
        result = self._runtime.invoke(loaded, invocation, self._bridge(req_id))
        return result.to_wire()

    # -- hostcalls ------------------------------------------------------------
    def _bridge(self, call_id: int) -> Bridge:
        """How call ``call_id``'s hostcalls reach the host: a frame out, then a wait on this
        thread until the reading thread hands over the answer."""

        def ask(request: HostRequest, timeout_s: float) -> HostAnswer:
            hostcall_id = next(self._hostcall_ids)
            waiter = _Waiter()
            self._hostcalls[hostcall_id] = waiter
            try:
                self.send(protocol.hostcall(hostcall_id, call_id, request.to_wire()))
                if not waiter.done.acquire(True, max(timeout_s, 0.0)):
                    raise TimeoutError
                return HostAnswer.from_wire(waiter.answer)
            finally:
                self._hostcalls.pop(hostcall_id, None)

        return ask

    def _answered(self, hostcall_id: int, msg: dict[str, Any]) -> None:
        waiter = self._hostcalls.get(hostcall_id)
        if waiter is None:
            return  # its call gave up waiting (timed out): nobody to tell
        waiter.answer = msg.get("answer")
        waiter.done.release()

    def _unload(self, req_id: int, args: dict[str, Any]) -> dict[str, Any]:
        fn_id = str(args["fn_id"])
        loaded = self._functions.pop(fn_id, None)
        if loaded is None:
            raise FunctionNotLoaded(fn_id)
        self._runtime.unload(loaded)
        return {"fn_id": fn_id}

    def _stats(self, req_id: int, args: dict[str, Any]) -> dict[str, Any]:
        with self._counter_lock:
            in_flight, served = self._in_flight, self._served
        return AgentStats(
            functions=sorted(self._functions),
            in_flight=in_flight,
            served=served,
            bad_frames=self._bad_frames,
            uptime_s=time.monotonic() - self._started,
            tlb_rounds=0 if self._tlb is None else self._tlb.rounds,
            **_memory_stats(),
        ).to_wire()

    def _shutdown(self, req_id: int, args: dict[str, Any]) -> dict[str, Any]:
        return {"served": self._served}

    def _resume(self, req_id: int, args: dict[str, Any]) -> dict[str, Any]:
        """A clone of a snapshot wakes up with the template's clock and RNG state.

        Every clone would otherwise tell the template's time and draw the same
        random numbers as its siblings: set the real time, and mix host entropy
        into the kernel RNG and reseed it before any function runs.
        """
        time.clock_settime_ns(time.CLOCK_REALTIME, int(args["time_ns"]))
        guestos.reseed_kernel_rng(bytes(args["entropy"]))
        with open("/dev/urandom", "rb") as f:
            sample = f.read(16)
        if self._tlb is not None:
            self._tlb.arm()
        return ResumeReply(time.time_ns(), sample).to_wire()

    _handlers: ClassVar[dict[Op, Callable[[Agent, int, dict[str, Any]], dict[str, Any]]]] = {
        Op.PING: _ping,
        Op.STAGE: _stage,
        Op.LOAD: _load,
        Op.INVOKE: _invoke,
        Op.UNLOAD: _unload,
        Op.STATS: _stats,
        Op.SHUTDOWN: _shutdown,
        Op.RESUME: _resume,
    }


def _read_kib(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in keys:
                    out[name] = int(rest.split()[0])
    except OSError:
        pass
    return out


def _memory_stats() -> dict[str, int]:
    status = _read_kib("/proc/self/status", ("VmRSS",))
    meminfo = _read_kib("/proc/meminfo", ("MemTotal", "MemAvailable"))
    return {
        "agent_rss_kib": status.get("VmRSS", 0),
        "mem_total_kib": meminfo.get("MemTotal", 0),
        "mem_available_kib": meminfo.get("MemAvailable", 0),
    }


# -- running as PID 1 --------------------------------------------------------


def main() -> None:
    """Entry point of the guest image's /init."""
    # The helper forks first: before any thread, and before the runtime and its engine
    # fill the heap with pages the agent then writes (the helper keeps the old copies).
    tlb = guestos.TlbWarmer.start() if os.getpid() == 1 else None
    from wasm_runtime.runner import FunctionRuntime

    libc = guestos.libc()
    if os.getpid() == 1:
        guestos.mount(libc, "devtmpfs", "/dev", "devtmpfs")
        guestos.mount(libc, "proc", "/proc", "proc")
        os.makedirs("/tmp", exist_ok=True)
    try:
        with open("/proc/uptime") as f:
            boot_s: float | None = float(f.read().split()[0])
    except OSError:
        boot_s = None
    fd = guestos.open_port()
    runtime = FunctionRuntime(tempfile.mkdtemp(prefix="fn-", dir="/tmp"), free_after_answer=True)
    agent = Agent(FdChannel(fd), runtime, on_shutdown=lambda: guestos.power_off(libc), tlb=tlb)
    try:
        agent.hello(boot_s)
        agent.serve()
    except BaseException:
        traceback.print_exc()
    finally:
        if os.getpid() == 1:
            guestos.power_off(libc)


if __name__ == "__main__":
    main()
