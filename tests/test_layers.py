"""The shape of the tree: imports point one way, modules stay small, every error is in the tree.

Read from the source (ast), not by importing, so a lazy import inside a
function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import wasm_runtime.errors
from wasm_runtime.errors import UnifaasError

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "scheduler", "unikernel", "wasm_runtime")
# What each package may import of ours: the layers below it, except that the
# HTTP edge never reaches past the scheduler to the VMs themselves.
ALLOWED = {
    "gateway": {"gateway", "scheduler", "wasm_runtime"},
    "scheduler": {"scheduler", "unikernel", "wasm_runtime"},
    "unikernel": {"unikernel", "wasm_runtime"},
    "wasm_runtime": {"wasm_runtime"},
}
OURS = {*PACKAGES, "functions", "loadtests", "tests"}
MAX_MODULE_LINES = 500


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """Top-level names of our packages that ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in OURS)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package])
        for path in modules(package)
    }
    assert {path: names for path, names in wrong.items() if names} == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_stay_small(package: str) -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in modules(package)}
    assert {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_benchmark_in_the_gateway() -> None:
    names = {p.stem for p in modules("gateway")}
    assert not names & {"bench", "baseline", "report", "launch"}


def _all_error_classes() -> set[type[UnifaasError]]:
    for package in (*PACKAGES, "loadtests.bench"):
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(pkg.__path__, f"{package}."):
            if info.name.endswith(("__main__", "agent_main")):
                continue
            importlib.import_module(info.name)
    for name in ("loadtests.errors", "loadtests.launch", "loadtests.cli"):
        importlib.import_module(name)
    found: set[type[UnifaasError]] = set()
    todo = [UnifaasError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return {c for c in found if not c.__module__.startswith("tests.")}


def test_every_error_class_is_in_the_one_tree() -> None:
    tree = inspect.getdoc(wasm_runtime.errors) or ""
    drawn = {
        line.split("+-- ")[-1].split("(")[0].split()[0]
        for line in tree.splitlines()
        if "+-- " in line
    }
    drawn.add("UnifaasError")
    assert sorted(c.__name__ for c in _all_error_classes() if c.__name__ not in drawn) == []


def test_every_error_has_a_message() -> None:
    from scheduler.errors import InvalidConfig

    err = InvalidConfig("memory_mib", "must be 1..1024")
    assert err.message == str(err) == "memory_mib: must be 1..1024"
