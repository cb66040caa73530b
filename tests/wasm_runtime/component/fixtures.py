"""Small components for the host's tests: a core module's WAT with one handler body, wrapped
into a component by functions.components (wasm-tools and spin-sdk's WASI WIT)."""

from __future__ import annotations

import functools

from functions.components import component_from_core_wat

# Imports every fixture may use (unused imports are dropped by wasm-tools).
IMPORTS = """
  (import "wasi:http/types@0.2.0" "[constructor]fields" (func $fields-new (result i32)))
  (import "wasi:http/types@0.2.0" "[method]fields.append"
    (func $append (param i32 i32 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.0" "[constructor]outgoing-response"
    (func $resp-new (param i32) (result i32)))
  (import "wasi:http/types@0.2.0" "[method]outgoing-response.body"
    (func $resp-body (param i32 i32)))
  (import "wasi:http/types@0.2.0" "[method]outgoing-response.set-status-code"
    (func $set-status (param i32 i32) (result i32)))
  (import "wasi:http/types@0.2.0" "[method]outgoing-body.write" (func $body-write (param i32 i32)))
  (import "wasi:http/types@0.2.0" "[static]outgoing-body.finish"
    (func $finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.0" "[static]response-outparam.set"
    (func $set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.0" "[resource-drop]incoming-request" (func $drop-req (param i32)))
  (import "wasi:http/types@0.2.0" "[resource-drop]response-outparam" (func $drop-out (param i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-write-and-flush"
    (func $write (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.0" "[resource-drop]output-stream" (func $drop-os (param i32)))
  (import "wasi:io/poll@0.2.0" "[method]pollable.block" (func $block (param i32)))
  (import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-duration"
    (func $after (param i64) (result i32)))
  (import "wasi:cli/stdout@0.2.0" "get-stdout" (func $stdout (result i32)))
"""

MEMORY = """
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (data (i32.const 0) "x-h")
  (data (i32.const 8) "hello\\n")
  (data (i32.const 200) "made.txt")
  (data (i32.const 216) "hello.txt")
  (data (i32.const 232) "../../calls")
  (data (i32.const 256) "fresh ")
  (data (i32.const 264) "stale ")
  (data (i32.const 272) "denied ")
  (data (i32.const 280) "escaped ")
  (data (i32.const 296) "no preopens")
"""

# A response ($resp) with its body ($body) and the body's stream ($os), then sent.
NEW_RESPONSE = """
    (local.set $resp (call $resp-new (call $fields-new)))
"""
SEND = """
    (call $resp-body (local.get $resp) (i32.const 48))
    (local.set $body (i32.load (i32.const 52)))
    (call $body-write (local.get $body) (i32.const 48))
    (local.set $os (i32.load (i32.const 52)))
    (call $set (local.get $out) (i32.const 0) (local.get $resp)
               (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
"""

RESPOND = NEW_RESPONSE + SEND

FINISH = """
    (call $drop-os (local.get $os))
    (call $finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 96))
    (call $drop-req (local.get $req))
"""

