"""Outbound HTTP for functions: the host resolves, checks and connects, never the guest.

Deny by default. A function's ``allow_hosts`` entries are ``HOST`` (any port) or
``HOST:PORT`` (``[v6]:PORT`` for an IPv6 literal). A request goes out only when:

1. its URL is ``http`` or ``https`` and its host and port match an entry;
2. every address the host resolves to is a public one, except where the entry that
   matched names the address itself (an IP literal) or is ``localhost`` (loopback):
   a name on the allow-list cannot be pointed at the host's own or a private network
   by whoever controls its DNS;
3. the request body is within the cap; then the host connects to the address it
   checked (not a second lookup), with the URL's host as Host and TLS server name.

Redirects are not followed (a function sees the 3xx and may ask again); the response
body is read up to its cap. Every refusal is a hostcall Status with a message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket

import httpx

from wasm_runtime.hostcalls import HostAnswer, HostRequest, Status, denied

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# Headers the host sets itself: a function cannot choose where the request goes or how
# it is framed.
_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HOST_ENTRY_MAX = 253 + 8


class BadHostEntry(ValueError):
    """An allow-list entry that is not HOST or HOST:PORT."""


@dataclasses.dataclass(frozen=True)
class HostRule:
    host: str  # lower case; an IP literal without brackets
    port: int | None  # None: any port

    @property
    def address(self) -> Address | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def matches(self, host: str, port: int) -> bool:
        return self.host == host and (self.port is None or self.port == port)

    def admits(self, address: Address) -> bool:
        """May a request this rule matched connect to ``address``?"""
        if address.is_global:
            return True
        if self.address is not None:
            return self.address == address
        return self.host == "localhost" and address.is_loopback

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_host_entry(entry: str) -> HostRule:
    """``HOST``, ``HOST:PORT`` or ``[V6]:PORT``; BadHostEntry saying why otherwise."""
    text = entry.strip().lower()
    if not text or len(text) > HOST_ENTRY_MAX or "/" in text or "@" in text or "*" in text:
        raise BadHostEntry(f"{entry!r} is not HOST or HOST:PORT (no scheme, path or wildcard)")
    try:
        split = httpx.URL(f"http://{text}")
        host, port = split.host, split.port
    except (httpx.InvalidURL, ValueError) as err:
        raise BadHostEntry(f"{entry!r} is not HOST or HOST:PORT: {err}") from err
    if not host or (port is not None and not 0 < port < 65536):
        raise BadHostEntry(f"{entry!r} is not HOST or HOST:PORT")
    return HostRule(host, port)


def parse_allow_list(entries: list[str]) -> tuple[HostRule, ...]:
    return tuple(parse_host_entry(e) for e in entries)


@dataclasses.dataclass(frozen=True)
class Caps:
    timeout_s: float
    max_request_bytes: int
    max_response_bytes: int


class Outbound:
    """The node's one HTTP client for functions' requests."""

    def __init__(self) -> None:
        # No proxies from the environment, no redirects, no cookies kept between calls.
        self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self, rules: tuple[HostRule, ...], req: HostRequest, caps: Caps
    ) -> HostAnswer:
        method = req.method.upper()
        if method not in METHODS:
            return denied(Status.INVALID_ARGUMENT, f"method {req.method[:16]!r} is not allowed")
        try:
            url = httpx.URL(req.url)
        except (httpx.InvalidURL, ValueError) as err:
            return denied(Status.INVALID_ARGUMENT, f"not a URL: {err}")
        if url.scheme not in ("http", "https") or not url.host:
            return denied(Status.INVALID_ARGUMENT, "the URL must be http(s)://HOST[:PORT]/...")
        if len(req.body) > caps.max_request_bytes:
            return denied(
                Status.HTTP_TOO_LARGE,
                f"a request body of {len(req.body)} bytes (at most {caps.max_request_bytes})",
            )
        host = url.host.lower()
        port = url.port or (443 if url.scheme == "https" else 80)
        rule = next((r for r in rules if r.matches(host, port)), None)
        shown = str(HostRule(host, port))
        if rule is None:
            return denied(
                Status.HOST_DENIED,
                f"{shown} is not on this function's allow-list (deploy with --allow-host)",
            )
        try:
            address = await asyncio.wait_for(_resolve(host, port, rule), caps.timeout_s)
        except TimeoutError:
            return denied(Status.HTTP_TIMEOUT, f"resolving {host} took over {caps.timeout_s:g} s")
        except _Refused as err:
            return denied(Status.HOST_DENIED, str(err))
        except OSError as err:
            return denied(Status.HTTP_FAILED, f"cannot resolve {host}: {err}")
        return await self._send(method, url, address, req, caps, shown)

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        address: Address,
        req: HostRequest,
        caps: Caps,
        shown: str,
    ) -> HostAnswer:
        headers = [(k, v) for k, v in req.headers if k.lower() not in _HOP_HEADERS]
        netloc = url.netloc.decode("ascii")
        headers.append(("Host", netloc))
        if not any(k.lower() == "accept-encoding" for k, _ in headers):
            # The function gets the body as sent; it asks for compression if it can read it.
            headers.append(("Accept-Encoding", "identity"))
        target = url.copy_with(host=str(address))
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        timeout = httpx.Timeout(caps.timeout_s)
        request = self._client.build_request(
            method,
            target,
            headers=headers,
            content=req.body,
            timeout=timeout,
            extensions=extensions,
        )
        try:
            async with asyncio.timeout(caps.timeout_s):
                response = await self._client.send(request, stream=True)
                try:
                    body = bytearray()
                    async for chunk in response.aiter_raw():
                        body += chunk
                        if len(body) > caps.max_response_bytes:
                            return denied(
                                Status.HTTP_TOO_LARGE,
                                f"the response from {shown} is over "
                                f"{caps.max_response_bytes} bytes",
                            )
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return denied(Status.HTTP_TIMEOUT, f"{shown} did not answer in {caps.timeout_s:g} s")
        except (httpx.HTTPError, OSError) as err:
            return denied(Status.HTTP_FAILED, f"request to {shown} failed: {err}")
        return HostAnswer(
            Status.OK,
            value=bytes(body),
            http_status=response.status_code,
            headers=tuple(response.headers.multi_items()),
        )


class _Refused(Exception):
    pass


async def _resolve(host: str, port: int, rule: HostRule) -> Address:
    """The address to connect to: the first one, once every one is admitted."""
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise OSError(f"{host} has no address")
    for address in addresses:
        if not rule.admits(address):
            raise _Refused(
                f"{host} resolves to {address}, a non-public address; allow it by "
                f"naming it (--allow-host {address})"
            )
    return addresses[0]
