"""Functions and their versions: what a deploy brings checked
(:mod:`~scheduler.registry.validation`), then compiled and stored
(:mod:`~scheduler.registry.registry`, which also reads and writes invocation and node
records as models); what a node keeps of it so a warm call needs no Redis
(:mod:`~scheduler.registry.nodecache`); invocation records written in batches
(:mod:`~scheduler.registry.records`).

May import: ``state``, ``hostcalls`` (the grammar of an allow-list entry) and the shared
modules.
"""

from scheduler.registry.registry import PAGE_DEFAULT, PAGE_MAX, Registry
from scheduler.registry.validation import TIMEOUT_MAX_S

__all__ = ["PAGE_DEFAULT", "PAGE_MAX", "TIMEOUT_MAX_S", "Registry"]
