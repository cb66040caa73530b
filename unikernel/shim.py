"""The shim's agent client: the host side of the agent protocol over one byte stream.

A connection is a small state machine::

    CONNECTING --hello--> READY --(EOF | error | second hello | close)--> CLOSED

Calls are allowed only in READY. Each request gets an id; a single reader task
routes replies by id to the waiting futures, so any number of calls can be in
flight. When the connection ends, every pending call fails at once with the
same :class:`~unikernel.errors.VMGone` and later calls fail immediately.

Error replies without an id (the agent could not read what we sent) are kept
in :attr:`AgentClient.unsolicited_errors`; the agent keeps serving after them.

A call may ask the host for things while it runs (hostcalls): each is handed to
the :data:`~wasm_runtime.hostcalls.HostHandler` its invoke was given, in a task of
its own so that replies and other hostcalls keep flowing, and every one gets an
answer (UNAVAILABLE when its call has no handler or has already ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
from typing import Any

from unikernel.errors import VMGone
from wasm_runtime import protocol
from wasm_runtime.errors import ProtocolError, UnifaasError, error_from_code
from wasm_runtime.hostcalls import HostHandler, HostRequest, Status, denied
from wasm_runtime.protocol import Event, Op
from wasm_runtime.replies import AgentStats, Hello, LoadReply, ResumeReply
from wasm_runtime.types import Invocation, InvocationResult

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20


class ConnState(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"
    CLOSED = "closed"


class AgentClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._state = ConnState.CONNECTING
        self._ids = itertools.count(1)
        self._stages = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._handlers: dict[int, HostHandler] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self._ready: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self._closed_error: VMGone | None = None
        self.unsolicited_errors: asyncio.Queue[UnifaasError] = asyncio.Queue(maxsize=100)
        self.hello = Hello()
        self._reader_task = asyncio.create_task(self._read_loop(), name="agent-reader")

    @property
    def state(self) -> ConnState:
        return self._state

    @property
    def pending(self) -> int:
        """Calls sent and not yet answered."""
        return len(self._pending)

    def adopt_hello(self, hello: Hello) -> None:
        """Ready without a hello: a VM restored from a snapshot said it before the snapshot."""
        if self._state is ConnState.CONNECTING:
            self.hello = hello
            self._state = ConnState.READY
            self._ready.set_result(hello)

    async def wait_ready(self) -> Hello:
        """Wait for the agent's hello (callers bound this with their own deadline)."""
        return await asyncio.shield(self._ready)

    # -- calls ----------------------------------------------------------------
    async def call(
        self, op: Op, args: dict[str, Any] | None = None, hostcalls: HostHandler | None = None
    ) -> dict[str, Any]:
        if self._state is not ConnState.READY:
            raise self._closed_error or VMGone(f"agent connection is {self._state.value}")
        req_id = next(self._ids)
        frame = protocol.encode_frame(protocol.request(req_id, op, args))
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        if hostcalls is not None:
            self._handlers[req_id] = hostcalls
        try:
            try:
                self._writer.write(frame)
                await self._writer.drain()
            except (ConnectionError, OSError) as err:
                raise self._closed_error or VMGone(f"agent channel failed: {err}") from err
            reply = await fut
        finally:
            self._pending.pop(req_id, None)
            self._handlers.pop(req_id, None)
        if reply.get("ok"):
            result = reply.get("result", {})
            return result if isinstance(result, dict) else {}
        error = reply.get("error") or {}
        raise error_from_code(
            str(error.get("code")), str(error.get("message", "")), error.get("detail")
        )

    async def ping(self, echo: Any = None) -> dict[str, Any]:
        return await self.call(Op.PING, {"echo": echo})

    async def load(
        self,
        fn_id: str,
        artifact: bytes,
        *,
        precompiled: bool = True,
        files: bytes | None = None,
    ) -> LoadReply:
        """Stage the artifact and files in the guest a chunk at a time, then load them."""
        args = {
            "fn_id": fn_id,
            "artifact": await self._stage(artifact),
            "precompiled": precompiled,
            "files": None if files is None else await self._stage(files),
        }
        return LoadReply.from_wire(await self.call(Op.LOAD, args))

    async def _stage(self, blob: bytes) -> dict[str, int]:
        stage = next(self._stages)
        view = memoryview(blob)
        offset = 0
        while True:  # an empty blob is staged too: one empty chunk
            chunk = view[offset : offset + protocol.STAGE_CHUNK_BYTES]
            await self.call(Op.STAGE, {"stage": stage, "offset": offset, "data": chunk})
            offset += len(chunk)
            if offset >= len(blob):
                return {"stage": stage, "size": len(blob)}

    async def invoke(
        self, fn_id: str, invocation: Invocation, hostcalls: HostHandler | None = None
    ) -> InvocationResult:
        """Run a call; its hostcalls go to ``hostcalls`` (none: each is answered UNAVAILABLE)."""
        args = {"fn_id": fn_id, "invocation": invocation.to_wire()}
        result = await self.call(Op.INVOKE, args, hostcalls)
        try:
            return InvocationResult.from_wire(result)
        except (KeyError, TypeError, ValueError) as err:
            raise ProtocolError(f"the agent's invoke reply is malformed: {err!r}") from err

    async def unload(self, fn_id: str) -> None:
        await self.call(Op.UNLOAD, {"fn_id": fn_id})

    async def stats(self) -> AgentStats:
        return AgentStats.from_wire(await self.call(Op.STATS))

    async def resume(self, time_ns: int, entropy: bytes) -> ResumeReply:
        reply = await self.call(Op.RESUME, {"time_ns": time_ns, "entropy": entropy})
        return ResumeReply.from_wire(reply)

    async def shutdown(self) -> None:
        await self.call(Op.SHUTDOWN)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests use it to prove garbage is survived)."""
        self._writer.write(data)
        await self._writer.drain()

    # -- reading --------------------------------------------------------------
    async def _read_loop(self) -> None:
        decoder = protocol.FrameDecoder()
        reason = "agent channel closed"
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    break
                decoder.feed(data)
                while True:
                    try:
                        msg = decoder.next_message()
                    except ProtocolError as err:
                        self._note_unsolicited(err)
                        continue
                    if msg is None:
                        break
                    if not self._route(msg):
                        reason = "agent restarted (second hello): the guest rebooted"
                        return
        except (ConnectionError, OSError) as err:
            reason = f"agent channel failed: {err}"
        finally:
            self.close(VMGone(reason))

    def _route(self, msg: dict[str, Any]) -> bool:
        try:
            ids = protocol.hostcall_ids(msg)
        except ProtocolError as err:
            self._note_unsolicited(err)
            return True
        if ids is not None:
            self._serve_hostcall(ids[0], ids[1], msg.get("request"))
            return True
        if "event" in msg:
            if msg.get("event") == Event.HELLO:
                if self._ready.done():
                    return False
                self.hello = Hello.from_wire(msg.get("data"))
                self._state = ConnState.READY
                self._ready.set_result(self.hello)
            return True
        req_id = protocol.request_id(msg)
        fut = self._pending.get(req_id) if req_id is not None else None
        if fut is None:
            error = msg.get("error") or {}
            self._note_unsolicited(
                error_from_code(str(error.get("code")), str(error.get("message", "")))
            )
        elif not fut.done():
            fut.set_result(msg)
        return True

    def _serve_hostcall(self, hostcall_id: int, call_id: int | None, request: object) -> None:
        handler = self._handlers.get(call_id) if call_id is not None else None
        task = asyncio.create_task(self._answer_hostcall(hostcall_id, handler, request))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _answer_hostcall(
        self, hostcall_id: int, handler: HostHandler | None, request: object
    ) -> None:
        if handler is None:
            answer = denied(Status.UNAVAILABLE, "no call of this VM is waiting for that hostcall")
        else:
            try:
                parsed = HostRequest.from_wire(request)
            except (TypeError, ValueError) as err:
                answer = denied(Status.INVALID_ARGUMENT, f"malformed hostcall: {err}")
            else:
                try:
                    answer = await handler(parsed)
                except Exception:  # the handler's bug must not leave the guest waiting
                    log.exception("hostcall %s failed", parsed.kind)
                    answer = denied(Status.UNAVAILABLE, "the host failed to serve it")
        if self._state is ConnState.CLOSED:
            return
        frame = protocol.encode_frame(protocol.hostcall_answer(hostcall_id, answer.to_wire()))
        with contextlib.suppress(ConnectionError, OSError):
            self._writer.write(frame)
            await self._writer.drain()

    def _note_unsolicited(self, err: UnifaasError) -> None:
        log.warning("unsolicited message from agent: %s", err)
        if self.unsolicited_errors.full():
            self.unsolicited_errors.get_nowait()
        self.unsolicited_errors.put_nowait(err)

    # -- ending ---------------------------------------------------------------
    def close(self, error: VMGone | None = None) -> None:
        """Fail everything pending with ``error`` and stop; idempotent."""
        if self._state is ConnState.CLOSED:
            return
        self._state = ConnState.CLOSED
        self._closed_error = error or VMGone("agent connection closed by the host")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(self._closed_error)
        if not self._ready.done():
            self._ready.set_exception(self._closed_error)
            self._ready.exception()  # mark retrieved: nobody may be waiting
        for task in self._serving:
            task.cancel()
        self._writer.close()
        if self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()

    async def aclose(self, error: VMGone | None = None) -> None:
        self.close(error)
        try:
            await self._reader_task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
