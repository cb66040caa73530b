"""The embedded Redis: a private ``redis-server`` child on a unix socket, and connecting to Redis.

:class:`EmbeddedRedis` is an async context manager that owns the process: it
starts ``redis-server`` with its data (append-only file) under
``<state_dir>/redis``, waits until it answers PING, and on exit stops it with
SIGTERM (so it flushes its AOF), escalating to SIGKILL after a deadline. It
cleans up on every path, a failed start included. TCP is disabled; only the
owner can use the socket (mode 700).

While it runs, it is supervised: a redis-server that dies is started again from
its append-only file, after 0.1 s the first time and longer when it keeps dying
(see RESTART_BACKOFF_S), with a log line each time. Clients made by
:func:`connect` retry their commands across such a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import signal
import tempfile
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scheduler.errors import RedisNotInstalled, RedisStartError, StateStoreError
from unikernel.children import die_with_parent, read_tail

log = logging.getLogger(__name__)

REDIS_BINARY = "redis-server"
# Loading a large AOF can take a while; an empty one answers within ~50 ms.
START_TIMEOUT_S = 30.0
START_POLL_S = 0.02
# After SIGTERM redis fsyncs its AOF and exits; then we SIGKILL.
STOP_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
# Waits before restarting a redis-server that died: the first soon, then longer
# while it keeps dying within STABLE_S of its start.
RESTART_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)
STABLE_S = 10.0
# A client's command that finds the connection broken is retried with backoff
# for about two seconds in all: long enough to ride out a supervised restart.
COMMAND_RETRIES = 7
COMMAND_BACKOFF_BASE_S = 0.05
COMMAND_BACKOFF_CAP_S = 0.5
# sun_path is 108 bytes; longer socket paths go to a short private temp dir.
UNIX_PATH_MAX = 100


def redis_argv(binary: str, data_dir: Path, socket_path: Path) -> list[str]:
    """The redis-server command line (pure; no I/O)."""
    return [
        binary,
        "--port", "0",  # no TCP at all
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--appendonly", "yes",  # persistence across restarts
        "--appendfsync", "everysec",
        "--save", "",  # AOF only, no RDB snapshots
        "--daemonize", "no",
        "--pidfile", str(data_dir / "redis.pid"),
        "--logfile", str(data_dir / "redis.log"),
        "--databases", "16",
    ]  # fmt: skip


SENTINEL_SCHEME = "redis+sentinel://"
DEFAULT_SENTINEL_PORT = 26379


@dataclasses.dataclass(frozen=True)
class SentinelTarget:
    """``redis+sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB]``."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The sentinels, service name and database of a Sentinel URL (StateStoreError if bad)."""
    rest = url.removeprefix(SENTINEL_SCHEME)
    password = None
    if "@" in rest:
        auth, _, rest = rest.rpartition("@")
        password = urllib.parse.unquote(auth.partition(":")[2] or auth) or None
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    try:
        sentinels = tuple(_host_port(h) for h in hosts.split(",") if h)
        db = int(parts[1]) if len(parts) > 1 else 0
    except ValueError as err:
        raise StateStoreError(f"bad Sentinel URL {url!r}: {err}") from None
    if not sentinels or not parts:
        raise StateStoreError(
            f"bad Sentinel URL {url!r}: want redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]"
        )
    return SentinelTarget(sentinels, parts[0], db, password)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return host, int(port) if port else DEFAULT_SENTINEL_PORT


def _client(url: str) -> aioredis.Redis:
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "retry": Retry(
            ExponentialBackoff(cap=COMMAND_BACKOFF_CAP_S, base=COMMAND_BACKOFF_BASE_S),
            COMMAND_RETRIES,
        ),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError, ConnectionError, OSError],
    }
    if not url.startswith(SENTINEL_SCHEME):
        return aioredis.Redis.from_url(url, **options)
    # The primary is asked of the sentinels on every new connection, so after a
    # failover the retried command reaches the new one.
    target = parse_sentinel_url(url)
    # Any: redis-py's Sentinel is typed in some releases and not in others.
    make_sentinel: Any = Sentinel
    sentinel = make_sentinel(
        list(target.sentinels),
        sentinel_kwargs={"socket_connect_timeout": CONNECT_TIMEOUT_S, "socket_timeout": 2.0},
    )
    primary: aioredis.Redis = sentinel.master_for(
        target.service, db=target.db, password=target.password, **options
    )
    return primary


