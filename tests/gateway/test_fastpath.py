"""The lean route for ``/fn/...`` (gateway.fastpath) answers exactly what the full
FastAPI stack answers: the same requests, sent with the fast path and without it, give
the same status, headers and body, for answers and for every kind of refusal."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.fastpath import UnifaasApp
from tests.gateway.conftest import AUTH, HEADER_LIMIT, deploy

# Headers that differ between any two calls.
_VARYING = {"date", "x-invocation-id", "server-timing", "x-start"}

REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/fn/echo", {"content": b"ping"}),
    ("POST", "/fn/echo/", {"content": b"root slash"}),
    ("POST", "/fn/echo/a/b?q=1&r=%20", {"content": b"deep"}),
    ("GET", "/fn/echo", {}),
    ("HEAD", "/fn/echo", {}),
    ("OPTIONS", "/fn/echo/x", {}),
    ("PUT", "/fn/echo", {"content": b"x" * 2048}),  # past the body limit: 413
    ("POST", "/fn/echo", {"content": b"ping", "headers": {"x-unifaas-stderr": "1"}}),
    ("POST", "/fn/echo", {"headers": {"x-big": "y" * HEADER_LIMIT}}),  # 431
    ("POST", "/fn/private", {"content": b"no token"}),  # 403
    ("POST", "/fn/private", {"content": b"token", "headers": AUTH}),
    ("POST", "/fn/nobody", {"content": b"x"}),  # 404 function
    ("TRACE", "/fn/echo", {}),  # 405 with Allow, from FastAPI either way
    ("POST", "/fn/", {}),  # 404 route
    ("POST", "/fn//echo", {}),
    ("POST", "/fn/trap", {"content": b"x"}),  # the function's own failure
]


def _seen(r: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in r.headers.items() if k not in _VARYING)
    call_id = r.headers.get("x-invocation-id", "").encode()
    return r.status_code, headers, r.content.replace(call_id, b"ID") if call_id else r.content


async def test_the_fast_path_answers_as_the_full_stack(client: httpx.AsyncClient) -> None:
    await deploy(client, "echo", "echo")
    await deploy(client, "private", "echo", public=False)
    await deploy(client, "trap", "misbehave", args=["trap"])
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    assert isinstance(app, UnifaasApp) and app.fast_path is not None
    fast_path = app.fast_path
    taken: list[str] = []
    guarded = fast_path._guarded

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        taken.append(scope["path"])
        await guarded(scope, receive, send)

    fast_path._guarded = counted  # type: ignore[assignment]
    seen: dict[bool, list[tuple[int, list[tuple[str, str]], bytes]]] = {}
    for fast in (True, False):
        app.fast_path = fast_path if fast else None
        seen[fast] = []
        for method, url, kwargs in REQUESTS:
            seen[fast].append(_seen(await client.request(method, url, **kwargs)))
    app.fast_path = fast_path
    for request, a, b in zip(REQUESTS, seen[True], seen[False], strict=True):
        assert a == b, request
    # All but TRACE, /fn/ and /fn//echo went the fast way.
    assert len(taken) == len(REQUESTS) - 3, taken
    statuses = [status for status, _, _ in seen[True]]
    assert {200, 401, 404, 405, 413, 431} <= set(statuses), statuses
    assert statuses[-1] >= 500  # the trap: its own error status
