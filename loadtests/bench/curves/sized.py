"""Modules of a given size: the echo function with a data segment of random bytes that
makes up the rest, so deploy, compile, load and instantiation all carry the size (a
custom section would only be carried). The segment is written straight into the binary:
WAT would spell it out as three characters a byte."""

from __future__ import annotations

import random

import wasmtime

from functions import wat_source

PAGE = 64 * 1024
DATA_AT = 2 * PAGE  # after echo's iovec and buffer
_DATA_SECTION = 11


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_leb(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def sized_module(total_bytes: int, seed: int = 0) -> bytes:
    """An echo module of about ``total_bytes`` (at least the bare echo's size)."""
    pages = (DATA_AT + total_bytes) // PAGE + 1
    source = wat_source("echo").replace(
        '(memory (export "memory") 2)', f'(memory (export "memory") {pages})'
    )
    source = source.rstrip().removesuffix(")") + f' (data (i32.const {DATA_AT}) "\\00"))'
    wasm = bytes(wasmtime.wat2wasm(source))
    # Replace its data section's one-byte segment.
    at = 8
    while wasm[at] != _DATA_SECTION:
        size, body_at = _read_leb(wasm, at + 1)
        at = body_at + size
    size, body_at = _read_leb(wasm, at + 1)
    start, end = at, body_at + size
    data = _random(max(1, total_bytes - len(wasm) - 16), seed)
    offset_expr = b"\x41" + _sleb(DATA_AT) + b"\x0b"  # i32.const DATA_AT; end
    body = _leb(1) + b"\x00" + offset_expr + _leb(len(data)) + data
    return wasm[:start] + bytes([_DATA_SECTION]) + _leb(len(body)) + body + wasm[end:]


def _sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        done = (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def _random(n: int, seed: int) -> bytes:
    """Incompressible bytes (so no layer's compression flatters the curve), made fast."""
    return random.Random(seed).randbytes(n)
