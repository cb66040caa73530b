"""An async call's optional ``X-Callback-Url``: which URLs may be named, and POSTing the ended
call's response there.

Deny by default: only hosts the ``UNIFAAS_ASYNC_CALLBACK_HOSTS`` setting names
(``HOST`` allows any port of it, ``HOST:PORT`` that port) and only http(s). The
URL is checked when the call is accepted (400 otherwise) and again by the node
that delivers it, whose settings may be stricter.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse

import httpx

from scheduler.asyncq.queue import AsyncCall, StoredResponse
from scheduler.errors import InvalidCallback

log = logging.getLogger(__name__)

CALLBACK_URL_MAX = 2048
# Between tries of a callback that failed: 1 s, then 2 s, ...
RETRY_BASE_S = 1.0
# The function's headers that go with its body to the callback.
_FORWARDED = {"content-type", "x-invocation-id", "x-function-version", "x-exit-code"}


def check_callback(url: str, allowed: frozenset[str]) -> str:
    """``url`` when a callback may go there; InvalidCallback saying why otherwise."""
    if len(url) > CALLBACK_URL_MAX:
        raise InvalidCallback(f"the callback URL is longer than {CALLBACK_URL_MAX} characters")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidCallback("the callback URL must be http(s)://HOST[:PORT]/...")
    host = parts.hostname.lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidCallback("the callback URL's port is not a number") from None
    if host not in allowed and f"{host}:{port}" not in allowed:
        raise InvalidCallback(
            f"callbacks to {host}:{port} are not allowed (UNIFAAS_ASYNC_CALLBACK_HOSTS "
            f"names the hosts that are: {', '.join(sorted(allowed)) or 'none'})"
        )
    return url


async def deliver(
    client: httpx.AsyncClient,
    call: AsyncCall,
    response: StoredResponse | None,
    *,
    attempts: int,
) -> str:
    """POST the ended call's response to its callback URL; how it went, for the call's hash."""
    url = call.callback_url or ""
    headers = {"X-Unifaas-Async-Id": call.id, "X-Unifaas-Status": call.status.value}
    body = b""
    if response is not None:
        headers["X-Unifaas-Http-Status"] = str(response.status)
        headers.update((k, v) for k, v in response.headers if k.lower() in _FORWARDED)
        body = response.body
    outcome = "not tried"
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(RETRY_BASE_S * 2 ** (attempt - 1))
        try:
            answer = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as err:
            outcome = f"failed: {type(err).__name__}: {err}"
            continue
        outcome = f"delivered ({answer.status_code})"
        if answer.status_code < 500:
            return outcome if answer.is_success else f"refused ({answer.status_code})"
    log.warning("callback of async call %s to %s %s", call.id, url, outcome)
    return outcome
