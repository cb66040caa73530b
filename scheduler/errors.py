"""Errors of the scheduler layer (registry, pool, placement); all derive from SchedulerError."""

from __future__ import annotations

from wasm_runtime.errors import UnifaasError


class SchedulerError(UnifaasError):
    """Root of scheduler errors."""


class FunctionNotFound(SchedulerError):
    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"function {name!r}" + (f" version {version}" if version is not None else "")
        super().__init__(f"{what} does not exist")
        self.name = name
        self.version = version


class InvalidConfig(SchedulerError):
    """A deploy's configuration is unusable (bad name, limit out of range, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CapacityExhausted(SchedulerError):
    """No VM could be had: the wait queue is full or the wait passed its deadline."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StateStoreError(SchedulerError):
    """Redis is unreachable or answered with an error (translated once, in scheduler.state)."""


class AccessDenied(SchedulerError):
    """A private function was invoked without the token."""

    def __init__(self, name: str) -> None:
        super().__init__(f"function {name!r} is private: invoking it needs the bearer token")
        self.name = name


class InvocationNotFound(SchedulerError):
    """No record for this invocation id (unknown, or expired after its TTL)."""

    def __init__(self, invocation_id: str) -> None:
        super().__init__(f"invocation {invocation_id!r} does not exist (or its record expired)")
        self.invocation_id = invocation_id
