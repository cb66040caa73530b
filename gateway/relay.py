"""A gateway's way to its nodes: the call goes to the node placement picks, over the node's
internal invoke API, and its answer comes back as the caller's response.

The retry rule is the pool's, one level up: a call whose node could not be reached,
refused it (the token is wrong, or the node is stopping) or answered nothing else
of ours goes to another node, since it never ran; a call whose connection broke
after it was sent may have run, and is run again once, on another node (a node's
death is rarer than a VM's, which the node's pool runs again for up to three times).
Past that it is ``NodeLost`` (503, ``sandbox_lost``).
"""

from __future__ import annotations

import dataclasses
import logging

import httpx

from scheduler.errors import NodeLost, NoNodeAvailable
from scheduler.model import InvokeRequest, NodeRecord
from scheduler.registry import TIMEOUT_MAX_S
from scheduler.roles import CONTENT_TYPE, NodeDirectory, encode_invoke

log = logging.getLogger(__name__)

INTERNAL_INVOKE_PATH = "/internal/invoke/"
# Every answer of a node's internal invoke route names the node; on an error, its kind.
NODE_HEADER = "X-Unifaas-Node"
ERROR_KIND_HEADER = "X-Error-Kind"
# Runs again after a broken connection: once.
MAX_RERUNS = 1
CONNECT_TIMEOUT_S = 2.0
# A call may wait for a slot and then run for its timeout; past this its node is hung.
READ_TIMEOUT_S = TIMEOUT_MAX_S + 90.0
# The node is stopping (it answers PoolClosed before running anything).
_NOT_RUN_KINDS = {"shutting_down"}


@dataclasses.dataclass(frozen=True)
class Relayed:
    node_id: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    reruns: int  # runs on another node after the connection to one broke
    error_kind: str | None  # the node's error kind, when it answered with an error


class Relay:
    def __init__(self, nodes: NodeDirectory, token: str) -> None:
        self.nodes = nodes
        self._auth = {"Authorization": f"Bearer {token}", "Content-Type": CONTENT_TYPE}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S, pool=None),
            # Idle connections are closed before the node's server closes them (uvicorn
            # after 5 s): one it had just closed would read as a node dying under a call.
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=256, keepalive_expiry=2.0
            ),
        )
        self.reruns = 0  # calls run again on another node (for /metrics)

    def nodes_label(self) -> str:
        alive = len(self.nodes.alive())
        return f"over {alive} node{'s' if alive != 1 else ''}"

    async def close(self) -> None:
        await self._client.aclose()

    async def invoke(self, name: str, request: InvokeRequest) -> Relayed:
        body = encode_invoke(request)
        tried: set[str] = set()
        reruns = 0
        while True:
            node = self.nodes.choose(name, exclude=frozenset(tried))
            if node is None:
                if reruns:
                    raise NodeLost(
                        f"the nodes running the call went away before it answered "
                        f"({', '.join(sorted(tried))})",
                        retries=reruns,
                    )
                raise NoNodeAvailable(
                    "no node can take the call now: none is registered, or none was reachable"
                    + (f" ({', '.join(sorted(tried))} tried)" if tried else "")
                )
            tried.add(node.id)
            try:
                answer = await self._send(node, name, body)
            except httpx.TimeoutException as err:
                if isinstance(err, httpx.ConnectTimeout):
                    self.nodes.down(node, "connect timed out")
                    continue
                self.nodes.down(node, f"no answer in {READ_TIMEOUT_S:g} s")
                raise NodeLost(f"node {node.id} did not answer the call in time") from None
            except httpx.ConnectError as err:
                self.nodes.down(node, f"unreachable ({err})")
                continue
            except httpx.TransportError as err:
                # Sent, and the connection broke: the call may have run there.
                self.nodes.down(node, f"connection broke during a call ({err!r})")
                if reruns >= MAX_RERUNS:
                    raise NodeLost(
                        f"node {node.id} went away before the call answered, after it "
                        f"had already been run again once",
                        retries=reruns,
                    ) from None
                reruns += 1
                self.reruns += 1
                continue
            if answer is None:
                continue
            return dataclasses.replace(answer, reruns=reruns)

    async def _send(self, node: NodeRecord, name: str, body: bytes) -> Relayed | None:
        """The node's answer, or None when it did not run the call (try another)."""
        self.nodes.in_flight[node.id] += 1
        try:
            request = self._client.build_request(
                "POST", f"{node.url}{INTERNAL_INVOKE_PATH}{name}", content=body, headers=self._auth
            )
            response = await self._client.send(request, stream=True)
            try:
                # The bytes as the function wrote them: no decoding of its Content-Encoding.
                content = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        finally:
            self.nodes.in_flight[node.id] -= 1
        if NODE_HEADER.lower() not in response.headers:
            # Not our route's answer: the token differs, or it is no unifaas node.
            self.nodes.down(
                node,
                f"refused the call ({response.status_code}): is UNIFAAS_TOKEN the same on "
                "every server?",
            )
            return None
        kind = response.headers.get(ERROR_KIND_HEADER)
        if kind in _NOT_RUN_KINDS:
            self.nodes.down(node, "it is stopping")
            return None
        return Relayed(
            node_id=node.id,
            status=response.status_code,
            headers=list(response.headers.multi_items()),
            body=content,
            reruns=0,
            error_kind=kind,
        )
