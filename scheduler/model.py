"""Plain data of the scheduler: function configs, versions, invocation records, start kinds."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pydantic

from scheduler.errors import InvalidConfig
from wasm_runtime.types import MIB, Limits, known_fields

# How much of a call's stderr the platform keeps: in its record, its error
# body and the CLI's X-Stderr header.
STDERR_TAIL_BYTES = 4096


# Fetches a version's precompiled artifact and files bundle when a VM must load it.
ArtifactLoader = Callable[[], Awaitable[tuple[bytes, bytes | None]]]


class StartKind(enum.StrEnum):
    WARM = "warm"  # a VM already bound to this function version had a free slot
    PREWARMED = "prewarmed"  # a generic idle VM loaded the function
    COLD = "cold"  # a VM was booted for this call


@dataclasses.dataclass(frozen=True)
class Admission:
    """A function's limits: ``max_in_flight`` calls running or waiting for a slot at once;
    ``rate`` calls per second on average with bursts of up to ``burst`` (None: no rate)."""

    max_in_flight: int
    rate: float | None = None
    burst: int = 1


@dataclasses.dataclass(frozen=True)
class FunctionConfig:
    """Per-function settings chosen at deploy time; every version keeps its own copy."""

    # raw or wagi for a core module; "http" for a component (set at deploy, from its header)
    abi: Literal["raw", "wagi", "http"] = "raw"
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    args: list[str] = dataclasses.field(default_factory=list)
    timeout_s: float = Limits().timeout_ms / 1000
    memory_mib: int = Limits().memory_bytes // MIB
    fuel: int | None = None
    min_warm: int = 0  # bound VMs kept even when idle
    max_vms: int = 4  # bound VMs this function may hold at once
    concurrency: int = 4  # calls in flight per VM
    keep_alive_s: float = 120.0  # idle bound VMs above min_warm are reclaimed after this
    public: bool = True  # private functions need the bearer token to invoke
    # Calls of this function running or waiting for a slot on a node at once; more get 429.
    # None: twice its slots (max_vms x concurrency), so a flood waits in a bounded line.
    max_in_flight: int | None = None
    rate_limit: float | None = None  # calls per second per node (bursts of one second's worth)
    # Hosts its outbound requests may reach (HOST or HOST:PORT; scheduler.hostcalls.outbound).
    allow_hosts: list[str] = dataclasses.field(default_factory=list)
    # Its key-value store's quota; None: the node's (UNIFAAS_HOSTCALL_KV_MAX_*).
    kv_max_keys: int | None = None
    kv_max_bytes: int | None = None

    # Per version, not per call: a config never changes, and a call reads both.
    @functools.cached_property
    def limits(self) -> Limits:
        return Limits(
            timeout_ms=int(self.timeout_s * 1000),
            memory_bytes=self.memory_mib * MIB,
            fuel=self.fuel,
        )

    @functools.cached_property
    def admission(self) -> Admission:
        rate = self.rate_limit
        return Admission(
            max_in_flight=self.max_in_flight or 2 * self.max_vms * self.concurrency,
            rate=rate,
            burst=max(1, math.ceil(rate)) if rate is not None else 1,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = False) -> FunctionConfig:
        """A config from stored data, or (``strict``) from a deploy, where an unknown
        field or a wrong type is an InvalidConfig naming it. Missing fields get defaults."""
        if not strict:
            return cls(**known_fields(cls, data))
        unknown = sorted(set(data) - set(known_fields(cls, data)))
        if unknown:
            raise InvalidConfig("config", f"unknown field(s) {', '.join(unknown)}")
        try:
            # Through JSON, where strict mode takes an object for a dataclass: a string
            # where a number belongs is refused, not coerced.
            config: FunctionConfig = _strict_config().validate_json(json.dumps(data), strict=True)
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "config"
            raise InvalidConfig(where, first["msg"]) from err
        return config


@functools.cache
def _strict_config() -> pydantic.TypeAdapter[FunctionConfig]:
    return pydantic.TypeAdapter(FunctionConfig)


@dataclasses.dataclass(frozen=True, order=True)
class FunctionRef:
    """Identity of one function version: what a VM is bound to. Hashable, cheap to compare."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def parse(cls, text: str) -> FunctionRef:
        """The inverse of ``str``: ``name@version``."""
        name, _, version = text.rpartition("@")
        return cls(name, int(version))


