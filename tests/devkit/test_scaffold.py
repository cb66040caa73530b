"""unifaas new: every template is listed, renders with the function's name and refuses what
it cannot do; its manifest is a valid one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devkit import scaffold, toolchains
from devkit.errors import DevkitError, UnknownTemplate
from gateway.cli import manifest

CLI = [sys.executable, "-m", "gateway.cli"]


@pytest.mark.parametrize("template", scaffold.TEMPLATE_LIST, ids=lambda t: t.name)
def test_each_template_renders_a_function_with_a_valid_manifest(
    tmp_path: Path, template: scaffold.Template
) -> None:
    written = scaffold.create(template, "my-fn", tmp_path / "my-fn")
    assert {p.name for p in written} >= {"unifaas.toml", "README.md"}
    for path in written:
        assert scaffold.PLACEHOLDER not in path.read_text()
    found = manifest.load(tmp_path / "my-fn" / manifest.MANIFEST)
    assert found.name == "my-fn" and found.build is not None
    assert found.build.toolchain == template.toolchain
    assert toolchains.get(template.toolchain).name == template.toolchain
    assert found.config.get("abi", "raw" if template.abi != "http" else "http") in (
        template.abi,
        "http",
    )
    assert all(w.exists() for w in found.build.watch)


def test_new_refuses_a_bad_name_a_full_directory_and_an_unknown_template(
    tmp_path: Path,
) -> None:
    with pytest.raises(DevkitError, match="not a function name"):
        scaffold.create(scaffold.get("c"), "Bad_Name", tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DevkitError, match="not empty"):
        scaffold.create(scaffold.get("c"), "full", tmp_path / "full")
    with pytest.raises(UnknownTemplate, match="unifaas new --list"):
        scaffold.get("cobol")


def test_the_cli_lists_templates_and_says_what_to_do_next(tmp_path: Path) -> None:
    listed = subprocess.run([*CLI, "new", "--list"], capture_output=True, text=True, check=True)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        t.name for t in scaffold.TEMPLATE_LIST
    ]
    made = subprocess.run(
        [*CLI, "new", "demo", "--template", "wat"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "unifaas build" in made.stdout and (tmp_path / "demo" / "app.wat").exists()
    built = subprocess.run(
        [*CLI, "build"], cwd=tmp_path / "demo", capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "demo" / "build" / "demo.wasm").read_bytes()[:4] == b"\0asm"
    again = subprocess.run(
        [*CLI, "new", "demo", "--template", "wat"], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 1
    assert again.stderr.startswith("unifaas: error:") and "not empty" in again.stderr


def test_a_failed_build_shows_its_output_and_a_missing_toolchain_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devkit.build import build
    from devkit.errors import BuildFailed, ToolchainMissing

    scaffold.create(scaffold.get("wat"), "broken", tmp_path / "broken")
    (tmp_path / "broken" / "app.wat").write_text("(module (func $f (i32.bogus)))")
    found = manifest.load(tmp_path / "broken" / manifest.MANIFEST)
    with pytest.raises(BuildFailed, match="exited 1"):
        build(found, quiet=True)
    monkeypatch.setenv("UNIFAAS_TOOLCHAINS", str(tmp_path / "none"))
    scaffold.create(scaffold.get("zig"), "zz", tmp_path / "zz")
    with pytest.raises(ToolchainMissing, match="unifaas toolchain install zig"):
        build(manifest.load(tmp_path / "zz" / manifest.MANIFEST))
