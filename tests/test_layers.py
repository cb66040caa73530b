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
PACKAGES = ("gateway", "scheduler", "unikernel", "wasm_runtime", "devkit", "container")
# What each package may import of ours: the layers below it, except that the
# HTTP edge never reaches past the scheduler to the VMs themselves.
ALLOWED = {
    "gateway": {"gateway", "scheduler", "wasm_runtime"},
    "scheduler": {"scheduler", "unikernel", "wasm_runtime"},
    "unikernel": {"unikernel", "wasm_runtime"},
    "wasm_runtime": {"wasm_runtime"},
    # A developer's tools: the CLI's manifest and the runtime's CLI helpers, no platform.
    "devkit": {"devkit", "gateway", "wasm_runtime"},
    # The image bakes the guest in (unikernel) and runs the platform only as containers.
    "container": {"container", "unikernel", "wasm_runtime"},
}
OURS = {*PACKAGES, "functions", "loadtests", "tests"}
MAX_MODULE_LINES = 500

# Inside the scheduler: what each subpackage may import of the others (see its __init__).
# The shared modules at its root are everyone's and import no subpackage.
SCHEDULER_SHARED = {"errors", "model", "settings"}
SCHEDULER_ALLOWED = {
    "state": set(),
    "hostcalls": {"state"},
    "registry": {"state", "hostcalls"},
    "asyncq": {"state"},
    "pool": {"hostcalls"},
    "scaling": {"pool", "registry"},
    "roles": {"state", "hostcalls", "registry", "asyncq", "pool", "scaling"},
}
# The scheduler's only modules that touch unikernel (VMs and child processes).
SCHEDULER_UNIKERNEL_SEAMS = {"pool/sandbox.py", "roles/node.py", "state/redis_server.py"}


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


def _imported_modules(path: Path) -> set[str]:
    """Every dotted module ``path`` imports (``from a.b import c`` counts ``a.b`` and ``a.b.c``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _scheduler_parts(path: Path) -> set[str]:
    return {
        name.split(".")[1]
        for name in _imported_modules(path)
        if name.startswith("scheduler.") and name.split(".")[1] in SCHEDULER_ALLOWED
    }


def test_the_scheduler_is_its_shared_modules_and_the_subpackages_drawn() -> None:
    root = ROOT / "scheduler"
    assert {p.stem for p in root.glob("*.py")} == {"__init__", *SCHEDULER_SHARED}
    assert {p.name for p in root.iterdir() if (p / "__init__.py").exists()} == set(
        SCHEDULER_ALLOWED
    )


@pytest.mark.parametrize("part", sorted(SCHEDULER_ALLOWED))
def test_scheduler_subpackages_point_one_way(part: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(
            _scheduler_parts(path) - SCHEDULER_ALLOWED[part] - {part}
        )
        for path in (ROOT / "scheduler" / part).rglob("*.py")
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_scheduler_shared_modules_import_no_subpackage() -> None:
    shared = [ROOT / "scheduler" / f"{name}.py" for name in sorted(SCHEDULER_SHARED)]
    assert {str(p.relative_to(ROOT)): sorted(_scheduler_parts(p)) for p in shared} == {
        str(p.relative_to(ROOT)): [] for p in shared
    }


def test_only_the_scheduler_seams_touch_unikernel() -> None:
    touching = {
        str(path.relative_to(ROOT / "scheduler"))
        for path in modules("scheduler")
        if "unikernel" in imported_packages(path)
    }
    assert touching == SCHEDULER_UNIKERNEL_SEAMS


def test_the_gateway_reaches_the_scheduler_through_its_public_names() -> None:
    """Only what a subpackage's ``__init__`` lists, or the shared modules: the seams stay few."""
    wrong: dict[str, list[str]] = {}
    for path in modules("gateway"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scheduler")
            ):
                continue
            parts = (node.module or "").split(".")
            if len(parts) == 2 and parts[1] in SCHEDULER_SHARED:
                continue
            public = (
                set(importlib.import_module(node.module or "").__all__)
                if len(parts) == 2 and parts[1] in SCHEDULER_ALLOWED
                else set()
            )
            bad = [f"{node.module}.{a.name}" for a in node.names if a.name not in public]
            if bad:
                wrong.setdefault(str(path.relative_to(ROOT)), []).extend(bad)
    assert wrong == {}


def test_the_cli_is_a_client_of_the_http_app_not_a_part_of_it() -> None:
    """The CLI reaches a platform over HTTP; only ``up``, ``node`` and ``gateway`` start one."""
    allowed = {"gateway.cli", "gateway.errors", "gateway.settings", "gateway.auth", "gateway.up"}
    wrong = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in _imported_modules(path)
            if name.startswith("gateway.")
            and not any(name == a or name.startswith(a + ".") for a in allowed)
        )
        for path in (ROOT / "gateway" / "cli").rglob("*.py")
    }
    assert {path: names for path, names in wrong.items() if names} == {}


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


def test_the_cli_imports_neither_redis_nor_the_compiler() -> None:
    """Every CLI command paid 0.16 s for them: the packages it reaches load their heavy
    modules when one of their names is first used, and every listed name is there."""
    import subprocess
    import sys

    code = (
        "import sys, gateway.cli.main\n"
        "heavy = [m for m in ('redis', 'wasm_runtime.compiler', 'scheduler.registry.registry')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import scheduler.hostcalls as h, scheduler.registry as r\n"
        "for package in (h, r):\n"
        "    for name in package.__all__:\n"
        "        getattr(package, name)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
