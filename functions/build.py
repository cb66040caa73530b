"""Build every example function into functions/build/NAME.wasm: python functions/build.py

Sources live in functions/NAME/:
  *.wat  WebAssembly text, compiled with wasmtime's wat2wasm (one module per file, named
         after the file: hello/hello.wat -> hello.wasm)
  *.component.wat
         a core module's WebAssembly text wrapped into a wasi:http component with the WASI
         WIT of the spin-sdk package, by wasm-tools (functions/components.py)
  app.py a Python wasi:http app, built into a component by componentize-py (PyPI) against
         the same WIT (hello-py/app.py -> hello-py.wasm)
  app.js a JavaScript app (with its package.json and build.mjs), built into a component
         by componentize-js (npm; scripts/bootstrap.sh installs each app's packages)
  spin.toml
         a Spin app, built by its own build command (Spin's Python SDK 3.x and the
         componentize-py it needs live in .venv-spin, made by scripts/bootstrap.sh;
         UNIFAAS_SPIN_VENV overrides where)
  *.c    C, compiled for wasm32-wasi into one module named after the directory
         (wagi-router/main.c -> wagi-router.wasm), with devkit/sdk (unifaas.h) on the include path

The C compiler is Debian's clang with wasi-libc and the wasm32 compiler-rt builtins
(apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32; scripts/bootstrap.sh
installs them) or, when that is missing, Zig from PyPI (pip install ziglang), which
bundles its own wasi-libc. UNIFAAS_WASI_CC overrides both (a command line).

usage: python functions/build.py [--out DIR] [NAME ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import wasmtime

from functions.components import (
    ComponentBuildError,
    component_from_core_wat,
    componentize_js,
    componentize_python,
    spin_build,
)

FUNCTIONS_DIR = Path(__file__).resolve().parent
BUILD_DIR = FUNCTIONS_DIR / "build"
# unifaas.h, the hostcall imports and helpers (#include "unifaas.h"); `unifaas new` copies it
SDK_DIR = FUNCTIONS_DIR.parent / "devkit" / "sdk"
COMPONENT_SUFFIX = ".component.wat"
PYTHON_APP = "app.py"
SPIN_MANIFEST = "spin.toml"
JS_APP = "app.js"
COMPONENT_LANGUAGES = ("js", "spin", "python", "component")
C_FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", "-s"]
# Where Debian's wasi-libc and libclang-rt-14-dev-wasm32 put their files.
DEBIAN_WASI_HEADERS = Path("/usr/include/wasm32-wasi/stdio.h")
DEBIAN_WASI_BUILTINS = Path("/usr/lib/llvm-14/lib/clang/14.0.6/lib/wasi")
MISSING_CC = (
    "no wasm32-wasi C compiler found. Install Debian's: "
    "apt-get install -y --no-install-recommends clang lld wasi-libc libclang-rt-14-dev-wasm32 "
    "(make bootstrap does this), or Zig from PyPI: .venv/bin/pip install ziglang"
)


def spin_venv() -> Path:
    """Where Spin's Python SDK and its componentize-py are (scripts/bootstrap.sh makes it)."""
    return Path(os.environ.get("UNIFAAS_SPIN_VENV") or FUNCTIONS_DIR.parent / ".venv-spin")


class BuildError(Exception):
    """A source failed to compile or a toolchain is missing."""


def c_compiler() -> list[str]:
    """The command that compiles C for wasm32-wasi (flags and sources follow)."""
    override = os.environ.get("UNIFAAS_WASI_CC")
    if override:
        return shlex.split(override)
    if (
        shutil.which("clang")
        and shutil.which("wasm-ld")
        and DEBIAN_WASI_HEADERS.exists()
        and DEBIAN_WASI_BUILTINS.exists()
    ):
        return ["clang", "--target=wasm32-wasi"]
    if importlib.util.find_spec("ziglang") is not None:
        return [sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi"]
    raise BuildError(MISSING_CC)


def sources() -> dict[str, tuple[str, list[Path]]]:
    """Module name -> (language, source files), for every example."""
    found: dict[str, tuple[str, list[Path]]] = {}
    dirs = (p for p in FUNCTIONS_DIR.iterdir() if p.is_dir() and p != BUILD_DIR)
    for d in sorted(dirs):
        for wat in sorted(d.glob("*.wat")):
            if wat.name.endswith(COMPONENT_SUFFIX):
                found[wat.name.removesuffix(COMPONENT_SUFFIX)] = ("component", [wat])
            else:
                found[wat.stem] = ("wat", [wat])
        if (d / JS_APP).exists() and (d / "package.json").exists():
            found[d.name] = ("js", [d / JS_APP])
        elif (d / SPIN_MANIFEST).exists():
            found[d.name] = ("spin", [d / SPIN_MANIFEST])
        elif (d / PYTHON_APP).exists():
            found[d.name] = ("python", [d / PYTHON_APP])
        c_files = sorted(d.glob("*.c"))
        if c_files:
            found[d.name] = ("c", c_files)
    return found


def _component_built(language: str, source: Path, target: Path) -> Path:
    """One of the component languages: ``source`` is its app (or its core WAT)."""
    if language == "js":
        return componentize_js(source.parent, target)
    if language == "spin":
        return spin_build(source.parent, target, spin_venv())
    if language == "python":
        return componentize_python(source.parent, target)
    target.write_bytes(component_from_core_wat(source.read_text()))
    return target


def build_one(name: str, language: str, files: list[Path], out_dir: Path) -> Path:
    target = out_dir / f"{name}.wasm"
    if language in COMPONENT_LANGUAGES:
        try:
            return _component_built(language, files[0], target)
        except ComponentBuildError as e:
            raise BuildError(f"{files[0]}: {e}") from e
    if language == "wat":
        try:
            target.write_bytes(wasmtime.wat2wasm(files[0].read_text()))
        except wasmtime.WasmtimeError as e:
            raise BuildError(f"{files[0]}: {e}") from e
        return target
    cmd = [*c_compiler(), *C_FLAGS, "-I", str(SDK_DIR), "-o", str(target), *map(str, files)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"{shlex.join(cmd)} failed:\n{done.stderr.strip()}")
    return target


def build(
    out_dir: Path = BUILD_DIR, names: list[str] | None = None, verbose: bool = False
) -> list[Path]:
    """Build the examples (all, or those in ``names``); returns the written .wasm paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    everything = sources()
    unknown = sorted(set(names or []) - set(everything))
    if unknown:
        raise BuildError(f"no example named {', '.join(unknown)}; have {', '.join(everything)}")
    written = []
    for name, (language, files) in everything.items():
        if names and name not in names:
            continue
        if verbose:
            print(f"build: {language:9}  {name}", end="", flush=True)
        target = build_one(name, language, files, out_dir)
        if verbose:
            print(f" -> {target}  {target.stat().st_size} bytes", flush=True)
        written.append(target)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description="Build the example functions to .wasm.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="examples to build (default all)")
    parser.add_argument("--out", type=Path, default=BUILD_DIR, help=f"default {BUILD_DIR}")
    args = parser.parse_args()
    try:
        build(args.out, args.names, verbose=True)
    except BuildError as e:
        print(f"\nbuild: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
