"""A thin HTTP client for the CLI: URL and token resolution, requests, readable errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from gateway.auth import read_token
from gateway.errors import ClientError
from gateway.settings import ClientSettings

DEFAULT_TIMEOUT_S = 330.0  # longer than the longest function timeout (300 s) + queueing


def token_of(settings: ClientSettings) -> str | None:
    """The token from the settings, else the one ``up`` wrote in the state dir."""
    return settings.token or read_token(settings.state_dir)


class Client:
    @classmethod
    def from_settings(cls, settings: ClientSettings) -> Client:
        return cls(settings.url, token_of(settings))

    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=DEFAULT_TIMEOUT_S)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as err:
            raise ClientError(
                f"cannot reach unifaas at {self.url} (is `unifaas up` running?)"
            ) from err
        except httpx.HTTPError as err:
            raise ClientError(f"request to {self.url}{path} failed: {err}") from err
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        raise_for_error(response)
        return response.json()

    def pages(self, path: str) -> Iterator[Any]:
        """Every item of a paged list, following its ``Link: <...>; rel="next"`` headers."""
        url: str | None = path
        while url is not None:
            response = self.request("GET", url)
            raise_for_error(response)
            yield from response.json()
            url = response.links.get("next", {}).get("url")


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    kind, message = "", response.text.strip()
    try:
        error = response.json().get("error") or {}
        kind = str(error.get("kind", ""))
        message = str(error.get("message", message))
    except (ValueError, AttributeError):
        detail = message
        message = detail or response.reason_phrase
    raise ClientError(f"{message} (HTTP {response.status_code})", response.status_code, kind)
