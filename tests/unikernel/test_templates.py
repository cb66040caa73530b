"""The store of per-version templates: bounded by count and space, least recently used
first, nothing kept for a version forgotten while its template was being made."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from unikernel.settings import VMSettings
from unikernel.snapshot import Template, copy_sparse, template_bytes
from unikernel.templates import VersionTemplates
from wasm_runtime.replies import Hello

MiB = 1024 * 1024


def fake_template(root: Path, fn_id: str, mib: int = 1) -> Template:
    """A template's files without a VM: enough for the store, which only counts and deletes."""
    directory = root / fn_id
    directory.mkdir()
    (directory / "ram").write_bytes(b"\1" * mib * MiB)
    (directory / "state").write_bytes(b"state")
    hello: Any = Hello.__new__(Hello)
    image: Any = None
    return Template(image, "tcg", directory, directory / "ram", directory / "state", hello, fn_id)


def store(**settings: Any) -> VersionTemplates:
    return VersionTemplates(VMSettings(**settings))


async def keep(templates: VersionTemplates, root: Path, fn_id: str, mib: int = 1) -> None:
    async def make() -> Template:
        return fake_template(root, fn_id, mib)

    await templates.make(fn_id, make)


async def test_least_recently_used_go_first_past_the_count(tmp_path: Path) -> None:
    templates = store(version_templates=2)
    await keep(templates, tmp_path, "a@1")
    await keep(templates, tmp_path, "b@1")
    assert templates.get("a@1") is not None  # a is now the most recently used
    await keep(templates, tmp_path, "c@1")
    assert templates.get("b@1") is None and not (tmp_path / "b@1").exists()
    assert templates.get("a@1") is not None and templates.get("c@1") is not None
    assert (templates.made, templates.evicted, len(templates)) == (3, 1, 2)


async def test_space_bounds_what_is_held(tmp_path: Path) -> None:
    templates = store(version_template_space_mib=5)
    await keep(templates, tmp_path, "a@1", mib=2)
    await keep(templates, tmp_path, "b@1", mib=2)
    await keep(templates, tmp_path, "c@1", mib=2)
    assert len(templates) == 2 and templates.get("a@1") is None
    assert templates.held_bytes() <= 5 * MiB
    await keep(templates, tmp_path, "huge@1", mib=6)  # alone over the space: not kept
    assert templates.get("huge@1") is None and not (tmp_path / "huge@1").exists()
    assert len(templates) == 2  # and nothing evicted for it


async def test_forgotten_while_made_is_not_kept_and_failures_are_counted(
    tmp_path: Path,
) -> None:
    templates = store()
    started = asyncio.Event()

    async def slow() -> Template:
        started.set()
        await asyncio.sleep(0.05)
        return fake_template(tmp_path, "a@1")

    making = asyncio.create_task(templates.make("a@1", slow))
    await started.wait()
    assert not templates.wanted("a@1")  # one at a time per version
    templates.forget("a@1")
    assert await making is None and not (tmp_path / "a@1").exists()

    async def broken() -> Template:
        raise RuntimeError("QEMU said no")

    assert await templates.make("b@1", broken) is None
    assert templates.failures == 1 and templates.wanted("b@1")


async def test_a_template_whose_files_went_is_dropped(tmp_path: Path) -> None:
    templates = store()
    await keep(templates, tmp_path, "a@1")
    (tmp_path / "a@1" / "ram").unlink()
    assert templates.get("a@1") is None and templates.wanted("a@1")


@pytest.mark.parametrize("snapshots, count", [(False, 16), (True, 0)])
def test_off_without_snapshots_or_with_a_count_of_zero(snapshots: bool, count: int) -> None:
    assert not store(snapshots=snapshots, version_templates=count).wanted("a@1")


def test_a_sparse_copy_keeps_holes_and_data(tmp_path: Path) -> None:
    source, target = tmp_path / "ram", tmp_path / "copy"
    with open(source, "wb") as f:
        f.truncate(64 * MiB)
        f.seek(10 * MiB)
        f.write(b"x" * MiB)
        f.seek(63 * MiB)
        f.write(b"end")
    copy_sparse(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert target.stat().st_size == 64 * MiB
    assert target.stat().st_blocks * 512 < 4 * MiB  # the holes stayed holes
    template = fake_template(tmp_path, "t", mib=1)
    assert template_bytes(template) >= MiB
