"""The example functions, found through the installed package (never by a path into a checkout).

Each example lives in ``functions/NAME/``; the WAT ones are usable directly from
Python (benches, tests, load tests) without the C toolchain ``build.py`` needs.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import wasmtime


def wat_source(name: str) -> str:
    """The WAT source of example ``name`` (``functions/NAME/NAME.wat``)."""
    return resources.files(__name__).joinpath(name, f"{name}.wat").read_text()


@functools.cache
def wat_module(name: str) -> bytes:
    """Example ``name`` compiled from its WAT source to a wasm module."""
    return bytes(wasmtime.wat2wasm(wat_source(name)))


@functools.cache
def component_module(name: str) -> bytes:
    """Example ``name``, a component whose core module is ``functions/NAME/NAME.component.wat``
    (built with wasm-tools and the WASI WIT of spin-sdk: see functions.components)."""
    from functions.components import component_from_core_wat

    wat = resources.files(__name__).joinpath(name, f"{name}.component.wat").read_text()
    return component_from_core_wat(wat)


@functools.cache
def c_example(name: str, sources: tuple[Path, ...] = ()) -> bytes:
    """A C example (``functions/NAME/*.c``, or ``sources``) built for wasm32-wasi with the
    SDK header, as ``make functions`` builds it (the zig toolchain)."""
    from functions.build import FUNCTIONS_DIR, build_one

    files = list(sources) or sorted((FUNCTIONS_DIR / name).glob("*.c"))
    out = Path(tempfile.mkdtemp(prefix="unifaas-c-"))
    try:
        return build_one(name, "c", files, out).read_bytes()
    finally:
        shutil.rmtree(out, ignore_errors=True)
