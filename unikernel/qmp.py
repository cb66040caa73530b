"""Runtime control of one QEMU over QMP (via ``qemu.qmp``); every QMP command name lives here.

The host listens on the VM's QMP socket and QEMU connects to it at start-up, so
no connect/retry loop is needed. ``qemu.qmp`` errors are translated into
:class:`~unikernel.errors.QMPCommandError` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient
from qemu.qmp.error import QMPError

from unikernel.errors import QMPCommandError

CMD_QUERY_STATUS = "query-status"
CMD_STOP = "stop"
CMD_CONT = "cont"
CMD_QUIT = "quit"
CMD_MIGRATE = "migrate"
CMD_MIGRATE_INCOMING = "migrate-incoming"
CMD_MIGRATE_SET_CAPABILITIES = "migrate-set-capabilities"
CMD_QUERY_MIGRATE = "query-migrate"
CMD_GETFD = "getfd"
SNAPSHOT_FD = "snapshot"
# Saving or loading a snapshot's ~50 KB of device state takes ~10-20 ms.
MIGRATE_POLL_S = 0.005

# qemu.qmp logs every disconnect at warning level; a VM we kill on purpose
# is not news.
logging.getLogger("qemu.qmp").setLevel(logging.ERROR)


class QmpControl:
    def __init__(self, name: str) -> None:
        self._client = QMPClient(name)
        self._accepting: asyncio.Future[None] | None = None

    async def listen(self, socket_path: Path) -> None:
        try:
            await self._client.start_server(str(socket_path))
        except QMPError as err:
            raise QMPCommandError("listen", str(err)) from err

    def start_accept(self) -> asyncio.Future[None]:
        """Wait for QEMU's connection in the background; :meth:`close` ends the wait."""
        self._accepting = asyncio.ensure_future(self.accept())
        return self._accepting

    async def accept(self) -> None:
        try:
            await self._client.accept()
        except QMPError as err:
            raise QMPCommandError("accept", str(err)) from err

    async def _execute(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        try:
            return await self._client.execute(cmd, args)
        except QMPError as err:
            raise QMPCommandError(cmd, str(err)) from err

    async def status(self) -> str:
        """The VM's run state as QEMU names it ("running", "paused", ...)."""
        reply = await self._execute(CMD_QUERY_STATUS)
        return str(reply["status"])

    async def pause(self) -> None:
        await self._execute(CMD_STOP)

    async def resume(self) -> None:
        await self._execute(CMD_CONT)

    async def save_snapshot(self, state_file: Path) -> None:
        """Pause, then write the device state (not RAM: it lives in a shared file) to a file."""
        await self._execute(CMD_STOP)
        await self._ignore_shared_ram()
        fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        await self._migrate_through(CMD_MIGRATE, fd)

    async def load_snapshot(self, state_file: Path) -> None:
        """Into a QEMU started with ``-incoming defer``; leaves the VM paused."""
        await self._ignore_shared_ram()
        await self._migrate_through(CMD_MIGRATE_INCOMING, os.open(state_file, os.O_RDONLY))

    async def _migrate_through(self, command: str, fd: int) -> None:
        """Run a migration (out or in) through an open file handed to QEMU (SCM_RIGHTS):
        a confined QEMU can neither open files nor spawn ``cat``. Closes ``fd``."""
        try:
            try:
                self._client.send_fd_scm(fd)
            except (QMPError, OSError) as err:
                raise QMPCommandError(CMD_GETFD, str(err)) from err
            await self._execute(CMD_GETFD, {"fdname": SNAPSHOT_FD})
            await self._execute(command, {"uri": f"fd:{SNAPSHOT_FD}"})
            await self._until_migrated()
        finally:
            os.close(fd)

    async def _ignore_shared_ram(self) -> None:
        caps = [{"capability": "x-ignore-shared", "state": True}]
        await self._execute(CMD_MIGRATE_SET_CAPABILITIES, {"capabilities": caps})

    async def _until_migrated(self) -> None:
        while True:
            info = await self._execute(CMD_QUERY_MIGRATE)
            status = info.get("status")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise QMPCommandError(CMD_QUERY_MIGRATE, str(info.get("error-desc", status)))
            await asyncio.sleep(MIGRATE_POLL_S)

    async def quit(self) -> None:
        # QEMU may close the socket before the reply arrives: that is success.
        with contextlib.suppress(QMPCommandError):
            await self._execute(CMD_QUIT)

    async def close(self) -> None:
        try:
            # A pending (or failed: QEMU died) accept must be over before
            # disconnecting, or qemu.qmp trips an assertion on its own state.
            if self._accepting is not None:
                self._accepting.cancel()
                await asyncio.gather(self._accepting, return_exceptions=True)
            with contextlib.suppress(QMPError, OSError, EOFError, TimeoutError):
                await asyncio.wait_for(self._client.disconnect(), timeout=2.0)
        finally:
            self._release()

    def _release(self) -> None:
        # Whatever the disconnect left (it timed out on a busy host, was cancelled with the
        # VM's stop, or never ran: QEMU had not connected), closed now and synchronously: a
        # socket left to the collector was a ResourceWarning in whichever test ran then.
        # qemu.qmp has no public way to this.
        writer = getattr(self._client, "_writer", None)
        if writer is not None:
            writer.transport.abort()
        server = getattr(self._client, "_server", None)
        if server is not None:
            server.close()
