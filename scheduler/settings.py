"""Typed settings of the scheduler layer (env prefix ``UNIFAAS_``), built once, passed down.

One class per concern: :class:`NodeSettings` (where the node keeps its state,
which Redis it uses), :class:`PoolSettings` (how its pool of microVMs
behaves), :class:`AsyncSettings` (the async queue) and :class:`HostcallSettings` (what
functions may ask of the host). How VMs themselves are built and launched is ``unikernel.settings``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "unifaas"


class NodeSettings(BaseSettings):
    """Where the node keeps its state and meets the others.

    Every field can be set from the environment, e.g.
    ``UNIFAAS_REDIS_URL=redis://db.internal:6379/0``.
    """

    model_config = SettingsConfigDict(env_prefix="UNIFAAS_", frozen=True, extra="ignore")

    # Node state: the token and the embedded Redis's data (<state_dir>/redis: AOF, log, socket).
    state_dir: Path = Field(default_factory=default_state_dir)
    # Redis shared by all nodes and gateways; None = start a private redis-server
    # on a unix socket under state_dir (single-machine default).
    redis_url: str | None = None
    # How often the node re-registers itself in Redis; its record expires after
    # three beats missed (scheduler.roles.heartbeat.HEARTBEATS_TO_LIVE), and gateways drop it.
    heartbeat_s: float = Field(default=1.0, gt=0)
    # Add VMs to a busy function before its slots run out (scheduler.scaling.autoscaler).
    autoscale: bool = True


class PoolSettings(BaseSettings):
    """How big the node's pool of microVMs may grow and how it queues.

    Every field can be set from the environment, e.g. ``UNIFAAS_MAX_VMS=16``.
    """

    model_config = SettingsConfigDict(env_prefix="UNIFAAS_", frozen=True, extra="ignore")

    # Most microVMs this node runs at once (any state, booting and draining
    # included); fewer while the host's available memory holds fewer
    # (scheduler.pool.capacity).
    max_vms: int = Field(default=8, ge=1)
    # Memory left to the rest of the host: no VM starts unless available memory
    # stays above it, and idle VMs are stopped while it is below.
    memory_reserve_mib: int = Field(default=1024, ge=0)
    # Generic idle VMs kept booted so a new function gets a pre-warmed start.
    idle_target: int = Field(default=1, ge=0)
    # Invocations that may wait for a VM slot, and for how long, before a 503.
    queue_max: int = Field(default=64, ge=0)
    queue_timeout_s: float = Field(default=30.0, gt=0)
    # Period of the keep-alive reclaim and generic top-up loop.
    reclaim_interval_s: float = Field(default=1.0, gt=0)
    # Every VM waiting for work is pinged this often; one that does not answer
    # within ping_timeout_s is killed and replaced (measured: see scheduler/pool/hangcheck.py).
    health_interval_s: float = Field(default=5.0, gt=0)
    ping_timeout_s: float = Field(default=5.0, gt=0)
    # A VM whose ping is not answered within doubt_after_s is passed by for new calls until
    # it answers (or misses ping_timeout_s and is killed): 100 times the worst ping measured.
    doubt_after_s: float = Field(default=1.0, gt=0)
    # A call whose VM is lost runs again on another while the call's own deadline (its
    # queue_timeout_s plus its function's timeout, from when it arrived) allows, at most
    # this many times: a function that kills its VM every time gets its error, not a loop.
    max_retries: int = Field(default=3, ge=0)
    # MicroVMs booting at once (None: no limit); more wait, the boot of the
    # function with the fewest VMs first. Measured under TCG on 2 cores (see
    # scheduler/pool/bootgate.py): a limit of 2 makes a burst's cold starts faster
    # on an idle node, but under load the last function's first VM waits behind
    # the warm traffic of the others (21-23 s vs 13-14 s), so no limit is the default.
    boot_concurrency: int | None = Field(default=None, ge=1)
    # Of which boots no call waits on (generic, min_warm and autoscaler VMs,
    # templates); default the host's cores (scheduler/pool/bootgate.py says why).
    speculative_boot_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)


class AsyncSettings(BaseSettings):
    """How the async invocation queue behaves (``Prefer: respond-async``); every server of a
    cluster should have the same. E.g. ``UNIFAAS_ASYNC_MAX_ATTEMPTS=5``."""

    model_config = SettingsConfigDict(env_prefix="UNIFAAS_ASYNC_", frozen=True, extra="ignore")

    # Calls a node runs from the queue at once (besides its sync calls).
    concurrency: int = Field(default=8, ge=1)
    # Attempts of a call that fails for a platform reason (its VM or node lost, no
    # capacity, Redis away): the first and two retries, like Lambda's event invocations.
    max_attempts: int = Field(default=3, ge=1)
    # Wait before the first retry; doubled for each next one.
    retry_backoff_s: float = Field(default=1.0, ge=0)
    # A call not started by then goes dead (Lambda's default maximum event age).
    max_event_age_s: float = Field(default=6 * 3600.0, gt=0)
    # An ended call's status and response are kept this long.
    result_ttl_s: float = Field(default=24 * 3600.0, gt=0)
    # The visibility timeout: a call whose node has not renewed its claim for this long
    # (the node died) is taken by another. Nodes renew every fifth of it.
    claim_idle_s: float = Field(default=10.0, gt=0)
    # Hosts (HOST or HOST:PORT, comma-separated) an X-Callback-Url may name; empty: no
    # callbacks. The node POSTs the response there when the call ends.
    callback_hosts: str = ""
    # How long a callback's POST may take, and how often it is tried.
    callback_timeout_s: float = Field(default=10.0, gt=0)
    callback_attempts: int = Field(default=3, ge=1)

    @property
    def allowed_callback_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.callback_hosts.split(",") if h.strip())


class HostcallSettings(BaseSettings):
    """What a function may ask of the host through its hostcalls (``unifaas`` imports), per
    node. E.g. ``UNIFAAS_HOSTCALL_HTTP_TIMEOUT_S=5``. A function's own config may lower or
    raise its key-value quota; the rest hold for every function."""

    model_config = SettingsConfigDict(env_prefix="UNIFAAS_HOSTCALL_", frozen=True, extra="ignore")

    # Hostcalls one call may make; more answer LIMIT.
    max_per_call: int = Field(default=1000, ge=1)
    # A function's key-value store, unless its config says otherwise.
    kv_max_keys: int = Field(default=10_000, ge=1)
    kv_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # One outbound request: how long it may take (and never past the call's own
    # timeout), the most bytes it may send and receive.
    http_timeout_s: float = Field(default=10.0, gt=0)
    http_max_request_bytes: int = Field(default=1024 * 1024, ge=0)
    http_max_response_bytes: int = Field(default=4 * 1024 * 1024, ge=0)
