"""The container build's pure parts, without Docker or debootstrap: the spec as Docker
reads it back, the content key, the image Python's requirements, the root's slimming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from container import build, rootfs
from container.errors import ContainerError
from container.settings import ContainerSettings
from container.spec import KEY_LABEL, SPEC, InspectedImage


def _inspect_of(changes: list[str]) -> dict[str, object]:
    """What ``docker image inspect`` shows for an import with these ``--change`` lines."""
    config: dict[str, object] = {"Env": [], "Labels": {}, "ExposedPorts": {}}
    for change in changes:
        verb, _, rest = change.partition(" ")
        if verb in ("ENTRYPOINT", "CMD"):
            config["Entrypoint" if verb == "ENTRYPOINT" else "Cmd"] = json.loads(rest)
        elif verb == "ENV":
            config["Env"].append(rest)  # type: ignore[attr-defined]
        elif verb == "EXPOSE":
            config["ExposedPorts"] = {rest: {}}
        elif verb == "WORKDIR":
            config["WorkingDir"] = rest
        elif verb == "LABEL":
            name, _, value = rest.partition("=")
            config["Labels"][name] = value  # type: ignore[index]
    return {"Config": config, "Size": 123}


def test_an_image_imported_with_the_spec_is_the_spec() -> None:
    inspected = InspectedImage.from_inspect(_inspect_of(SPEC.changes("abc")))
    assert inspected.differences(SPEC) == []
    assert inspected.labels[KEY_LABEL] == "abc"
    assert inspected.as_spec().port == SPEC.port
    assert inspected.as_spec().env_dict()["UNIFAAS_HOST"] == "0.0.0.0"


def test_an_image_that_departs_from_the_spec_is_caught() -> None:
    data = _inspect_of(SPEC.changes("abc"))
    data["Config"]["Entrypoint"] = ["/bin/sh"]  # type: ignore[index]
    data["Config"]["Env"] = []  # type: ignore[index]
    wrong = InspectedImage.from_inspect(data).differences(SPEC)
    assert wrong[0].startswith("entrypoint") and len(wrong) == 1 + len(SPEC.env)


def test_the_key_changes_with_a_source_and_with_a_dependency(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "pkg").mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "scripts" / "vm-user.sh").write_text("true\n")
    (root / "pyproject.toml").write_text('[tool.setuptools.packages.find]\ninclude = ["pkg*"]\n')
    (root / "pkg" / "a.py").write_text("x = 1\n")
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"ignored")
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"kernel")
    settings = ContainerSettings(cache_dir=tmp_path / "cache")

    def key(requirements: list[str]) -> str:
        return build.content_key(settings, root, requirements, [kernel])

    first = key(["a==1"])
    (root / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"still ignored")
    assert key(["a==1"]) == first
    assert key(["a==2"]) != first
    (root / "pkg" / "a.py").write_text("x = 2\n")
    assert key(["a==1"]) != first


def test_requirements_follow_the_image_python_not_this_one() -> None:
    """redis-py needs async-timeout below Python 3.11.3 only: the image's 3.11.2 gets it."""
    old = build.runtime_requirements("3.11.2")
    new = build.runtime_requirements("3.11.9")
    assert any(r.startswith("wasmtime==") for r in new)
    extra = set(old) - set(new)
    assert {r.split(">")[0].split("=")[0] for r in extra} <= {"async-timeout"}


def test_the_root_python_version_comes_from_its_dpkg_record(tmp_path: Path) -> None:
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(
        "Package: python3.11\nVersion: 3.11.2-6\n\n"
        "Package: python3.11-minimal\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u6\n"
    )
    assert rootfs._python_version(tmp_path) == "3.11.2"
    status.write_text("Package: bash\nVersion: 5.2\n")
    with pytest.raises(ContainerError):
        rootfs._python_version(tmp_path)


def test_slimming_keeps_copyrights_and_what_runs(tmp_path: Path) -> None:
    for path in (
        "usr/share/doc/pkg/copyright",
        "usr/share/doc/pkg/changelog.gz",
        "usr/share/man/man1/x.1.gz",
        "usr/share/locale/de/LC_MESSAGES/x.mo",
        "usr/lib/x86_64-linux-gnu/gconv/UTF-16.so",
        "usr/bin/qemu-system-x86_64",
        "var/lib/apt/lists/deb.debian.org_dists",
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    (tmp_path / "usr/share/doc/other").symlink_to("pkg")
    rootfs.slim(tmp_path)
    left = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert left == {"usr/share/doc/pkg/copyright", "usr/bin/qemu-system-x86_64"}
