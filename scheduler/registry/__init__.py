"""Functions and their versions: what a deploy brings checked
(:mod:`~scheduler.registry.validation`), then compiled and stored
(:mod:`~scheduler.registry.registry`, which also reads and writes invocation and node
records as models); what a node keeps of it so a warm call needs no Redis
(:mod:`~scheduler.registry.nodecache`); invocation records written in batches
(:mod:`~scheduler.registry.records`).

May import: ``state``, ``hostcalls`` (the grammar of an allow-list entry) and the shared
modules.

The registry module (Redis, the compiler) is imported when one of its names is first
used: the CLI's settings need ``TIMEOUT_MAX_S`` alone, and paid 0.16 s a command for it.
"""

from typing import TYPE_CHECKING, Any

from scheduler.registry.validation import TIMEOUT_MAX_S

if TYPE_CHECKING:
    from scheduler.registry.registry import PAGE_DEFAULT, PAGE_MAX, Registry

__all__ = ["PAGE_DEFAULT", "PAGE_MAX", "TIMEOUT_MAX_S", "Registry"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from scheduler.registry import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
