"""The hostcall benchmark: key-value and outbound HTTP through the VM wall vs from the host.

One microVM runs modules that make N hostcalls of one kind in a loop (and one that
makes none); a hostcall's cost through the wall is ``(call with N - call with 0) / N``.
The baseline is the same operation made by the host directly (the same KVStore script
on the same redis-server, the same Outbound request to the same local server),
measured in the same run, so the ratio is what the wall adds.
"""

from __future__ import annotations

import http.server
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import wasmtime

from scheduler.hostcalls import Capabilities, Caps, Quota, parse_allow_list
from scheduler.model import FunctionConfig
from scheduler.state import EmbeddedRedis, connect
from unikernel.accel import resolve_accel
from unikernel.image import guest_image
from unikernel.settings import VMSettings
from unikernel.vm import MicroVM
from wasm_runtime.engine import precompile
from wasm_runtime.hostcalls import HostRequest, Kind
from wasm_runtime.types import Invocation

Progress = Callable[[str], None]
PER_CALL = 10  # hostcalls per timed call (a call holds at most 16 HTTP responses)
VALUE = b"v" * 64

_OPS = {
    "none": "",
    "kv_get": "(call $get (i32.const 0) (i32.const 1) (i32.const 1024) (i32.const 1024)"
    " (i32.const 2048))",
    "kv_set": "(call $set (i32.const 0) (i32.const 1) (i32.const 1024) (i32.const 64))",
    "http": "(call $http (i32.const 16) (i32.const 3) (i32.const 32) (i32.const {url_len})"
    " (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 4000))",
}


def loop_module(op: str, count: int, url: str) -> bytes:
    """A WASI command that makes ``count`` hostcalls of ``op`` and exits."""
    body = _OPS[op].format(url_len=len(url))
    call = f"(drop {body})" if body else "(nop)"
    return bytes(
        wasmtime.wat2wasm(f"""
(module
  (import "unifaas" "kv_get" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "unifaas" "kv_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "unifaas" "http_request"
    (func $http (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "k")
  (data (i32.const 16) "GET")
  (data (i32.const 32) "{url}")
  (data (i32.const 1024) "{VALUE.decode()}")
  (func (export "_start") (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const {count})))
        {call}
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))))
""")
    )


class _Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else the body waits out a delayed ACK (~40 ms)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


async def _median_ms(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def bench_hostcalls(
    settings: VMSettings, calls: int = 30, progress: Progress = print
) -> dict[str, Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    config = FunctionConfig(allow_hosts=[f"127.0.0.1:{server.server_address[1]}"])
    with tempfile.TemporaryDirectory(prefix="unifaas-bench-") as state:
        async with EmbeddedRedis(Path(state)) as redis_server:
            client = await connect(redis_server.url)
            caps = Capabilities(client)
            try:
                return await _measure(settings, caps, config, url, calls, progress)
            finally:
                await caps.aclose()
                await client.aclose()
                server.shutdown()
                server.server_close()


async def _measure(
    settings: VMSettings,
    caps: Capabilities,
    config: FunctionConfig,
    url: str,
    calls: int,
    progress: Progress,
) -> dict[str, Any]:
    image = guest_image(settings)
    accel = await resolve_accel(settings, image)
    progress("booting a microVM...")
    vm = await MicroVM.boot(image, settings, accel, name="bench-hostcalls")
    out: dict[str, Any] = {"calls": calls, "hostcalls_per_call": PER_CALL}
    try:
        for op in _OPS:
            count = 0 if op == "none" else PER_CALL
            await vm.load(op, precompile(loop_module(op, count, url)))
        await caps.kv.set("bench", b"k", VALUE, Quota(10, 1 << 20))

        def through(op: str) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                session = caps.session("bench", config)
                result = await vm.invoke(op, Invocation(), session)
                result.raise_for_outcome()
                assert session.made == (0 if op == "none" else PER_CALL), session.made

            return call

        quota = Quota(10, 1 << 20)
        rules = parse_allow_list(config.allow_hosts)
        http_caps = Caps(10.0, 1 << 20, 1 << 20)
        direct: dict[str, Callable[[], Awaitable[Any]]] = {
            "kv_get": lambda: caps.kv.get("bench", b"k"),
            "kv_set": lambda: caps.kv.set("bench", b"k", VALUE, quota),
            "http": lambda: caps.outbound.request(
                rules, HostRequest(Kind.HTTP, method="GET", url=url), http_caps
            ),
        }
        for op in _OPS:  # warm both paths up (QEMU's translation, connections)
            await through(op)()
        # Alternate the arms so that the machine's drift falls on all of them.
        wall: dict[str, list[float]] = {op: [] for op in _OPS}
        host: dict[str, list[float]] = {op: [] for op in direct}
        rounds = 5
        for r in range(rounds):
            progress(f"round {r + 1}/{rounds}")
            for op in _OPS:
                wall[op].append(await _median_ms(through(op), max(1, calls // rounds)))
            for op, fn in direct.items():
                host[op].append(await _median_ms(fn, max(10, 4 * calls // rounds)))
        empty_ms = statistics.median(wall["none"])
        out["call_without_hostcalls_ms"] = round(empty_ms, 3)
        for op in direct:
            per_op = (statistics.median(wall[op]) - empty_ms) / PER_CALL
            baseline = statistics.median(host[op])
            out[f"{op}_through_wall_ms"] = round(per_op, 3)
            out[f"{op}_from_host_ms"] = round(baseline, 3)
            out[f"ratio_{op}_wall_over_host"] = round(per_op / max(baseline, 1e-9), 2)
        out["accel"] = accel
    finally:
        await vm.stop()
    return out
