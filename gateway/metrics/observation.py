"""One answered call as the metrics see it: built from the outcome of a call this node ran,
or from the headers of a node's answer to a call this gateway relayed."""

from __future__ import annotations

import contextlib
import dataclasses
import json

from gateway.errors import error_message
from gateway.relay import Relayed
from scheduler.roles import InvokeOutcome


@dataclasses.dataclass(frozen=True)
class Observation:
    """One answered call as the metrics see it, whether this server ran it or relayed it."""

    function: str
    abi: str  # the ABI of the version that ran it ("none" when none did)
    outcome: str  # the run's outcome, or the error kind when there was no run
    start: str  # start kind, "none" without a run
    status: int
    kind: str | None  # error kind, None for the function's own answer
    total_ms: float
    run_ms: float | None  # the function's run in its VM
    retries: int
    message: str = ""
    invocation_id: str = ""

    @classmethod
    def failed(
        cls, function: str, status: int, kind: str, err: BaseException, total_ms: float
    ) -> Observation:
        """A relayed call no node answered."""
        return cls(
            function, "none", kind, "none", status, kind, total_ms, None,
            int(getattr(err, "retries", 0)), error_message(err),
        )  # fmt: skip

    @classmethod
    def relayed(cls, function: str, relayed: Relayed, total_ms: float) -> Observation:
        """A call a node answered, read from its answer's headers."""
        headers = {k.lower(): v for k, v in relayed.headers}
        kind = relayed.error_kind
        return cls(
            function=function,
            abi=headers.get("x-function-abi", "none"),
            outcome=kind or "ok",
            start=headers.get("x-start", "none"),
            status=relayed.status,
            kind=kind,
            total_ms=total_ms,
            run_ms=_run_ms(headers.get("server-timing", "")),
            retries=int(headers.get("x-retries", "0") or 0) + relayed.reruns,
            message=_message(relayed.body) if kind else "",
            invocation_id=headers.get("x-invocation-id", ""),
        )


def observed(outcome: InvokeOutcome, status: int, kind: str | None) -> Observation:
    """A call this node ran."""
    result = outcome.result
    return Observation(
        function=outcome.function,
        abi=outcome.abi or "none",
        outcome=result.outcome.value if result else (kind or "error"),
        start=outcome.start.value if outcome.start else "none",
        status=status,
        kind=kind,
        total_ms=outcome.total_ms,
        run_ms=result.duration_ms if result else None,
        retries=outcome.retries,
        message=error_message(outcome.error) if kind is not None and outcome.error else "",
        invocation_id=outcome.invocation_id,
    )


def _run_ms(server_timing: str) -> float | None:
    for part in server_timing.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if name == "run":
            with contextlib.suppress(ValueError):
                return float(dur)
    return None


def _message(body: bytes) -> str:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        return str(json.loads(body)["error"]["message"])
    return ""