BODIES = {
    # A plain answer.
    "hello": NEW_RESPONSE
    + "(drop (call $set-status (local.get $resp) (i32.const 201)))"
    + SEND
    + "(call $write (local.get $os) (i32.const 8) (i32.const 6) (i32.const 96))"
    + FINISH,
    # Logs a line on stdout, then answers.
    "logs": """
    (local.set $os (call $stdout))
    (call $write (local.get $os) (i32.const 8) (i32.const 6) (i32.const 96))
    (call $drop-os (local.get $os))
    """
    + RESPOND
    + FINISH,
    # Returns without setting its response.
    "silent": """
    (call $drop-out (local.get $out))
    (call $drop-req (local.get $req))
    """,
    # Spins forever.
    "spin": "(loop $forever (br $forever))",
    # Waits on a pollable that is ready in a day.
    "wait": "(call $block (call $after (i64.const 86400000000000)))",
    # Traps.
    "trap": "unreachable",
    # Appends headers without end.
    "headers": """
    (local.set $f (call $fields-new))
    (loop $more
      (call $append (local.get $f) (i32.const 0) (i32.const 3) (i32.const 8) (i32.const 5)
                    (i32.const 32))
      (br $more))
    """,
    # Its files bundle, preopened at "/": creates made.txt (a fresh copy per call: "fresh",
    # else "stale"), opens the directory ../../calls ("denied", else "escaped"), then
    # answers hello.txt.
    "files": RESPOND
    + """
    (call $preopens (i32.const 320))
    (if (i32.eqz (i32.load (i32.const 324)))
      (then
        (call $write (local.get $os) (i32.const 296) (i32.const 11) (i32.const 96))
        (return)))
    (local.set $dir (i32.load (i32.load (i32.const 320))))
    ;; made.txt: open-flags create|exclusive, descriptor-flags read|write
    (call $open-at (local.get $dir) (i32.const 0) (i32.const 200) (i32.const 8)
                   (i32.const 5) (i32.const 3) (i32.const 336))
    (if (i32.load8_u (i32.const 336))
      (then (call $write (local.get $os) (i32.const 264) (i32.const 6) (i32.const 96)))
      (else (call $write (local.get $os) (i32.const 256) (i32.const 6) (i32.const 96))))
    (call $open-at (local.get $dir) (i32.const 0) (i32.const 232) (i32.const 11)
                   (i32.const 2) (i32.const 1) (i32.const 336))
    (if (i32.load8_u (i32.const 336))
      (then (call $write (local.get $os) (i32.const 272) (i32.const 7) (i32.const 96)))
      (else (call $write (local.get $os) (i32.const 280) (i32.const 8) (i32.const 96))))
    (call $open-at (local.get $dir) (i32.const 0) (i32.const 216) (i32.const 9)
                   (i32.const 0) (i32.const 1) (i32.const 336))
    (if (i32.load8_u (i32.const 336)) (then unreachable))
    (call $read (i32.load (i32.const 340)) (i64.const 100) (i64.const 0) (i32.const 352))
    (if (i32.load8_u (i32.const 352)) (then unreachable))
    (call $write (local.get $os) (i32.load (i32.const 356)) (i32.load (i32.const 360))
                 (i32.const 96))
    """
    + FINISH,
    # Writes its body without end.
    "flood": RESPOND
    + """
    (loop $more
      (call $write (local.get $os) (i32.const 0) (i32.const 65536) (i32.const 96))
      (br $more))
    """,
}

# A world that also reads files (wasi:http/proxy has no filesystem).
FILES_WORLD = """
package test:fixtures;

world with-files {
  include wasi:http/proxy@0.2.0;
  import wasi:filesystem/preopens@0.2.0;
}
"""
FILES_IMPORTS = """
  (import "wasi:filesystem/preopens@0.2.0" "get-directories" (func $preopens (param i32)))
  (import "wasi:filesystem/types@0.2.0" "[method]descriptor.open-at"
    (func $open-at (param i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi:filesystem/types@0.2.0" "[method]descriptor.read"
    (func $read (param i32 i64 i64 i32)))
"""

# A world that also imports an interface the platform denies.
SOCKETS_WORLD = """
package test:fixtures;

world with-sockets {
  include wasi:http/proxy@0.2.0;
  import wasi:sockets/instance-network@0.2.0;
}
"""
DENIED = (
    """(module
  (import "wasi:sockets/instance-network@0.2.0" "instance-network" (func $net (result i32)))
"""
    + MEMORY
    + """
  (func (export "wasi:http/incoming-handler@0.2.0#handle") (param $req i32) (param $out i32)
    (drop (call $net))))
"""
)


# A world that imports an interface nobody knows.
CUSTOM_WORLD = """
package test:fixtures;

interface custom {
  ping: func();
}

world with-custom {
  include wasi:http/proxy@0.2.0;
  import custom;
}
"""
UNKNOWN = (
    """(module
  (import "test:fixtures/custom" "ping" (func $ping))
"""
    + MEMORY
    + """
  (func (export "wasi:http/incoming-handler@0.2.0#handle") (param $req i32) (param $out i32)
    (call $ping)))
"""
)


def core_wat(body: str, imports: str = "", pages: int = 1) -> str:
    memory = MEMORY.replace('(export "memory") 1)', f'(export "memory") {pages})')
    return f"""(module {IMPORTS} {imports} {memory}
  (func (export "wasi:http/incoming-handler@0.2.0#handle") (param $req i32) (param $out i32)
    (local $resp i32) (local $body i32) (local $os i32) (local $f i32) (local $dir i32)
    {body}))
"""


@functools.cache
def component(name: str) -> bytes:
    """The fixture ``name`` (a key of BODIES, "denied" or "unknown") as a component."""
    if name == "unknown":
        return component_from_core_wat(
            UNKNOWN, world="test:fixtures/with-custom", world_wit=CUSTOM_WORLD
        )
    if name == "denied":
        return component_from_core_wat(
            DENIED, world="test:fixtures/with-sockets", world_wit=SOCKETS_WORLD
        )
    if name == "big":  # 16 MiB of linear memory from its start
        return component_from_core_wat(core_wat(BODIES["hello"], pages=256))
    if name == "files":
        return component_from_core_wat(
            core_wat(BODIES[name], FILES_IMPORTS),
            world="test:fixtures/with-files",
            world_wit=FILES_WORLD,
        )
    return component_from_core_wat(core_wat(BODIES[name]))
