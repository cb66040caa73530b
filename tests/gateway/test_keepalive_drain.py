"""SIGTERM under keep-alive load: a client that sends its next request on a connection the
stopping server holds open gets an answer (``Connection: close`` on it), never a connection
closed without one (gateway.draining). The server is the real one (gateway.up's loop with
its signal handling, uvicorn on a socket, in its own process) around a trivial app, so the
race can be run many times in a few seconds; the rolling restart e2e test runs it with the
platform."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx

from loadtests.launch import free_port

SERVER = """
import asyncio, sys
from fastapi import FastAPI, Request, Response
from gateway.settings import GatewaySettings
from gateway.up import _run

app = FastAPI()

@app.post("/echo")
async def echo(request: Request) -> Response:
    await asyncio.sleep(0.001)
    return Response(await request.body())

asyncio.run(_run(app, GatewaySettings(port=int(sys.argv[1]), drain_timeout_s=5), "ready"))
"""
ROUNDS = 6
CLIENTS = 6


def _round(outcomes: Counter[str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/echo"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None and b"ready" in proc.stderr.readline()
        answered, lock, stop = Counter[int](), threading.Lock(), threading.Event()

        def client(n: int) -> None:
            with httpx.Client(timeout=30) as http:  # one keep-alive connection, reused
                while not stop.is_set():
                    body = f"{n} {answered[n]}".encode()
                    try:
                        r = http.post(url, content=body)
                        what = "answered" if r.content == body else f"wrong {r.status_code}"
                    except httpx.ConnectError:
                        what = "refused"  # a new connection, refused by the stopping server
                    except httpx.HTTPError as err:
                        what = f"cut: {type(err).__name__}"
                    with lock:
                        outcomes[what] += 1
                        answered[n] += what == "answered"
                    if what != "answered":
                        return

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while min(answered[n] for n in range(CLIENTS)) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_keep_alive_clients_are_answered_or_refused_through_sigterm() -> None:
    outcomes: Counter[str] = Counter()
    for _ in range(ROUNDS):
        _round(outcomes)
    assert {k for k in outcomes if k not in ("answered", "refused")} == set(), outcomes
    assert outcomes["refused"] == ROUNDS * CLIENTS, outcomes  # each client saw the end
