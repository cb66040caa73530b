"""The shim's AgentClient against the real Agent loop over a socketpair, with a fake runtime."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from unikernel.errors import VMGone
from unikernel.shim import AgentClient, ConnState
from wasm_runtime import protocol
from wasm_runtime.agent import Agent, FdChannel
from wasm_runtime.errors import FunctionNotLoaded, InvalidModule, ProtocolError
from wasm_runtime.hostcalls import HostAnswer, HostHandler, HostRequest, Kind, Status
from wasm_runtime.hostfuncs import Bridge
from wasm_runtime.types import Invocation, InvocationResult, Outcome


@dataclass
class FakeFn:
    artifact: bytes


class FakeRuntime:
    """Echoes stdin; 'slow' artifacts wait on an event so calls stay in flight."""

    def __init__(self, work_dir: Path) -> None:
        self.release = threading.Event()
        self.work_dir = work_dir
        self.loaded: list[tuple[bytes, bytes | None]] = []  # (artifact, files)

    def load(
        self,
        artifact_file: Path,
        *,
        precompiled: bool = True,
        files_tar: bytes | None = None,
        name: str = "fn",
    ) -> FakeFn:
        artifact = artifact_file.read_bytes()
        self.loaded.append((artifact, files_tar))
        if not artifact.startswith(b"ok"):
            raise InvalidModule("not_wasm", "not a module")
        return FakeFn(artifact)

    def invoke(self, fn: FakeFn, inv: Invocation, bridge: Bridge | None = None) -> InvocationResult:
        if fn.artifact == b"ok-slow":
            self.release.wait(10)
        if fn.artifact == b"ok-hostcall":
            # Asks the host for the key named by stdin, as many times as the args say.
            assert bridge is not None
            out = b""
            for _ in range(int(inv.args[0]) if inv.args else 1):
                answer = bridge(HostRequest(Kind.KV_GET, key=inv.stdin), 5.0)
                out += bytes([answer.status]) + answer.value
            return InvocationResult(Outcome.OK, 0, stdout=out)
        return InvocationResult(Outcome.OK, 0, stdout=inv.stdin)

    def unload(self, fn: FakeFn) -> None:
        pass

    def drop_retired(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Pair:
    client: AgentClient
    agent: Agent
    runtime: FakeRuntime
    host_sock: socket.socket
    thread: threading.Thread


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    host_sock, guest_sock = socket.socketpair()
    runtime = FakeRuntime(tmp_path)
    agent = Agent(FdChannel(guest_sock.fileno()), runtime)  # type: ignore[arg-type]
    thread = threading.Thread(target=agent.serve, daemon=True)
    thread.start()
    reader, writer = await asyncio.open_unix_connection(sock=host_sock)
    client = AgentClient(reader, writer)
    agent.hello(0.1)
    await asyncio.wait_for(client.wait_ready(), 5)
    yield Pair(client, agent, runtime, host_sock, thread)
    runtime.release.set()
    await client.aclose()
    # End the agent's reads with EOF before closing its fd: closing first let a
    # read that started late hit a closed descriptor (EBADF in the agent thread).
    guest_sock.shutdown(socket.SHUT_RDWR)
    thread.join(5)
    guest_sock.close()


async def test_ready_and_calls(pair: Pair) -> None:
    c = pair.client
    assert c.state is ConnState.READY
    assert c.hello.protocol == protocol.PROTOCOL_VERSION
    assert (await c.ping("x"))["echo"] == "x"
    await c.load("f", b"ok")
    result = await c.invoke("f", Invocation(stdin=b"abc"))
    assert result.stdout == b"abc"
    stats = await c.stats()
    assert "f" in stats.functions
    assert (stats.in_flight, stats.served) == (0, 2)
    await c.unload("f")
    with pytest.raises(FunctionNotLoaded):
        await c.invoke("f", Invocation())
    with pytest.raises(InvalidModule) as info:
        await c.load("g", b"junk")
    assert info.value.reason == "not_wasm"


async def test_a_load_stages_its_blobs_in_chunks_and_leaves_no_file(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "STAGE_CHUNK_BYTES", 7)
    artifact, files = b"ok" + bytes(range(40)), bytes(range(7))  # 6 chunks; exactly 1
    await pair.client.load("big", artifact, files=files)
    assert pair.runtime.loaded == [(artifact, files)]
    assert list((pair.runtime.work_dir / "staging").iterdir()) == []
    assert (await pair.client.invoke("big", Invocation(stdin=b"hi"))).stdout == b"hi"
    with pytest.raises(InvalidModule):  # refused after staging: nothing is left either
        await pair.client.load("junk", b"junk" * 5)
    assert list((pair.runtime.work_dir / "staging").iterdir()) == []


async def test_a_load_naming_a_blob_never_staged_is_a_bad_request(pair: Pair) -> None:
    with pytest.raises(ProtocolError, match="stage 77 was never written"):
        await pair.client.call(
            protocol.Op.LOAD, {"fn_id": "f", "artifact": {"stage": 77, "size": 3}}
        )
    await pair.client.load("f", b"ok")  # and the agent serves on


async def test_hostcalls_interleave_with_calls_and_reach_their_own_handler(pair: Pair) -> None:
    c = pair.client
    await c.load("hc", b"ok-hostcall")
    release = asyncio.Event()

    def handler_for(tag: bytes) -> HostHandler:
        async def handle(request: HostRequest) -> HostAnswer:
            assert request.kind is Kind.KV_GET
            if request.key == b"wait":
                await release.wait()
            return HostAnswer(Status.OK, value=tag + request.key)

        return handle

    # A call held in a hostcall does not hold up another call, its hostcalls or a ping.
    held = asyncio.ensure_future(c.invoke("hc", Invocation(stdin=b"wait"), handler_for(b"1:")))
    await asyncio.sleep(0.05)
    other = await c.invoke("hc", Invocation(stdin=b"k", args=("3",)), handler_for(b"2:"))
    assert other.stdout == b"\x002:k" * 3
    assert (await c.ping("p"))["echo"] == "p" and not held.done()
    release.set()
    assert (await held).stdout == b"\x001:wait"
    # Without a handler every hostcall is answered UNAVAILABLE.
    bare = await c.invoke("hc", Invocation(stdin=b"k"))
    assert bare.stdout == bytes([Status.UNAVAILABLE])


async def test_replies_routed_by_id_out_of_order(pair: Pair) -> None:
    c = pair.client
    await c.load("slow", b"ok-slow")
    await c.load("fast", b"ok")
    slow = asyncio.ensure_future(c.invoke("slow", Invocation(stdin=b"s")))
    await asyncio.sleep(0.05)
    fast = await c.invoke("fast", Invocation(stdin=b"f"))
    assert fast.stdout == b"f" and not slow.done()
    pair.runtime.release.set()
    assert (await slow).stdout == b"s"


async def test_calls_past_the_workers_wait_and_pings_are_answered_meanwhile(pair: Pair) -> None:
    c = pair.client
    await c.load("slow", b"ok-slow")
    await c.load("fast", b"ok")
    # Every worker busy (the agent runs DEFAULT_WORKERS calls at once)...
    slow = [asyncio.ensure_future(c.invoke("slow", Invocation(stdin=b"s"))) for _ in range(4)]
    await asyncio.sleep(0.1)
    # ...one more call waits in the agent, and the thread left keeps answering.
    queued = asyncio.ensure_future(c.invoke("fast", Invocation(stdin=b"q")))
    assert (await asyncio.wait_for(c.ping("still"), 2))["echo"] == "still"
    stats = await asyncio.wait_for(c.stats(), 2)
    assert stats.in_flight == 5
    await asyncio.sleep(0.1)
    assert not queued.done()
    pair.runtime.release.set()
    assert (await queued).stdout == b"q"
    assert [r.stdout for r in await asyncio.gather(*slow)] == [b"s"] * 4
    assert (await c.stats()).in_flight == 0


async def test_garbage_gets_error_reply_and_agent_keeps_serving(pair: Pair) -> None:
    c = pair.client
    await c.send_raw(b"\x00garbage\xff")
    err = await asyncio.wait_for(c.unsolicited_errors.get(), 5)
    assert isinstance(err, ProtocolError)
    # A readable request with an unknown op is answered with its own id.
    bad = protocol.encode_frame({"id": 999, "op": "format-disk", "args": {}})
    await c.send_raw(bad)
    assert (await c.ping())["echo"] is None


async def test_disconnect_fails_every_pending_call(pair: Pair) -> None:
    c = pair.client
    await c.load("slow", b"ok-slow")
    calls = [asyncio.ensure_future(c.invoke("slow", Invocation())) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert c.pending == 3
    pair.host_sock.shutdown(socket.SHUT_RDWR)
    for call in calls:
        with pytest.raises(VMGone):
            await asyncio.wait_for(call, 5)
    assert c.state is ConnState.CLOSED
    with pytest.raises(VMGone):
        await c.ping()


async def test_second_hello_means_guest_restarted(pair: Pair) -> None:
    c = pair.client
    await c.load("slow", b"ok-slow")
    call = asyncio.ensure_future(c.invoke("slow", Invocation()))
    await asyncio.sleep(0.05)
    pair.agent.hello(0.2)
    with pytest.raises(VMGone) as info:
        await asyncio.wait_for(call, 5)
    assert "restarted" in info.value.reason
