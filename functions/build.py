"""Compile every functions/*/*.wat into functions/build/NAME.wasm: python functions/build.py"""

from __future__ import annotations

import sys
from pathlib import Path

import wasmtime

FUNCTIONS_DIR = Path(__file__).resolve().parent
BUILD_DIR = FUNCTIONS_DIR / "build"


def build(out_dir: Path = BUILD_DIR) -> list[Path]:
    """Compile each WAT source; returns the written .wasm paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(FUNCTIONS_DIR.glob("*/*.wat")):
        target = out_dir / f"{source.stem}.wasm"
        target.write_bytes(wasmtime.wat2wasm(source.read_text()))
        written.append(target)
    return written


def main() -> int:
    for path in build():
        print(f"{path}  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
