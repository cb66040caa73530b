"""What a node keeps of the registry so that a warm call needs no Redis at all.

- The current version of each function, until a change notification
  (``unifaas:changes``) or this node's own deploy, rollback or delete says
  otherwise; everything is forgotten when the notifications stop (Redis went
  away: a change may have been missed) and again when they resume.
- Artifacts and files bundles, by content hash: never stale, bounded in bytes
  (least recently used out first).

So while Redis is down, functions whose version and artifacts are here keep
serving; the others get StateStoreError (503) until it is back.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from scheduler.errors import StateStoreError
from scheduler.model import FunctionVersion
from scheduler.registry.registry import Registry
from scheduler.state.store import outage_backoff_s

log = logging.getLogger(__name__)

# Blobs kept on the node (precompiled artifacts are a few MiB each).
BLOB_BUDGET_BYTES = 256 * 1024 * 1024


class NodeCache:
    def __init__(
        self,
        registry: Registry,
        blob_budget_bytes: int = BLOB_BUDGET_BYTES,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.registry = registry
        self._on_change = on_change  # told the name of each function a notification names
        self._versions: dict[str, FunctionVersion] = {}
        # name -> (version, its secrets): a version's secrets never change, but a name
        # deleted and deployed again numbers its versions from 1 again.
        self._secrets: dict[str, tuple[int, tuple[tuple[str, str], ...]]] = {}
        self._blobs: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._blob_bytes = 0
        self._blob_budget = blob_budget_bytes
        self.following = False  # notifications arrive: cached versions can be trusted
        self._forgets = 0  # bumped by every forget: a read it overlapped is not cached

    async def current(self, name: str) -> FunctionVersion:
        fv = self._versions.get(name) if self.following else None
        if fv is None:
            forgets = self._forgets
            fv = await self.registry.current(name)
            # A change notified while we read may be newer than what we read.
            if self.following and forgets == self._forgets:
                self._versions[name] = fv
        return fv

    def forget(self, name: str | None = None) -> None:
        """Forget one function's current version, or every one."""
        self._forgets += 1
        if name is None:
            self._versions.clear()
            self._secrets.clear()
        else:
            self._versions.pop(name, None)
            self._secrets.pop(name, None)

    async def secrets(self, fv: FunctionVersion) -> tuple[tuple[str, str], ...]:
        """A version's secrets, for its calls' environment (no Redis read for a version
        without any, or once read while notifications are followed)."""
        if not fv.secret_names:
            return ()
        cached = self._secrets.get(fv.name) if self.following else None
        if cached is not None and cached[0] == fv.version:
            return cached[1]
        forgets = self._forgets
        secrets = tuple(sorted((await self.registry.secrets(fv)).items()))
        if self.following and forgets == self._forgets:
            self._secrets[fv.name] = (fv.version, secrets)
        return secrets

    async def blob(self, sha: str) -> bytes:
        data = self._blobs.get(sha)
        if data is not None:
            self._blobs.move_to_end(sha)
            return data
        data = await self.registry.blob(sha)
        if len(data) <= self._blob_budget:
            self._blobs[sha] = data
            self._blob_bytes += len(data)
            while self._blob_bytes > self._blob_budget:
                _, old = self._blobs.popitem(last=False)
                self._blob_bytes -= len(old)
        return data

    async def artifacts(self, fv: FunctionVersion) -> tuple[bytes, bytes | None]:
        """The precompiled artifact and files bundle of a version (None: it has none)."""
        return await self.registry.artifacts(fv, self.blob)

    async def follow_changes(self) -> None:
        """Apply change notifications until cancelled, resubscribing after an outage.

        Whatever ends it, nothing stays cached on trust afterwards."""
        try:
            await self._follow()
        finally:
            self.following = False
            self.forget()

    async def _follow(self) -> None:
        failures = 0
        while True:
            try:
                async for name in self.registry.state.changes():
                    if name:
                        self.forget(name)
                        if self._on_change is not None:
                            self._on_change(name)
                        continue
                    # Subscribed: what was cached before may have missed a change.
                    self.forget()
                    self.following = True
                    if failures:
                        log.warning("state store back: following function changes again")
                    failures = 0
                raise StateStoreError("the change notifications ended")
            except StateStoreError as err:
                if self.following or failures == 0:
                    log.warning("state store unreachable (%s): cached versions not trusted", err)
                self.following = False
                self.forget()
                await asyncio.sleep(outage_backoff_s(failures))
                failures += 1
