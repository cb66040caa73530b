"""Stopping without half answers: SIGTERM under load lets every call in flight finish,
refuses new ones at connect, then stops every VM."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from gateway.listener import accept_queue_length, refuse_new_connections
from loadtests.chaos import qemu_children
from loadtests.launch import platform_process
from tests.conftest import wasm
from tests.vms import running

pytestmark = pytest.mark.vm


def test_sigterm_finishes_calls_in_flight_and_refuses_new_ones(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # Also a server taking the cluster's token from UNIFAAS_TOKEN: no token file is made.
    token = "shared-cluster-token-0123456789"
    env = {"UNIFAAS_IDLE_TARGET": "0", "UNIFAAS_TOKEN": token}
    with platform_process(state, max_vms=4, extra_env=env) as served:
        assert not (state / "token").exists()
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=served.url, headers=auth, timeout=60) as http:
            for name, module, config in (
                ("echo", "echo", '{"min_warm": 1, "concurrency": 4}'),
                ("slow", "misbehave", '{"min_warm": 1, "timeout_s": 6, "args": ["loop"]}'),
            ):
                r = http.post(
                    f"/v1/functions/{name}",
                    files={"module": (f"{module}.wasm", wasm(module))},
                    data={"config": config},
                )
                assert r.status_code == 201, r.text
            for _ in range(1200):  # both warm, and their versions' templates made (a busy CPU)
                pool = http.get("/v1/status").json()["pool"]
                if pool["bound"] >= 2 and not pool["templates_making"]:
                    break
                time.sleep(0.1)
        outcomes: Counter[str] = Counter()
        lock, stop = threading.Lock(), threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    # A new connection per call: a refusal can only come at connect.
                    r = httpx.post(f"{served.url}/fn/echo", content=b"x" * 1000, timeout=60)
                    what = "answered" if r.content == b"x" * 1000 else f"wrong {r.status_code}"
                except httpx.ConnectError:
                    what = "refused"
                except httpx.HTTPError as err:
                    what = f"cut: {type(err).__name__}"
                with lock:
                    outcomes[what] += 1
                if what == "refused":
                    return

        slow: dict[str, object] = {}

        def slow_call() -> None:
            try:
                r = httpx.post(f"{served.url}/fn/slow", timeout=60)
                slow["status"] = r.status_code
            except httpx.HTTPError as err:
                slow["error"] = repr(err)

        threads = [threading.Thread(target=client) for _ in range(4)]
        threads.append(threading.Thread(target=slow_call))
        for t in threads:
            t.start()
        # The slow call runs for 6 s: SIGTERM comes while it is in flight, once the clients
        # have had answers (how many come in a second varies with how busy the host is).
        deadline = time.monotonic() + 4
        while outcomes["answered"] < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not slow, slow
        qemus = qemu_children(served.proc.pid)
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(60) == 0
        stop.set()
        for t in threads:
            t.join(60)
    assert slow == {"status": 504}, slow  # answered (its own timeout), not cut
    assert {k for k in outcomes if k not in ("answered", "refused")} == set(), outcomes
    assert outcomes["answered"] >= 12 and outcomes["refused"] >= 1, outcomes
    assert qemus and [pid for pid in qemus if running(pid)] == []


def test_a_listener_that_refuses_new_connections_keeps_those_it_accepted() -> None:
    """What a stopping server relies on (gateway.listener): after the filter, a connection
    the kernel had already accepted is still taken and served, a new one never completes,
    and once the socket is closed the kernel refuses it outright."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    with contextlib.ExitStack() as stack:
        early = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
        for _ in range(100):  # the handshake ends in the kernel, a moment after connect()
            if accept_queue_length(server) == 1:
                break
            time.sleep(0.01)
        assert accept_queue_length(server) == 1
        refuse_new_connections(server)
        late = stack.enter_context(socket.socket())
        late.settimeout(0.5)
        with pytest.raises(TimeoutError):
            late.connect(("127.0.0.1", port))
        taken, _ = server.accept()
        stack.enter_context(taken)
        early.sendall(b"ping")
        assert taken.recv(4) == b"ping"
        assert accept_queue_length(server) == 0
        server.close()
        again = stack.enter_context(socket.socket())
        again.settimeout(5)
        with pytest.raises(ConnectionRefusedError):
            again.connect(("127.0.0.1", port))
