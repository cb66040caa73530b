"""Components from WebAssembly text: a core module's WAT, wrapped by ``wasm-tools`` into a
component with the WASI 0.2.0 WIT that the ``spin-sdk`` package ships (PyPI; pinned in
pyproject.toml). Nothing of WASI's WIT is kept in this repository.

The core module imports by the component model's names
(``"wasi:http/types@0.2.0" "[method]fields.append"``, ``"[resource-drop]fields"``) with
the canonical ABI's flattened signatures (``wasm-tools component embed --dummy WIT -w
wasi:http/proxy@0.2.0 | wasm-tools print`` lists them), exports ``memory``,
``cabi_realloc`` and ``wasi:http/incoming-handler@0.2.0#handle``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib import resources
from pathlib import Path

PROXY_WORLD = "wasi:http/proxy@0.2.0"
# The WASI 0.2.0 packages of spin-sdk 3.4.1's WIT (its deps/ folder), by folder name.
WASI_PACKAGES = ("cli", "clocks", "filesystem", "http", "io", "random", "sockets")
MISSING_TOOLS = (
    "building components needs wasm-tools and the WASI WIT of spin-sdk 3.4.1: "
    ".venv/bin/pip install -e '.[dev]' (make bootstrap does this)"
)


class ComponentBuildError(Exception):
    """A component could not be built (its WAT, its world, or a missing tool)."""


def _spin_wit() -> Path:
    try:
        root = Path(str(resources.files("spin_sdk").joinpath("wit")))
    except ModuleNotFoundError:
        raise ComponentBuildError(MISSING_TOOLS) from None
    if not (root / "deps" / "http" / "types.wit").exists():
        raise ComponentBuildError(f"{root} has no WASI 0.2.0 http package: {MISSING_TOOLS}")
    return root


def wit_dir(dest: Path, world_wit: str | None = None) -> Path:
    """A WIT tree in ``dest``: the WASI packages under ``deps/``, and as its root package
    ``world_wit`` (a package of our own that includes WASI worlds) or, without one,
    ``wasi:http`` itself (what ``-w wasi:http/proxy@0.2.0`` needs)."""
    source = _spin_wit() / "deps"
    deps = dest / "deps"
    deps.mkdir(parents=True, exist_ok=True)
    for package in WASI_PACKAGES:
        if package == "http" and world_wit is None:
            for wit in (source / package).glob("*.wit"):
                shutil.copy(wit, dest / wit.name)
            continue
        shutil.copytree(source / package, deps / package, dirs_exist_ok=True)
    if world_wit is not None:
        (dest / "world.wit").write_text(world_wit)
    return dest


def componentize_python(app_dir: Path, out: Path, module: str = "app") -> Path:
    """``app_dir``'s Python app (``module``.py, a wasi:http incoming handler) built into a
    component by componentize-py, against the WASI 0.2.0 WIT."""
    tool = shutil.which("componentize-py") or str(Path(sys.executable).with_name("componentize-py"))
    if not Path(tool).exists():
        raise ComponentBuildError(MISSING_TOOLS.replace("wasm-tools", "componentize-py"))
    with tempfile.TemporaryDirectory(prefix="unifaas-componentize-") as tmp:
        wit = wit_dir(Path(tmp) / "wit")
        cmd = [tool, "-d", str(wit), "-w", PROXY_WORLD, "componentize", module,
               "-p", str(app_dir), "-o", str(out.resolve())]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp)
        if done.returncode != 0:
            raise ComponentBuildError(f"componentize-py: {done.stderr.strip()[-2000:]}")
    return out


def spin_build(app_dir: Path, out: Path, venv: Path) -> Path:
    """A Spin app built the way ``spin build`` builds it: the command its ``spin.toml`` gives
    its one component, run in its directory with ``venv`` (where Spin's SDK and the
    componentize-py it needs are) first on the PATH; its ``source`` is the result."""
    manifest = tomllib.loads((app_dir / "spin.toml").read_text())
    components = manifest.get("component", {})
    if len(components) != 1:
        raise ComponentBuildError(f"{app_dir}/spin.toml: one component expected")
    (component,) = components.values()
    command, source = component["build"]["command"], app_dir / component["source"]
    if not (venv / "bin" / "componentize-py").exists():
        raise ComponentBuildError(
            f"no Spin build environment at {venv}: scripts/bootstrap.sh creates it"
        )
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run(
        command, shell=True, cwd=app_dir, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ComponentBuildError(f"{command}: {done.stderr.strip()[-2000:]}")
    shutil.move(source, out)
    return out


# Where the JavaScript toolchain keeps what the build needs, inside a function's node_modules.
JCO_WASI_WIT = Path("@bytecodealliance/jco/lib/wit/builtin/0.2.12")
STARLINGMONKEY = Path("@bytecodealliance/componentize-js/lib/starlingmonkey_embedding.wasm")
_HANDLER_EXPORT = re.compile(rb"wasi:http/incoming-handler@(0\.2\.\d+)")


def js_wit_dir(dest: Path, node_modules: Path) -> Path:
    """The WASI WIT that jco ships (0.2.12), as a tree for the proxy world whose wasi:http
    version is the one componentize-js's engine exports its handler at (0.2.10 in 0.23):
    the interfaces are the same, and a world of another patch finds no handler to export."""
    source = node_modules / JCO_WASI_WIT
    engine = (node_modules / STARLINGMONKEY).read_bytes()
    found = _HANDLER_EXPORT.search(engine)
    if not source.is_dir() or found is None:
        raise ComponentBuildError(f"no jco WIT or componentize-js engine under {node_modules}")
    (dest / "deps").mkdir(parents=True, exist_ok=True)
    http = (source / "wasi-http" / "package.wit").read_text()
    (dest / "package.wit").write_text(
        http.replace("wasi:http@0.2.12", f"wasi:http@{found[1].decode()}")
    )
    for package in ("cli", "clocks", "filesystem", "io", "random", "sockets"):
        shutil.copytree(source / f"wasi-{package}", dest / "deps" / package, dirs_exist_ok=True)
    return dest


def componentize_js(app_dir: Path, out: Path) -> Path:
    """``app_dir``'s JavaScript app built by its own ``build.mjs`` (componentize-js), with
    the packages its package.json pins installed in its node_modules (bootstrap does it)."""
    node_modules = app_dir / "node_modules"
    node = shutil.which("node")
    if node is None or not node_modules.is_dir():
        raise ComponentBuildError(
            f"building {app_dir.name} needs Node.js and its npm packages: "
            f"(cd {app_dir} && npm install), which scripts/bootstrap.sh does"
        )
    with tempfile.TemporaryDirectory(prefix="unifaas-js-") as tmp:
        wit = js_wit_dir(Path(tmp) / "wit", node_modules)
        cmd = [node, "build.mjs", str(wit), str(out.resolve())]
        done = subprocess.run(cmd, cwd=app_dir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ComponentBuildError(f"componentize-js: {done.stderr.strip()[-2000:]}")
    return out


def wasm_tools() -> str:
    found = shutil.which("wasm-tools") or str(Path(sys.executable).with_name("wasm-tools"))
    if not Path(found).exists():
        raise ComponentBuildError(MISSING_TOOLS)
    return found


def component_from_core_wat(
    core_wat: str, *, world: str = PROXY_WORLD, world_wit: str | None = None
) -> bytes:
    """The component of ``core_wat`` for ``world`` (a WASI world, or one of ``world_wit``)."""
    tool = wasm_tools()
    with tempfile.TemporaryDirectory(prefix="unifaas-component-") as tmp:
        work = Path(tmp)
        wit = wit_dir(work / "wit", world_wit)
        (work / "core.wat").write_text(core_wat)
        steps = [
            [tool, "component", "embed", str(wit), "-w", world, str(work / "core.wat"),
             "-o", str(work / "embedded.wasm")],
            [tool, "component", "new", str(work / "embedded.wasm"), "-o", str(work / "c.wasm")],
        ]  # fmt: skip
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise ComponentBuildError(f"{' '.join(step[:3])}: {done.stderr.strip()}")
        return (work / "c.wasm").read_bytes()
