"""Unit tests of the image builder's pure parts (the full build is exercised by every VM test)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from unikernel import image


def test_prune_keeps_the_newest_and_the_current(tmp_path: Path) -> None:
    dirs = []
    for i in range(6):
        d = tmp_path / f"img{i}"
        d.mkdir()
        os.utime(d, (1000 + i, 1000 + i))
        dirs.append(d)
    current = dirs[0]  # oldest, but in use
    image._prune_images(tmp_path, current)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img0", "img4", "img5"]


def test_sourceless_pyc_imports_without_its_source(tmp_path: Path) -> None:
    src = tmp_path / "src.py"
    src.write_text("VALUE = 41 + 1\n")
    pkg = tmp_path / "out"
    pkg.mkdir()
    (pkg / "probe_mod.pyc").write_bytes(image._pyc(src))
    spec = importlib.util.spec_from_file_location("probe_mod", pkg / "probe_mod.pyc")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.VALUE == 42
    assert "probe_mod" not in sys.modules


def test_init_script_runs_the_agent_without_site() -> None:
    first = image.INIT_SCRIPT.splitlines()[0]
    assert first.startswith(f"#!{image.GUEST_PYTHON} -S")
    assert "wasm_runtime.agent import main" in image.INIT_SCRIPT
