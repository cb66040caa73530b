"""One node's warm pool of microVMs: the pool itself (:mod:`~scheduler.pool.pool`), each VM's
state machine (:mod:`~scheduler.pool.vmrecord`), where a call's slot comes from
(:mod:`~scheduler.pool.placement`, pure), the calls waiting for one
(:mod:`~scheduler.pool.waitqueue`), how many boots run at once
(:mod:`~scheduler.pool.bootgate`), how many VMs the host's memory takes
(:mod:`~scheduler.pool.capacity`), the upkeep of keep-alive and min_warm
(:mod:`~scheduler.pool.upkeep`), finding hung VMs (:mod:`~scheduler.pool.hangcheck`),
per-version templates (:mod:`~scheduler.pool.templates`), the pool's typed answers
(:mod:`~scheduler.pool.status`) and the seam to ``unikernel`` (:mod:`~scheduler.pool.sandbox`:
the small VM interface, the factory of real microVMs, their errors translated once).

May import: ``hostcalls`` (a call's session rides along with it) and the shared modules.
"""

from scheduler.pool.capacity import MemoryStatus, available_mib, read_meminfo
from scheduler.pool.pool import Pool
from scheduler.pool.sandbox import HostConfinement, SandboxFactory
from scheduler.pool.status import FunctionVMs, PoolStatus

__all__ = [
    "FunctionVMs",
    "HostConfinement",
    "MemoryStatus",
    "Pool",
    "PoolStatus",
    "SandboxFactory",
    "available_mib",
    "read_meminfo",
]
