"""JSON of the scheduler's typed values, made here at the edge that speaks JSON."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from scheduler.asyncq import AsyncCall
from scheduler.model import FunctionInfo, FunctionVersion, InvocationRecord, NodeRecord
from scheduler.pool import FunctionVMs, HostConfinement, MemoryStatus, PoolStatus


def version_json(fv: FunctionVersion) -> dict[str, Any]:
    return dataclasses.asdict(fv)


def info_json(info: FunctionInfo) -> dict[str, Any]:
    return dataclasses.asdict(info)


def record_json(rec: InvocationRecord) -> dict[str, Any]:
    d = dataclasses.asdict(rec)
    d["start"] = rec.start.value
    return d


def confinement_json(c: HostConfinement) -> dict[str, Any]:
    d = dataclasses.asdict(c)
    d["not_applied"] = list(c.not_applied)
    return d


def node_json(node: NodeRecord, *, alive: bool = True) -> dict[str, Any]:
    return {
        **node.to_dict(),
        "alive": alive,
        "free_slots": sum(w.free_slots for w in node.warm),
        "seen_s_ago": round(max(0.0, time.time() - node.seen_at), 3),
    }


def function_vms_json(functions: tuple[FunctionVMs, ...]) -> dict[str, dict[str, int]]:
    """VMs per version, keyed ``name@version``."""
    return {
        str(f.ref): {"vms": f.vms, "in_flight": f.in_flight, "draining": f.draining}
        for f in functions
    }


def memory_json(memory: MemoryStatus | None) -> dict[str, Any] | None:
    if memory is None:
        return None
    return {
        "available_mib": memory.available_mib,
        "reserve_mib": memory.reserve_mib,
        "vm_mib": memory.vm_mib,
        "room": memory.room,
    }


def pool_json(status: PoolStatus) -> dict[str, Any]:
    return {
        "vms": status.vms,
        "max_vms": status.max_vms,
        **status.by_state(),
        "queue_depth": status.queue_depth,
        "boots": status.boots,
        "restores": status.restores,
        "preloaded": status.preloaded,
        "templates": status.templates,
        "templates_making": status.templates_making,
        "boot_failures": status.boot_failures,
        "boots_waiting": status.boots_waiting,
        "evictions": status.evictions,
        "reclaims": status.reclaims,
        "pressure_evictions": status.pressure_evictions,
        "memory": memory_json(status.memory),
        "deaths": status.deaths,
        "retries": status.retries,
        "hung": status.hung,
        "doubts": status.doubts,
        "starts": {kind.value: n for kind, n in status.starts.items()},
        "rss_kib": status.rss_kib,
        "closed": status.closed,
        "functions": function_vms_json(status.functions),
    }


def async_json(call: AsyncCall) -> dict[str, Any]:
    """An async call's status; its response is at ``/response`` (kept apart: it may be big)."""
    return {
        "id": call.id,
        "function": call.function,
        "status": call.status.value,
        "attempts": call.attempts,
        "http_status": call.http_status,
        "error": call.error,
        "node": call.node,
        "created_at": call.created_at,
        "started_at": call.started_at,
        "finished_at": call.finished_at,
        "callback_url": call.callback_url,
        "callback": call.callback,
        "response": f"/v1/invocations/{call.id}/response" if call.response else None,
    }