@dataclasses.dataclass(frozen=True)
class FunctionVersion:
    name: str
    version: int
    module_sha256: str
    artifact_sha256: str  # host-precompiled for the guest CPU model
    files_sha256: str | None
    config: FunctionConfig
    created_at: float
    # Names of its secrets; their values are stored apart and never leave the registry
    # except into its calls' environment.
    secret_names: tuple[str, ...] = ()
    # A component's imports the platform implements, and those it knows but does not grant
    # (calling one traps); empty for a core module.
    granted_imports: tuple[str, ...] = ()
    denied_imports: tuple[str, ...] = ()
    # The guest keeps the artifact in its memory (a file it maps), beside the calls' own:
    # placement counts it. 0 for a version stored before it was recorded.
    artifact_bytes: int = 0

    # Cached: placement asks every VM whether it serves this version, on every call.
    @functools.cached_property
    def ref(self) -> FunctionRef:
        return FunctionRef(self.name, self.version)

    @functools.cached_property
    def key(self) -> str:
        """``name@version``: the id the agent loads it under, and how it is shown."""
        return f"{self.name}@{self.version}"


@dataclasses.dataclass(frozen=True)
class FunctionInfo:
    name: str
    current: int
    versions: list[int]
    created_at: float
    updated_at: float


@dataclasses.dataclass(frozen=True)
class FunctionsPage:
    """One page of the functions, by name, and the name the next one starts after (None:
    this is the last)."""

    functions: list[FunctionInfo]
    next_after: str | None


@dataclasses.dataclass(frozen=True)
class InvocationRecord:
    id: str
    function: str
    version: int
    start: StartKind
    outcome: str  # wasm_runtime Outcome value, or "error" when no result was had
    exit_code: int
    status: int  # HTTP status returned
    total_ms: float
    vm_ms: float  # duration inside the guest, from the agent
    stderr_tail: str
    created_at: float
    retries: int = 0  # runs on another VM after its VM was lost (absent in older records)


@dataclasses.dataclass(frozen=True)
class WarmVersion:
    """A function version with bound VMs on a node, as its heartbeat tells the gateways."""

    ref: str  # name@version
    vms: int
    in_flight: int
    free_slots: int  # calls its bound VMs take now without waiting

    @property
    def name(self) -> str:
        return self.ref.rpartition("@")[0]


@dataclasses.dataclass(frozen=True)
class NodeRecord:
    """What a node says of itself in its heartbeat (``GET /v1/nodes`` lists these)."""

    id: str
    host: str
    pid: int
    url: str  # where its HTTP server listens (public API and the gateways' internal one)
    started_at: float
    seen_at: float  # time of its last heartbeat
    vms: int
    max_vms: int
    queue_depth: int
    room: int = 0  # VMs it can start or bind now: idle generic ones plus free capacity
    in_flight: int = 0  # calls running or waiting on it
    warm: tuple[WarmVersion, ...] = ()

    def warm_slots(self, function: str) -> int:
        """Free slots of the function's bound VMs here (any version)."""
        return sum(w.free_slots for w in self.warm if w.name == function)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeRecord:
        fields = known_fields(cls, data)
        fields["warm"] = tuple(
            WarmVersion(**known_fields(WarmVersion, w)) for w in fields.get("warm", ())
        )
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class InvokeRequest:
    method: str
    path_info: str  # the part after /fn/{name}, "" or starting with "/"
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes
    remote_addr: str = ""
    server_name: str = "localhost"
    server_port: int = 8080
    authorized: bool = False  # the caller presented the management token
