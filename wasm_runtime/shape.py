"""What a module's binary declares, read without compiling it, and the bounds a deploy enforces.

Compiling is the expensive and the dangerous step (a compile bomb: a huge
number of functions or one enormous body), so the bounds are checked on the
raw sections first. The reader follows the binary format's length prefixes
only: it does not validate (wasmtime does that next) and never raises
anything but :class:`InvalidModule`.
"""

from __future__ import annotations

import dataclasses

from wasm_runtime.errors import InvalidModule

MIB = 1024 * 1024
WASM_PAGE_BYTES = 64 * 1024
# Section ids of the core binary format.
_IMPORT, _FUNCTION, _TABLE, _MEMORY, _CODE = 2, 3, 4, 5, 10
_IMPORT_TABLE, _IMPORT_MEMORY = 1, 2


@dataclasses.dataclass(frozen=True)
class ModuleShape:
    memory_min_bytes: int  # the largest declared minimum of its memories (imported or own)
    table_min_elements: int  # the largest declared minimum of its tables
    functions: int  # bodies in its code section
    largest_body_bytes: int
    code_bytes: int
    memories: int = 0  # imported and own
    tables: int = 0


@dataclasses.dataclass(frozen=True)
class ModuleBounds:
    """What a deploy accepts. Far above real modules (CPython for WASI: ~8,000 functions,
    its largest body ~200 KB), far below what makes the compiler the attack."""

    functions_max: int = 100_000
    body_max_bytes: int = 2 * MIB
    code_max_bytes: int = 32 * MIB
    # A call's Store refuses tables above this (runner.TABLE_ELEMENTS_MAX).
    table_elements_max: int = 1 << 17
    # A call has one linear memory (its cap is that memory's), and each call's instance
    # comes from a pool slot sized for this many tables (engine._use_pooling_allocator).
    memories_max: int = 1
    tables_max: int = 4


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise InvalidModule("malformed", "the module ends in the middle of a section")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self, bits: int = 32) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift >= bits + 7:
                raise InvalidModule("malformed", "an integer in the module is too long")

    def skip(self, n: int) -> None:
        if n > self.end - self.pos:
            raise InvalidModule("malformed", "a length in the module runs past its end")
        self.pos += n

    def name(self) -> None:
        self.skip(self.uleb())

    def limits(self) -> int:
        """The minimum of a limits pair (skipping the maximum)."""
        flags = self.byte()
        bits = 64 if flags & 0x04 else 32  # memory64
        minimum = self.uleb(bits)
        if flags & 0x01:
            self.uleb(bits)
        return minimum


def read_shape(wasm: bytes) -> ModuleShape:
    """The declared sizes of a core module (its header already checked)."""
    r = _Reader(wasm, 8)
    memory_min = table_min = functions = largest = code = memories = tables = 0
    while r.pos < r.end:
        section = r.byte()
        size = r.uleb()
        body = _Reader(wasm, r.pos, r.pos + size)
        r.skip(size)
        if section == _IMPORT:
            for _ in range(body.uleb()):
                body.name()
                body.name()
                kind = body.byte()
                if kind == _IMPORT_TABLE:
                    body.byte()  # reference type
                    table_min = max(table_min, body.limits())
                    tables += 1
                elif kind == _IMPORT_MEMORY:
                    memory_min = max(memory_min, body.limits())
                    memories += 1
                else:
                    # A function's type index, or a global's value type and mutability.
                    body.uleb() if kind == 0 else body.skip(2)
        elif section == _MEMORY:
            count = body.uleb()
            memories += count
            for _ in range(count):
                memory_min = max(memory_min, body.limits())
        elif section == _TABLE:
            count = body.uleb()
            tables += count
            for _ in range(count):
                initialised = body.byte() == 0x40  # else that byte was the reference type
                if initialised:
                    body.byte()  # 0x00
                    body.byte()  # reference type
                table_min = max(table_min, body.limits())
                if initialised:
                    break  # its expression has no length prefix: later tables are not read
        elif section == _CODE:
            code = size
            functions = body.uleb()
            for _ in range(functions):
                length = body.uleb()
                largest = max(largest, length)
                body.skip(length)
    return ModuleShape(
        memory_min * WASM_PAGE_BYTES, table_min, functions, largest, code, memories, tables
    )


def check_shape(shape: ModuleShape, bounds: ModuleBounds) -> None:
    """InvalidModule naming the first bound the module's declared shape exceeds."""
    if shape.functions > bounds.functions_max:
        raise InvalidModule(
            "too_many_functions",
            f"the module has {shape.functions} functions; at most {bounds.functions_max}",
        )
    if shape.largest_body_bytes > bounds.body_max_bytes:
        raise InvalidModule(
            "function_too_large",
            f"a function body is {shape.largest_body_bytes} bytes; at most {bounds.body_max_bytes}",
        )
    if shape.code_bytes > bounds.code_max_bytes:
        raise InvalidModule(
            "code_too_large",
            f"the code section is {shape.code_bytes} bytes; at most {bounds.code_max_bytes}",
        )
    if shape.memories > bounds.memories_max:
        raise InvalidModule(
            "too_many_memories",
            f"the module has {shape.memories} linear memories; a call has at most "
            f"{bounds.memories_max}",
        )
    if shape.tables > bounds.tables_max:
        raise InvalidModule(
            "too_many_tables",
            f"the module has {shape.tables} tables; at most {bounds.tables_max}",
        )
    if shape.table_min_elements > bounds.table_elements_max:
        raise InvalidModule(
            "table_too_large",
            f"a table declares at least {shape.table_min_elements} elements; "
            f"a call may have at most {bounds.table_elements_max}",
        )


def check_memory_cap(shape: ModuleShape, memory_cap_bytes: int) -> None:
    """A module whose declared minimum memory exceeds the function's cap can never run."""
    if shape.memory_min_bytes > memory_cap_bytes:
        raise InvalidModule(
            "memory_above_cap",
            f"the module declares at least {shape.memory_min_bytes // MIB} MiB of memory; "
            f"the function's memory cap is {memory_cap_bytes // MIB} MiB "
            "(deploy with a larger --memory, or lower the module's initial memory)",
        )
