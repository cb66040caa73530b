"""What a deploy brings, checked before anything is compiled or stored: the function's name,
its config fields and their ranges, env and secret names, the allow-list's grammar and the
files bundle. Each check raises ``InvalidConfig`` naming the first field that is wrong."""

from __future__ import annotations

import dataclasses
import io
import re
import tarfile
from pathlib import PurePosixPath

from scheduler.errors import InvalidConfig
from scheduler.hostcalls.outbound import BadHostEntry, parse_host_entry
from scheduler.model import FunctionConfig
from wasm_runtime.bundle import FILES_MAX_BYTES
from wasm_runtime.types import MEMORY_CAP_MAX_MIB

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
ENV_MAX_ENTRIES = 256
ALLOW_HOSTS_MAX = 64

# Config ranges accepted at deploy time.
TIMEOUT_MAX_S = 300.0
MEMORY_MAX_MIB = MEMORY_CAP_MAX_MIB
CONCURRENCY_MAX = 64
MAX_VMS_MAX = 64
MAX_IN_FLIGHT_MAX = 4096
RATE_LIMIT_MAX = 100_000.0


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise InvalidConfig(
            "name",
            f"{name[:64]!r} is not a valid function name: 1-63 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit",
        )


def validate_config(config: FunctionConfig) -> None:
    """Raise InvalidConfig naming the first field out of range."""
    checks: list[tuple[str, bool, str]] = [
        ("abi", config.abi in ("raw", "wagi", "http"), "must be 'raw', 'wagi' or 'http'"),
        (
            "timeout_s",
            0 < config.timeout_s <= TIMEOUT_MAX_S,
            f"must be > 0 and <= {TIMEOUT_MAX_S:g}",
        ),
        (
            "memory_mib",
            1 <= config.memory_mib <= MEMORY_MAX_MIB,
            f"must be 1..{MEMORY_MAX_MIB}",
        ),
        (
            "concurrency",
            1 <= config.concurrency <= CONCURRENCY_MAX,
            f"must be 1..{CONCURRENCY_MAX}",
        ),
        ("max_vms", 1 <= config.max_vms <= MAX_VMS_MAX, f"must be 1..{MAX_VMS_MAX}"),
        (
            "min_warm",
            0 <= config.min_warm <= config.max_vms,
            f"must be 0..max_vms ({config.max_vms})",
        ),
        ("keep_alive_s", config.keep_alive_s >= 0, "must be >= 0"),
        ("fuel", config.fuel is None or config.fuel > 0, "must be > 0 when set"),
        (
            "max_in_flight",
            config.max_in_flight is None or 1 <= config.max_in_flight <= MAX_IN_FLIGHT_MAX,
            f"must be 1..{MAX_IN_FLIGHT_MAX} when set",
        ),
        (
            "rate_limit",
            config.rate_limit is None or 0 < config.rate_limit <= RATE_LIMIT_MAX,
            f"must be > 0 and <= {RATE_LIMIT_MAX:g} when set",
        ),
    ]
    for field, ok, message in checks:
        if not ok:
            raise InvalidConfig(field, f"{message} (got {getattr(config, field)!r})")
    _validate_env(config)
    _validate_hostcalls(config)


def _validate_hostcalls(config: FunctionConfig) -> None:
    if len(config.allow_hosts) > ALLOW_HOSTS_MAX:
        raise InvalidConfig("allow_hosts", f"at most {ALLOW_HOSTS_MAX} hosts")
    for entry in config.allow_hosts:
        try:
            parse_host_entry(entry)
        except BadHostEntry as err:
            raise InvalidConfig("allow_hosts", str(err)) from err
    for field in ("kv_max_keys", "kv_max_bytes"):
        value = getattr(config, field)
        if value is not None and value < 1:
            raise InvalidConfig(field, f"must be >= 1 when set (got {value!r})")


def validate_secrets(secrets: dict[str, str], config: FunctionConfig) -> None:
    _validate_variables("secrets", secrets, "secrets")
    for key in secrets:
        if key in config.env:
            raise InvalidConfig(f"secrets.{key}", "is also set as a plain env variable")


def _validate_variables(field: str, variables: dict[str, str], noun: str) -> None:
    # Names only in messages: values may be secrets, and error bodies are shown.
    if len(variables) > ENV_MAX_ENTRIES:
        raise InvalidConfig(field, f"at most {ENV_MAX_ENTRIES} {noun}")
    for key, value in variables.items():
        if not ENV_KEY_RE.match(key):
            raise InvalidConfig(
                f"{field}.{key[:64]!r}",
                "names are letters, digits and '_', 1-128 long, not starting with a digit",
            )
        if "\0" in value:
            raise InvalidConfig(f"{field}.{key}", "value holds a NUL character")


def _validate_env(config: FunctionConfig) -> None:
    _validate_variables("env", config.env, "variables")
    if any("\0" in arg for arg in config.args):
        raise InvalidConfig("args", "an argument holds a NUL character")


def validate_kind(config: FunctionConfig, *, component: bool) -> FunctionConfig:
    """The config for what the wasm is: a component is served as ``http``, whatever the
    default said; a core module is ``raw`` or ``wagi``."""
    if not component:
        if config.abi == "http":
            raise InvalidConfig("abi", "'http' is for components, and this is a core module")
        return config
    if config.abi == "wagi":
        raise InvalidConfig(
            "abi", "a component is served through its wasi:http handler: leave abi unset"
        )
    return dataclasses.replace(config, abi="http")


def validate_files_tar(files_tar: bytes) -> None:
    """Check that ``files_tar`` is a readable (optionally compressed) tar of plain files/dirs."""
    try:
        with tarfile.open(fileobj=io.BytesIO(files_tar), mode="r:*") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise InvalidConfig("files", f"not a readable tar archive: {err}") from err
    total = 0
    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise InvalidConfig("files", f"entry {member.name!r} escapes the bundle")
        if not (member.isfile() or member.isdir()):
            raise InvalidConfig("files", f"entry {member.name!r} is not a file or directory")
        total += member.size
    if total > FILES_MAX_BYTES:
        raise InvalidConfig("files", f"unpacks to {total} bytes (limit {FILES_MAX_BYTES})")
