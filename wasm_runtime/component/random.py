"""``wasi:random``: secure bytes from the kernel, and the insecure ones and seed."""

from __future__ import annotations

import os
import random as _random
from typing import Any

from wasm_runtime.component.call import Call
from wasm_runtime.component.linking import Interface

# One request for random bytes may ask for at most this many (more is the component's bug).
MAX_BYTES = 1 << 20


def _bytes(call: Call, store: Any, n: int) -> bytes:
    if n > MAX_BYTES:
        call.misuse(f"asked for {n} random bytes at once (at most {MAX_BYTES})")
    return os.urandom(n)


def _u64(call: Call, store: Any) -> int:
    return int.from_bytes(os.urandom(8), "little")


def _insecure_bytes(call: Call, store: Any, n: int) -> bytes:
    if n > MAX_BYTES:
        call.misuse(f"asked for {n} random bytes at once (at most {MAX_BYTES})")
    return _random.randbytes(n)


def _insecure_u64(call: Call, store: Any) -> int:
    return _random.getrandbits(64)


def _seed(call: Call, store: Any) -> tuple[int, int]:
    return (_random.getrandbits(64), _random.getrandbits(64))


INTERFACES = (
    Interface(
        "wasi:random/random",
        {},
        {"get-random-bytes": _bytes, "get-random-u64": _u64},
    ),
    Interface(
        "wasi:random/insecure",
        {},
        {"get-insecure-random-bytes": _insecure_bytes, "get-insecure-random-u64": _insecure_u64},
    ),
    Interface("wasi:random/insecure-seed", {}, {"insecure-seed": _seed}),
)
