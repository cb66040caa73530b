"""``unifaas new``: a function's directory from a template (package data under templates/).

Every template is a working HTTP handler that reads its request and answers JSON, with a
``unifaas.toml`` and a README; ``__NAME__`` in a file is the function's name.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from importlib import resources
from pathlib import Path

from devkit.errors import DevkitError, UnknownTemplate

TEMPLATES = Path(str(resources.files("devkit").joinpath("templates")))
PLACEHOLDER = "__NAME__"
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# The hostcall SDK each template gets, copied in from devkit's own data: file in the SDK
# directory -> where it goes in the function's.
SDK = Path(str(resources.files("devkit").joinpath("sdk")))
SHARED = {
    "c": {"unifaas.h": "unifaas.h"},
    "rust": {"unifaas.rs": "src/unifaas.rs"},
    "go": {"unifaas.go": "unifaas.go"},
    "zig": {"unifaas.zig": "unifaas.zig"},
    "assemblyscript": {"unifaas.ts": "assembly/unifaas.ts"},
}


@dataclasses.dataclass(frozen=True)
class Template:
    name: str
    toolchain: str
    abi: str  # raw, wagi, or http (a wasi:http component)
    description: str


TEMPLATE_LIST = (
    Template("python", "python", "http", "Python, a wasi:http component (componentize-py)"),
    Template("js", "js", "http", "JavaScript, a wasi:http component (componentize-js)"),
    Template("rust", "rust", "wagi", "Rust, a WASI command (cargo, wasm32-wasi)"),
    Template("go", "go", "wagi", "Go, a WASI command (GOOS=wasip1)"),
    Template("zig", "zig", "wagi", "Zig, a WASI command"),
    Template("assemblyscript", "assemblyscript", "wagi", "AssemblyScript, a WASI command"),
    Template("c", "c", "wagi", "C, a WASI command (clang and wasi-libc)"),
    Template("wat", "wat", "raw", "WebAssembly text, a WASI command"),
)
BY_NAME = {t.name: t for t in TEMPLATE_LIST}


def get(name: str) -> Template:
    found = BY_NAME.get(name)
    if found is None:
        raise UnknownTemplate(f"no template {name!r}; unifaas new --list shows them")
    return found


def create(template: Template, name: str, where: Path) -> list[Path]:
    """Write ``template`` for the function ``name`` into the new directory ``where``."""
    if not NAME_RE.match(name):
        raise DevkitError(
            f"{name!r} is not a function name: 1-63 characters of a-z, 0-9 and '-', "
            "starting with a letter"
        )
    if where.exists() and any(where.iterdir()):
        raise DevkitError(f"{where} exists and is not empty")
    source = TEMPLATES / template.name
    written = []
    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        target = where / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text().replace(PLACEHOLDER, name))
        written.append(target)
    for filename, inside in SHARED.get(template.name, {}).items():
        shutil.copy(SDK / filename, where / inside)
        written.append(where / inside)
    return written
