"""Per-version snapshot templates: later cold starts of a version restore with it loaded.

After a version's first real load the pool asks for one (off every call's
path: ``scheduler.pool.templates``). A template is a clone of
the generic template that loaded the version and ran the platform's warm-up
call, saved again (``unikernel.snapshot.make_version_template``). A cold start
of that version then restores it: no artifact sent, nothing deserialised.

The warm-up call is the platform's own tiny module, not the function: a call of
the function could loop, or have effects. QEMU's translation cache is not in a
snapshot, so a clone's first call still pays for translating its code.

Bounded by count and by the space their RAM files take on tmpfs; the least
recently used go first. A version's template goes when the version is retired.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable

from unikernel.settings import VMSettings
from unikernel.snapshot import Template, template_bytes

log = logging.getLogger(__name__)

MiB = 1024 * 1024


class VersionTemplates:
    """The templates held, by function id, least recently used first."""

    def __init__(self, settings: VMSettings) -> None:
        self.max_count = settings.version_templates if settings.snapshots else 0
        self.max_bytes = settings.version_template_space_mib * MiB
        self._held: collections.OrderedDict[str, Template] = collections.OrderedDict()
        self._making: set[str] = set()
        self.made = 0
        self.evicted = 0
        self.failures = 0

    def __len__(self) -> int:
        return len(self._held)

    def held_bytes(self) -> int:
        return sum(map(template_bytes, self._held.values()))

    def wanted(self, fn_id: str) -> bool:
        """Worth making: on, not held and not being made."""
        return self.max_count > 0 and fn_id not in self._held and fn_id not in self._making

    def get(self, fn_id: str) -> Template | None:
        """The version's template (now the most recently used), if held and intact."""
        template = self._held.get(fn_id)
        if template is None:
            return None
        if not template.intact():
            log.warning("template of %s dropped: its files are gone", fn_id)
            self.forget(fn_id)
            return None
        self._held.move_to_end(fn_id)
        return template

    async def make(self, fn_id: str, make: Callable[[], Awaitable[Template]]) -> Template | None:
        """Make and keep ``fn_id``'s template, then evict down to the bounds."""
        if not self.wanted(fn_id):
            return None
        self._making.add(fn_id)
        try:
            template = await make()
        except Exception as err:
            self.failures += 1
            log.warning("making a template of %s failed (its cold starts load it): %s", fn_id, err)
            return None
        finally:
            forgotten = fn_id not in self._making  # retired while it was being made
            self._making.discard(fn_id)
        if forgotten or template_bytes(template) > self.max_bytes:
            template.remove()  # retired meanwhile, or alone over the space for all
            return None
        self._held[fn_id] = template
        self.made += 1
        self._evict()
        return self._held.get(fn_id)

    def _evict(self) -> None:
        while self._held and (
            len(self._held) > self.max_count or self.held_bytes() > self.max_bytes
        ):
            fn_id, template = self._held.popitem(last=False)
            template.remove()
            self.evicted += 1
            log.info("template of %s evicted (least recently used)", fn_id)

    def forget(self, fn_id: str) -> None:
        """Drop ``fn_id``'s template (and one being made, when it is done)."""
        self._making.discard(fn_id)
        template = self._held.pop(fn_id, None)
        if template is not None:
            template.remove()

    def clear(self) -> None:
        for fn_id in list(self._held):
            self.forget(fn_id)
        self._making.clear()
