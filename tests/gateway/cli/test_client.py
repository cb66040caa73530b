"""The CLI's HTTP client: a paged list is followed to its end through its Link headers."""

from __future__ import annotations

import httpx

from gateway.cli.client import Client


def test_pages_are_followed_through_link_headers() -> None:
    asked: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url.query, "ascii"))
        after = request.url.params.get("after", "")
        if after == "":
            return httpx.Response(
                200, json=[{"name": "a"}], headers={"Link": '</v1/functions?after=a>; rel="next"'}
            )
        return httpx.Response(200, json=[{"name": "b"}])

    client = Client("http://unifaas.test", "token")
    client._http = httpx.Client(base_url=client.url, transport=httpx.MockTransport(serve))
    assert [item["name"] for item in client.pages("/v1/functions")] == ["a", "b"]
    assert asked == ["", "after=a"]