async def connect(url: str) -> aioredis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``, or
    ``redis+sentinel://`` for a primary that Sentinel fails over) that answered PING."""
    try:
        client = _client(url)
    except (ValueError, RedisError) as err:
        raise StateStoreError(f"bad Redis URL {url!r}: {err}") from err
    try:
        await client.ping()
    except RedisError as err:
        await client.aclose()
        raise StateStoreError(f"cannot reach Redis at {url}: {err}") from err
    except BaseException:
        await client.aclose()
        raise
    return client


class EmbeddedRedis:
    """A private redis-server for one state directory, as an async context manager."""

    def __init__(self, state_dir: Path, binary: str = REDIS_BINARY) -> None:
        self.data_dir = Path(state_dir).expanduser() / "redis"
        self.binary = binary
        self.log_path = self.data_dir / "redis.log"
        self.pid_path = self.data_dir / "redis.pid"
        self._proc: asyncio.subprocess.Process | None = None
        self._binary_path = ""
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0
        self._tmp_dir: Path | None = None
        self.socket_path = self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def __aenter__(self) -> EmbeddedRedis:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _check_not_running(self) -> None:
        """Refuse to start a second server on a directory a live one still uses."""
        try:
            pid = int(self.pid_path.read_text().strip())
            # redis rewrites its cmdline, but it chdirs to --dir: that identifies it.
            cwd = Path(f"/proc/{pid}/cwd").resolve(strict=True)
        except (OSError, ValueError):
            return  # no pidfile, or its process is gone (a crash left it behind)
        if cwd == self.data_dir.resolve():
            raise RedisStartError(
                f"another redis-server (pid {pid}) already uses {self.data_dir}; "
                "is unifaas already running with this state directory?"
            )

    async def _start(self) -> None:
        path = shutil.which(self.binary)
        if path is None:
            raise RedisNotInstalled(self.binary)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._check_not_running()
        if len(str(self.socket_path)) > UNIX_PATH_MAX:
            self._tmp_dir = Path(tempfile.mkdtemp(prefix="unifaas-redis-"))
            self.socket_path = self._tmp_dir / "redis.sock"
        self._binary_path = path
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="redis-supervisor")

    async def _spawn(self) -> None:
        path = self._binary_path
        with self.log_path.open("ab") as log:
            # Errors before redis opens its logfile (bad arguments) go to stdout/stderr.
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *redis_argv(path, self.data_dir, self.socket_path),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    preexec_fn=die_with_parent,
                    start_new_session=True,  # a Ctrl-C meant for us does not reach it first
                )
            except OSError as err:
                raise RedisStartError(f"cannot start {path}: {err}") from err
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        # No retries in the client: this loop is the retry, with its own deadline.
        client = aioredis.Redis(unix_socket_path=str(self.socket_path), retry=Retry(NoBackoff(), 0))
        try:
            while True:
                if self._proc.returncode is not None:
                    raise RedisStartError(
                        f"redis-server exited with code {self._proc.returncode} at start "
                        f"(log: {self.log_path})",
                        read_tail(self.log_path),
                    )
                with contextlib.suppress(RedisError, OSError):
                    if await client.ping():
                        return
                if loop.time() > deadline:
                    raise RedisStartError(
                        f"redis-server did not answer PING within {START_TIMEOUT_S:g} s "
                        f"(log: {self.log_path})",
                        read_tail(self.log_path),
                    )
                await asyncio.sleep(START_POLL_S)
        finally:
            await client.aclose()

    async def _supervise(self) -> None:
        """Start redis-server again whenever it dies, until stop()."""
        failures = 0
        while not self._stopping:
            proc = self._proc
            assert proc is not None
            started = asyncio.get_running_loop().time()
            code = await proc.wait()
            if self._stopping:
                return
            lived_s = asyncio.get_running_loop().time() - started
            # Only a restart that dies again soon backs off further.
            failures = failures + 1 if self.restarts and lived_s < STABLE_S else 0
            delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
            log.warning(
                "redis-server (pid %d) exited with code %s; restarting it from its "
                "append-only file in %.1f s",
                proc.pid,
                code,
                delay,
            )
            await asyncio.sleep(delay)
            try:
                await self._spawn()
            except RedisStartError as err:
                log.error("restarting redis-server failed: %s", err)
                continue
            self.restarts += 1
            log.warning("redis-server restarted (pid %s, restart %d)", self.pid, self.restarts)

    async def stop(self) -> None:
        """SIGTERM (redis flushes its AOF), SIGKILL after STOP_TIMEOUT_S; idempotent."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        finally:
            if proc is not None and proc.returncode is None:
                # Cancelled while waiting: do not leave it behind.
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            if self._tmp_dir is not None:
                shutil.rmtree(self._tmp_dir, ignore_errors=True)
                self._tmp_dir = None
                self.socket_path = self.data_dir / "redis.sock"
