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


class CapacityExhausted(SchedulerError):
    """No VM could be had: the wait queue is full or the wait passed its deadline."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Throttled(SchedulerError):
    """A function is at its own limit (calls in flight or calls per second); the caller may
    retry after ``retry_after_s``. Other functions on the node are not affected."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PoolClosed(SchedulerError):
    """The pool was closed; it takes no more invocations."""

    def __init__(self) -> None:
        super().__init__("the VM pool is closed")


class SandboxError(SchedulerError):
    """A sandbox failed the platform (not the function): translated once from unikernel's
    errors at the pool's seam, so the layers above never see a VM's own error types."""


class SandboxLost(SandboxError):
    """The VM running (or loading) a call went away before it answered (QEMU exited, the
    agent channel closed or broke, the agent answered garbage).

    ``retries``: how many times the call had already been run again on another VM
    when this one was lost too (the pool's retry rule decides; see placement).
    ``after_effect``: the call had made a hostcall with an effect outside its VM, so
    it is not run again, by the pool or the async queue.
    """

    def __init__(self, message: str, retries: int = 0, after_effect: bool = False) -> None:
        super().__init__(message)
        self.retries = retries
        self.after_effect = after_effect


class SandboxUnavailable(SandboxError):
    """No VM could be started for a call (launch failed, image missing, ...)."""


class InvalidTransition(SchedulerError):
    """A pool VM was sent an event its state table does not allow (a bug, never input)."""

    def __init__(self, vm_id: int, state: str, event: str) -> None:
        super().__init__(f"VM {vm_id}: event {event!r} is not allowed in state {state!r}")
        self.vm_id = vm_id
        self.state = state
        self.event = event


class StateStoreError(SchedulerError):
    """Redis is unreachable or answered an error (translated once, in scheduler.state.store)."""


class RedisNotInstalled(StateStoreError):
    """The redis-server binary is missing."""

    def __init__(self, binary: str) -> None:
        super().__init__(
            f"{binary!r} was not found: install the apt package redis-server "
            "(sudo apt-get install redis-server), or give a Redis URL instead"
        )
        self.binary = binary


class RedisStartError(StateStoreError):
    """The embedded redis-server exited or did not answer in time; ``log_tail`` says why."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(f"{message}\n{log_tail}".rstrip())
        self.log_tail = log_tail


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


class NodeLost(SandboxLost):
    """The node running a call went away (or its connection broke) before it answered,
    and the one run again elsewhere was lost too."""


class NoNodeAvailable(SchedulerError):
    """A gateway has no live node to place a call on (none registered, or none reachable)."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BadNodeRequest(SchedulerError):
    """A gateway's request to a node's internal API cannot be read (a bug or a stranger)."""


class InvalidCallback(SchedulerError):
    """An async call's X-Callback-Url is malformed or names a host callbacks may not go to."""


class NotFinished(SchedulerError):
    """An async call has no response yet (queued or running), or never will (dead)."""

    def __init__(self, call_id: str, status: str, detail: str = "") -> None:
        super().__init__(
            f"async call {call_id!r} is {status}"
            + (f": {detail}" if detail else "")
            + ("" if status == "dead" else "; ask again later")
        )
        self.call_id = call_id
        self.status = status
        self.retry_after_s = 1


class NotDead(SchedulerError):
    """Only a dead-letter can be retried."""
