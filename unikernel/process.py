"""One QEMU process: its run directory, its listening sockets, spawn, and guaranteed cleanup.

The host listens on the agent and QMP sockets *before* QEMU starts and QEMU
connects to both as a client during its own start-up. So the agent channel is
connected before the guest runs and the agent's first frame is never lost,
and neither side needs a connect/retry loop.

``VMProcess`` is an async context manager: leaving it (normally, on error or
on cancellation) kills QEMU by its pid if it is still running and removes the
run directory. QEMU is also started with a parent-death signal, so a host
process that dies without cleaning up still takes its VMs with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from unikernel.argv import VMSpec, build_argv
from unikernel.cgroups import VMCgroup
from unikernel.children import die_with_parent, read_tail
from unikernel.confine import Confinement, prepare_run_dir
from unikernel.errors import VMLaunchError

# How long QEMU gets to connect its chardevs after exec (it does so before
# the guest runs, so this is QEMU start-up alone).
CONNECT_TIMEOUT_S = 10.0
KILL_WAIT_S = 5.0
# How long a QEMU that closed its channel is given to exit, so its status can be read.
EXIT_AFTER_CLOSE_S = 1.0
T = TypeVar("T")


class VMProcess:
    """Owns one QEMU process and its files. Use ``async with``."""

    def __init__(
        self,
        kernel: Path,
        initrd: Path,
        spec_overrides: dict[str, object],
        run_parent: Path | None = None,
        name: str = "vm",
        confinement: Confinement | None = None,
    ) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"unifaas-{name}-", dir=run_parent))
        self.confinement = confinement or Confinement.none()
        try:
            self.ids = self.confinement.lease()  # ids of its own, given back in close()
        except BaseException:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            raise
        self.user = self.ids.user if self.ids is not None else None
        prepare_run_dir(self.run_dir, self.confinement, self.user)
        self.cgroup: VMCgroup | None = None
        self.spec = VMSpec(
            kernel=kernel,
            initrd=initrd,
            agent_socket=self.run_dir / "agent.sock",
            qmp_socket=self.run_dir / "qmp.sock",
            console_log=self.run_dir / "console.log",
            confinement_args=tuple(self.confinement.qemu_args(self.run_dir, self.user)),
            **spec_overrides,  # type: ignore[arg-type]
        )
        self.argv = build_argv(self.spec)
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self._server: asyncio.Server | None = None
        self._conn: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc else None

    def logread_tail(self) -> str:
        stderr = read_tail(self.run_dir / "qemu.stderr")
        console = read_tail(self.spec.console_log)
        return "\n".join(part for part in (stderr, console) if part)

    def launch_error(self, message: str) -> VMLaunchError:
        return VMLaunchError(message, self.returncode, self.argv, self.logread_tail())

    async def listen(self) -> None:
        """Open the agent socket for QEMU to connect to (call before ``spawn``)."""
        loop = asyncio.get_running_loop()
        self._conn = loop.create_future()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self._conn is not None and not self._conn.done():
                self._conn.set_result((reader, writer))
            else:
                writer.close()

        self._server = await asyncio.start_unix_server(on_connect, path=str(self.spec.agent_socket))

    def _preexec(self) -> Callable[[], None]:
        cgroup = self.cgroup
        if cgroup is None:
            return die_with_parent
        procs = cgroup.procs_files()

        def in_child() -> None:
            die_with_parent()
            cgroup.join(procs)

        return in_child

    async def spawn(self) -> None:
        if self.confinement.cgroups is not None:
            self.cgroup = self.confinement.cgroups.create(self.run_dir.name, self.user)
        stderr = (self.run_dir / "qemu.stderr").open("wb")
        try:
            self.started_at = time.perf_counter()
            # close_fds (the default) and stdin from /dev/null: QEMU inherits
            # no descriptor of the host but its log.
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                preexec_fn=self._preexec(),
                close_fds=True,
            )
        except OSError as err:
            message = f"cannot execute {self.argv[0]}: {err}"
            raise VMLaunchError(message, None, self.argv, "") from err
        finally:
            stderr.close()

    async def until_exit_or(self, aw: asyncio.Future[T], timeout: float, what: str) -> T:
        """Await ``aw`` but give up if QEMU exits first or the deadline passes."""
        assert self.proc is not None
        exit_task: asyncio.Future[Any] = asyncio.ensure_future(self.proc.wait())
        waiting: set[asyncio.Future[Any]] = {aw, exit_task}
        try:
            done, _ = await asyncio.wait(
                waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exit_task.cancel()
        if aw in done:
            err = aw.exception()
            # The peer closing mid-read means QEMU is going away: say so, as a launch error.
            if isinstance(err, (asyncio.IncompleteReadError, ConnectionError)):
                # Its exit status tells a kill from a crash: give it a moment to be reaped.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), EXIT_AFTER_CLOSE_S)
                message = f"QEMU closed the channel while waiting for {what}"
                raise self.launch_error(message) from err
            return aw.result()
        aw.cancel()
        if exit_task in done:
            raise self.launch_error(f"QEMU exited while waiting for {what}")
        raise self.launch_error(f"timed out after {timeout:.0f}s waiting for {what}")

    async def accept_agent(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert self._conn is not None
        result = await self.until_exit_or(self._conn, CONNECT_TIMEOUT_S, "QEMU to connect")
        if self._server is not None:
            self._server.close()
        return result

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def close(self) -> None:
        """Kill QEMU if it still runs, reap it, remove the run directory. Idempotent."""
        try:
            if self.proc is not None and self.proc.returncode is None:
                self.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self.proc.wait()), KILL_WAIT_S)
        finally:
            if self._server is not None:
                self._server.close()
            if self._conn is not None and self._conn.done() and not self._conn.cancelled():
                self._conn.result()[1].close()
            shutil.rmtree(self.run_dir, ignore_errors=True)
            gone = self.proc is None or self.proc.returncode is not None
            if self.cgroup is not None and gone:
                self.cgroup.remove()
            if self.ids is not None and gone:  # a QEMU that outlived its kill keeps them
                self.ids.release()

    async def __aenter__(self) -> VMProcess:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
