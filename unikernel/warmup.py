"""A tiny call run on a fresh clone before it waits for real work.

A clone starts with an empty TCG translation cache (it is QEMU's, not guest
RAM, so the snapshot does not hold it): its first load and call translate the
agent's and wasmtime's code again. Measured on clones here: load 150-160 ms and
first call 130-140 ms cold, vs 20-25 ms and 90-130 ms after this warm-up
(which takes ~200 ms). Worth it for generic VMs, which wait for a call anyway;
not for a VM a call is already waiting on.
"""

from __future__ import annotations

import asyncio
import functools

import wasmtime

from wasm_runtime.engine import precompile

FN_ID = "unifaas-warm-up"
STDIN = b"warm-up"

# Reads stdin once and writes what it read to stdout: the same WASI paths as a
# real raw-ABI function, in a few lines.
WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 1024))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


@functools.cache
def _artifact() -> bytes:
    return precompile(bytes(wasmtime.wat2wasm(WAT)))


async def artifact() -> bytes:
    """The precompiled warm-up module (compiled once per process, off the event loop)."""
    return await asyncio.to_thread(_artifact)
