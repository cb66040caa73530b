"""Exercise the agent end to end over a socketpair and report which modules that needed.

The image builder runs this on the host (``python -S``, the guest's flags) to
learn exactly which stdlib and package modules the guest must carry; it
doubles as a smoke test of the agent outside any VM.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
import threading
from typing import Any

from wasm_runtime import protocol
from wasm_runtime.agent import Agent, FdChannel
from wasm_runtime.bundle import pack_files
from wasm_runtime.errors import UnifaasError
from wasm_runtime.protocol import Op
from wasm_runtime.types import HttpRequest, Invocation

HELLO_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "selftest ok\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 12))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


# The smallest wasi:http component: it drops its request and its outparam, so it answers
# with no response (which the runtime reports as such).
SILENT_COMPONENT_WAT = """
(component
  (import "wasi:http/types@0.2.0" (instance $types
    (export "incoming-request" (type (sub resource)))
    (export "response-outparam" (type (sub resource)))))
  (alias export $types "incoming-request" (type $req))
  (alias export $types "response-outparam" (type $out))
  (core func $drop-req (canon resource.drop $req))
  (core func $drop-out (canon resource.drop $out))
  (core module $M
    (import "" "drop-req" (func $drop-req (param i32)))
    (import "" "drop-out" (func $drop-out (param i32)))
    (func (export "handle") (param i32 i32)
      (call $drop-req (local.get 0))
      (call $drop-out (local.get 1))))
  (core instance $m (instantiate $M (with "" (instance
    (export "drop-req" (func $drop-req)) (export "drop-out" (func $drop-out))))))
  (func $handle (param "request" (own $req)) (param "response-out" (own $out))
    (canon lift (core func $m "handle")))
  (instance $handler (export "handle" (func $handle)))
  (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))
"""


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = protocol.FrameDecoder()
        self.ids = 0

    def receive(self) -> dict[str, Any]:
        while True:
            msg = self.decoder.next_message()
            if msg is not None:
                return msg
            data = self.sock.recv(1 << 20)
            if not data:
                raise UnifaasError("agent closed the channel during the self-test")
            self.decoder.feed(data)

    def call(self, op: Op, args: dict[str, Any] | None = None) -> dict[str, Any]:
        self.ids += 1
        self.sock.sendall(protocol.encode_frame(protocol.request(self.ids, op, args)))
        reply = self.receive()
        if not reply.get("ok"):
            raise UnifaasError(f"self-test {op} failed: {reply.get('error')}")
        result: dict[str, Any] = reply["result"]
        return result

    def stage(self, blob: bytes) -> dict[str, int]:
        """Stage ``blob`` as the shim does (one chunk: the self-test's blobs are small)."""
        stage = self.ids + 1
        self.call(Op.STAGE, {"stage": stage, "offset": 0, "data": blob})
        return {"stage": stage, "size": len(blob)}


def run_selftest() -> None:
    import wasmtime

    from wasm_runtime.engine import precompile
    from wasm_runtime.runner import FunctionRuntime

    host, guest = socket.socketpair()
    work_dir = tempfile.mkdtemp(prefix="unifaas-selftest-")
    runtime = FunctionRuntime(work_dir)
    agent = Agent(FdChannel(guest.fileno()), runtime)
    server = threading.Thread(target=agent.serve, daemon=True)
    server.start()
    client = _Client(host)
    try:
        agent.hello()
        if client.receive().get("event") != protocol.Event.HELLO:
            raise UnifaasError("self-test: no hello")
        artifact = precompile(bytes(wasmtime.wat2wasm(HELLO_WAT)))
        client.call(
            Op.LOAD,
            {
                "fn_id": "hello",
                "artifact": client.stage(artifact),
                "files": client.stage(pack_files({"data.txt": b"bundle\n"})),
            },
        )
        result = client.call(Op.INVOKE, {"fn_id": "hello", "invocation": Invocation().to_wire()})
        if result.get("stdout") != b"selftest ok\n":
            raise UnifaasError(f"self-test: unexpected result {result}")
        component = precompile(bytes(wasmtime.wat2wasm(SILENT_COMPONENT_WAT)))
        client.call(Op.LOAD, {"fn_id": "silent", "artifact": client.stage(component)})
        request = Invocation(request=HttpRequest("GET", "/selftest")).to_wire()
        result = client.call(Op.INVOKE, {"fn_id": "silent", "invocation": request})
        if (result.get("response") or {}).get("error") != "no_response":
            raise UnifaasError(f"self-test: unexpected component result {result}")
        client.call(Op.STATS)
        host.sendall(b"garbage!")
        if client.receive().get("ok") is not False:
            raise UnifaasError("self-test: garbage was not answered with an error")
        client.call(Op.UNLOAD, {"fn_id": "hello"})
        client.call(Op.SHUTDOWN)
        server.join(timeout=10)
    finally:
        runtime.close()
        shutil.rmtree(work_dir, ignore_errors=True)
        host.close()
        guest.close()


def loaded_module_files() -> list[dict[str, Any]]:
    out = []
    for name, module in sorted(sys.modules.items()):
        path = getattr(module, "__file__", None)
        out.append({"name": name, "file": path, "package": hasattr(module, "__path__")})
    return out


def main() -> None:
    run_selftest()
    json.dump(loaded_module_files(), sys.stdout)


if __name__ == "__main__":
    main()
