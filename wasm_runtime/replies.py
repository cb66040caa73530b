"""Typed bodies of the agent's hello and of its replies to load, stats and resume.

The agent builds them, :mod:`wasm_runtime.protocol` frames them as maps, and the
shim reads them back with ``from_wire``, which ignores fields it does not know
(a newer agent may add some) and fills in missing ones with defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self

from wasm_runtime.types import flat_dict, known_fields


class _Wire:
    def to_wire(self) -> dict[str, Any]:
        return flat_dict(self)

    @classmethod
    def from_wire(cls, data: object) -> Self:
        return cls(**known_fields(cls, data if isinstance(data, dict) else {}))


@dataclasses.dataclass(frozen=True)
class Hello(_Wire):
    """The agent's first frame: it is up and speaks this protocol version."""

    protocol: int = 0
    agent: str = ""
    python: str = ""
    boot_s: float | None = None  # guest uptime at hello, when the guest knows it
    pid: int = 0


@dataclasses.dataclass(frozen=True)
class LoadReply(_Wire):
    fn_id: str = ""
    load_ms: float = 0.0  # deserialising (or compiling) the module in the guest


@dataclasses.dataclass(frozen=True)
class AgentStats(_Wire):
    functions: list[str] = dataclasses.field(default_factory=list)
    in_flight: int = 0
    served: int = 0
    bad_frames: int = 0
    uptime_s: float = 0.0
    agent_rss_kib: int = 0
    mem_total_kib: int = 0
    mem_available_kib: int = 0
    # Rounds of guestos.TlbWarmer since the agent started (0 where it has none: the host).
    tlb_rounds: int = 0


@dataclasses.dataclass(frozen=True)
class ResumeReply(_Wire):
    """A clone's clock and a sample of its RNG right after it took the host's."""

    time_ns: int = 0
    random_sample: bytes = b""
