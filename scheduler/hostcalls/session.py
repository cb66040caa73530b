"""The host side of a call's hostcalls: the function's policy applied, outside the guest.

A node has one :class:`Capabilities` (its key-value store, its HTTP client, its
settings and the hostcall metrics); every call gets a :class:`HostSession` bound to
its function and config, which the pool hands to the VM. The session counts the
call's hostcalls and remembers whether one had an effect outside the VM, which the
pool's retry rule reads (a call that wrote or sent something is not run twice).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import logging
import time

import redis.asyncio as aioredis

from scheduler.errors import StateStoreError
from scheduler.hostcalls.kvstore import KVStore, Quota
from scheduler.hostcalls.outbound import Caps, HostRule, Outbound, parse_allow_list
from scheduler.model import FunctionConfig
from scheduler.settings import HostcallSettings
from wasm_runtime.hostcalls import HostAnswer, HostRequest, Kind, Status, denied

log = logging.getLogger(__name__)

# Latency buckets in seconds: a key-value hostcall takes a few ms under TCG, an
# outbound request up to its timeout.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
CALL_END_GRACE_S = 1.0
# Refusals decided before anything was written or sent: such a hostcall had no effect.
REFUSED_BEFORE_EFFECT = frozenset(
    {
        Status.INVALID_ARGUMENT,
        Status.KEY_TOO_LARGE,
        Status.VALUE_TOO_LARGE,
        Status.QUOTA_KEYS,
        Status.QUOTA_BYTES,
        Status.HOST_DENIED,
        Status.LIMIT,
    }
)
# Answers that are no refusal: they are not logged as one.
_NOT_REFUSED = frozenset({Status.OK, Status.NOT_FOUND})


@dataclasses.dataclass
class Latency:
    buckets: list[int] = dataclasses.field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    count: int = 0
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if index < len(self.buckets):
            self.buckets[index] += 1
        self.count += 1
        self.total_s += seconds


class HostcallStats:
    """Hostcalls served on this node, by kind and outcome, and their latency by kind."""

    def __init__(self) -> None:
        self.answers: collections.Counter[tuple[str, str]] = collections.Counter()
        self.latency: dict[str, Latency] = collections.defaultdict(Latency)

    def observe(self, kind: Kind, status: Status, seconds: float) -> None:
        self.answers[kind.value, status.name.lower()] += 1
        self.latency[kind.value].observe(seconds)


class Capabilities:
    """What this node can do for functions, shared by all their calls."""

    def __init__(self, client: aioredis.Redis, settings: HostcallSettings | None = None) -> None:
        self.settings = settings or HostcallSettings()
        self.kv = KVStore(client)
        self.outbound = Outbound()
        self.stats = HostcallStats()
        self._rules: dict[tuple[str, ...], tuple[HostRule, ...]] = {}

    def session(self, function: str, config: FunctionConfig) -> HostSession:
        return HostSession(self, function, config)

    def rules(self, config: FunctionConfig) -> tuple[HostRule, ...]:
        """The parsed allow-list of a config (deploy checked it parses)."""
        key = tuple(config.allow_hosts)
        rules = self._rules.get(key)
        if rules is None:
            rules = self._rules[key] = parse_allow_list(config.allow_hosts)
        return rules

    async def aclose(self) -> None:
        await self.outbound.aclose()


class HostSession:
    """One call's hostcalls: its function's store, allow-list and quota."""

    def __init__(self, caps: Capabilities, function: str, config: FunctionConfig) -> None:
        self._caps = caps
        self.function = function
        self._config = config
        settings = caps.settings
        self._quota = Quota(
            config.kv_max_keys or settings.kv_max_keys,
            config.kv_max_bytes or settings.kv_max_bytes,
        )
        # The call's end as the host can bound it; reset when the call starts running in its
        # VM (running), so the time it waited for a VM does not shorten its requests.
        self._deadline = time.monotonic() + config.timeout_s
        self.made = 0
        # Set while an effect is attempted (it may have happened if the VM dies meanwhile),
        # cleared again by a refusal decided before anything left the host.
        self.made_effect = False

    def running(self) -> None:
        """The call starts (again, on a retry) in its VM: its time counts from now."""
        self._deadline = time.monotonic() + self._config.timeout_s

    async def __call__(self, request: HostRequest) -> HostAnswer:
        started = time.perf_counter()
        self.made += 1
        limit = self._caps.settings.max_per_call
        if self.made > limit:
            answer = denied(Status.LIMIT, f"a call may make {limit} hostcalls")
        else:
            before = self.made_effect
            if request.kind.has_effect:
                self.made_effect = True  # from here, until we know nothing left the host
            try:
                answer = await self._serve(request)
            except StateStoreError as err:
                answer = denied(Status.UNAVAILABLE, err.message)
            if answer.status in REFUSED_BEFORE_EFFECT:
                self.made_effect = before
        self._caps.stats.observe(request.kind, answer.status, time.perf_counter() - started)
        if answer.status not in _NOT_REFUSED:
            # The message names sizes, hosts and limits, never a key, value or body.
            log.info(
                "function %s: hostcall %s refused (%s): %s",
                self.function,
                request.kind.value,
                answer.status.name.lower(),
                answer.message,
            )
        return answer

    async def _serve(self, request: HostRequest) -> HostAnswer:
        kv, name = self._caps.kv, self.function
        match request.kind:
            case Kind.KV_GET:
                return await kv.get(name, request.key)
            case Kind.KV_SET:
                return await kv.set(name, request.key, request.value, self._quota)
            case Kind.KV_DELETE:
                return await kv.delete(name, request.key)
            case Kind.KV_LIST:
                return await kv.list(name, request.key)
            case Kind.KV_INCR:
                return await kv.incr(name, request.key, request.delta, self._quota)
            case Kind.HTTP:
                return await self._http(request)

    async def _http(self, request: HostRequest) -> HostAnswer:
        settings = self._caps.settings
        left = self._deadline - time.monotonic()
        if left <= 0:
            return denied(Status.HTTP_TIMEOUT, "the call's time is up")
        caps = Caps(
            # Past the call's own end by a little: the guest stops waiting first, so the
            # call ends as timed out rather than with an answer it had no time for.
            timeout_s=min(settings.http_timeout_s, left + CALL_END_GRACE_S),
            max_request_bytes=settings.http_max_request_bytes,
            max_response_bytes=settings.http_max_response_bytes,
        )
        rules = self._caps.rules(self._config)
        return await self._caps.outbound.request(rules, request, caps)
