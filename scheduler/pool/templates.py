"""The pool's side of per-version templates (kept by ``unikernel.templates``).

A version's first real load asks the factory for a template of it, made in the
background behind every boot a call waits on; retiring a version (a new deploy,
a rollback, a delete) drops its template.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from scheduler.model import FunctionRef, FunctionVersion
from scheduler.pool.bootgate import BootGate, speculative
from scheduler.pool.sandbox import SandboxFactory
from scheduler.pool.status import TemplateCounts


class TemplateAsks:
    def __init__(
        self,
        factory: SandboxFactory,
        gate: BootGate,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
    ) -> None:
        self._factory = factory
        self._gate = gate
        self._spawn = spawn
        self._asked: dict[str, set[str]] = {}  # function name -> its versions' ids
        self._making = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    def close(self) -> None:
        """Ask for no more templates and cancel those being made.

        A template VM yields its CPU to calls' VMs, so on a busy host one can take
        minutes; a stopping pool must not wait for it (making one is cancellation-safe:
        its VM is stopped and its files removed)."""
        self.closed = True
        for task in self._tasks:
            task.cancel()

    def counts(self) -> TemplateCounts:
        return TemplateCounts(held=self._factory.templates_held(), making=self._making)

    def loaded(self, fv: FunctionVersion, artifact: bytes, files: bytes | None) -> None:
        """``fv`` was loaded from its artifact: have a template made if none is held."""
        if self.closed or not self._factory.wants_template(fv.key):
            return
        self._asked.setdefault(fv.name, set()).add(fv.key)
        self._making += 1  # now, so that a status read right after the load counts it
        task = self._spawn(self._make(fv.key, artifact, files))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _make(self, fn_id: str, artifact: bytes, files: bytes | None) -> None:
        try:
            async with self._gate.slot(speculative):
                if not self.closed:
                    await self._factory.keep_template(fn_id, artifact, files)
        finally:
            self._making -= 1

    def retire(self, name: str, keep: FunctionRef | None) -> None:
        """Drop the templates of ``name``'s versions other than ``keep``."""
        asked = self._asked.pop(name, set())
        kept = {str(keep)} & asked
        for fn_id in asked - kept:
            self._factory.forget_template(fn_id)
        if kept:
            self._asked[name] = kept
