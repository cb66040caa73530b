"""Unit tests of the image builder's pure parts (the full build is exercised by every VM test)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from unikernel import image
from unikernel.errors import ImageBuildError
from unikernel.image import PREBUILT_FILES, GuestImage, ensure_image


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


@pytest.mark.vm
def test_a_prebuilt_kernel_and_floor_give_the_same_image(
    guest_image: GuestImage, tmp_path: Path
) -> None:
    """What a container image ships (UNIFAAS_VM_PREBUILT_DIR): no kernel source, no compiler."""
    prebuilt = tmp_path / "guest"
    prebuilt.mkdir()
    for source, name in zip(
        (guest_image.kernel, guest_image.floor_initrd), PREBUILT_FILES, strict=True
    ):
        shutil.copyfile(source, prebuilt / name)
    cache = guest_image.initrd.parent.parent.parent  # <cache>/images/<key>/initramfs.cpio
    image = ensure_image(cache, lambda _: None, prebuilt=prebuilt)
    assert image.key == guest_image.key and image.initrd == guest_image.initrd
    assert image.kernel == prebuilt / "vmlinux" and image.floor_initrd == prebuilt / "floor.cpio"


def test_a_prebuilt_directory_missing_a_part_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vmlinux").write_bytes(b"\x7fELF")
    with pytest.raises(ImageBuildError, match=r"has no floor\.cpio"):
        ensure_image(tmp_path / "cache", lambda _: None, prebuilt=tmp_path)
