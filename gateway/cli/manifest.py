"""``unifaas.toml``: a function's name, how it is built and how it is deployed, in one file.

``unifaas build`` runs its ``[build] command``; ``unifaas deploy`` in its directory needs no
arguments (flags given still override). Secrets are named here by reference only (an
environment variable or a file), never by value. A bad manifest is one line naming the file
and the field::

    name = "hello"

    [build]
    command = "cargo build --release --target wasm32-wasi"
    output = "target/wasm32-wasi/release/hello.wasm"
    toolchain = "rust"          # what `unifaas toolchain install` gives it
    watch = ["src", "Cargo.toml"]

    [function]
    abi = "wagi"                # raw | wagi; a component is http on its own
    timeout_s = 10
    memory_mib = 64
    min_warm = 0
    max_vms = 4
    concurrency = 4
    keep_alive_s = 120
    public = true
    args = []
    files = "static"            # a directory, preopened at / in every call
    allow_hosts = ["example.com:443"]
    kv_max_keys = 1000
    kv_max_bytes = 1048576

    [function.env]
    GREETING = "hello"

    [secrets]
    API_KEY = { env = "API_KEY" }
    DB_PASSWORD = { file = "db_password.txt" }
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from gateway.errors import ManifestError

MANIFEST = "unifaas.toml"

# [function] key -> the type its value must have (bool is checked before int: it is one).
_FUNCTION_FIELDS: dict[str, tuple[type, ...]] = {
    "abi": (str,),
    "timeout_s": (int, float),
    "memory_mib": (int,),
    "min_warm": (int,),
    "max_vms": (int,),
    "concurrency": (int,),
    "keep_alive_s": (int, float),
    "max_in_flight": (int,),
    "rate_limit": (int, float),
    "kv_max_keys": (int,),
    "kv_max_bytes": (int,),
    "public": (bool,),
    "args": (list,),
    "allow_hosts": (list,),
    "env": (dict,),
    "files": (str,),
}
_TOP = {"name", "build", "function", "secrets"}
_BUILD = {"command", "output", "toolchain", "watch"}


@dataclasses.dataclass(frozen=True)
class Build:
    command: str
    output: Path  # absolute
    toolchain: str | None = None
    watch: tuple[Path, ...] = ()  # absolute; files or directories


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A parsed ``unifaas.toml``; paths in it are resolved against its directory."""

    path: Path
    name: str
    build: Build | None
    config: dict[str, Any]  # FunctionConfig fields, as the deploy API takes them
    files: Path | None
    secrets: dict[str, dict[str, str]]  # NAME -> {"env": VAR} or {"file": PATH}

    @property
    def directory(self) -> Path:
        return self.path.parent

    def secret_values(self) -> dict[str, str]:
        """The secrets' values, read now from where the manifest says they are."""
        values = {}
        for name, ref in self.secrets.items():
            if "env" in ref:
                value = os.environ.get(ref["env"])
                if value is None:
                    raise ManifestError(
                        f"{self.path}: secrets.{name}: the environment variable "
                        f"{ref['env']} is not set"
                    )
            else:
                try:
                    value = (self.directory / ref["file"]).read_text().rstrip("\n")
                except OSError as err:
                    raise ManifestError(
                        f"{self.path}: secrets.{name}: cannot read {ref['file']}: "
                        f"{err.strerror or err}"
                    ) from err
            values[name] = value
        return values


def find(start: Path | None = None) -> Path | None:
    """The manifest in ``start`` (default the working directory), if there is one."""
    candidate = (start or Path.cwd()) / MANIFEST
    return candidate if candidate.is_file() else None


def load(path: Path) -> Manifest:
    """Read and check ``path``; ManifestError names the file and the first bad field."""
    path = path.resolve()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise ManifestError(f"{path}: cannot read it: {err.strerror or err}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: not valid TOML: {err}") from err
    return parse(path, data)


def parse(path: Path, data: dict[str, Any]) -> Manifest:
    def bad(field: str, message: str) -> ManifestError:
        return ManifestError(f"{path}: {field}: {message}")

    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise bad(unknown[0], f"unknown key (known: {', '.join(sorted(_TOP))})")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise bad("name", "required: the function's name")
    base = path.parent
    build = _build(data.get("build"), base, bad)
    config, files = _function(data.get("function", {}), base, bad)
    secrets = _secrets(data.get("secrets", {}), bad)
    return Manifest(path, name, build, config, files, secrets)


def _table(value: Any, field: str, bad: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(field, "must be a table")
    return value


def _build(value: Any, base: Path, bad: Any) -> Build | None:
    if value is None:
        return None
    table = _table(value, "build", bad)
    unknown = sorted(set(table) - _BUILD)
    if unknown:
        raise bad(f"build.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_BUILD))})")
    for key in ("command", "output"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise bad(f"build.{key}", "required: a string")
    toolchain = table.get("toolchain")
    if toolchain is not None and not isinstance(toolchain, str):
        raise bad("build.toolchain", "must be a string")
    watch = table.get("watch", [])
    if not isinstance(watch, list) or not all(isinstance(w, str) for w in watch):
        raise bad("build.watch", "must be a list of paths")
    return Build(
        table["command"], base / table["output"], toolchain, tuple(base / w for w in watch)
    )


def _function(value: Any, base: Path, bad: Any) -> tuple[dict[str, Any], Path | None]:
    table = _table(value, "function", bad)
    config: dict[str, Any] = {}
    files = None
    for key, item in table.items():
        field = f"function.{key}"
        kinds = _FUNCTION_FIELDS.get(key)
        if kinds is None:
            raise bad(field, f"unknown key (known: {', '.join(sorted(_FUNCTION_FIELDS))})")
        if not _of_kind(item, kinds):
            raise bad(field, f"must be {' or '.join(k.__name__ for k in kinds)}")
        if key == "files":
            files = base / item
            if not files.is_dir():
                raise bad(field, f"{item} is not a directory")
        elif key == "env":
            if not all(isinstance(v, str) for v in item.values()):
                raise bad(field, "values must be strings")
            config[key] = dict(item)
        elif key in ("args", "allow_hosts"):
            if not all(isinstance(v, str) for v in item):
                raise bad(field, "must be a list of strings")
            config[key] = list(item)
        else:
            config[key] = item
    return config, files


def _of_kind(item: Any, kinds: tuple[type, ...]) -> bool:
    """``item`` is one of ``kinds`` (a bool is no int here, though Python says it is)."""
    return isinstance(item, bool) == (bool in kinds) and isinstance(item, kinds)


def _secrets(value: Any, bad: Any) -> dict[str, dict[str, str]]:
    table = _table(value, "secrets", bad)
    secrets = {}
    for name, ref in table.items():
        field = f"secrets.{name}"
        if isinstance(ref, str):
            raise bad(field, 'a secret is a reference, never its value: { env = "VAR" } '
                      'or { file = "PATH" }')  # fmt: skip
        if not isinstance(ref, dict) or len(ref) != 1 or not set(ref) <= {"env", "file"}:
            raise bad(field, 'must be { env = "VAR" } or { file = "PATH" }')
        ((kind, where),) = ref.items()
        if not isinstance(where, str) or not where:
            raise bad(field, f"{kind} must be a non-empty string")
        secrets[name] = {kind: where}
    return secrets
