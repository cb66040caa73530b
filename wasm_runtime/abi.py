"""The two function ABIs as pure functions: HTTP request -> (env, args, stdin), stdout -> response.

``raw``: the body is stdin; stdout is the response body, status 200 on exit 0, else 500.

``wagi`` (WAGI 0.x, i.e. CGI/1.1 over WASI): the request becomes CGI environment
variables, the query string becomes argv, the body is stdin; stdout is a CGI
response (header lines, a blank line, the body).

``args`` here never include argv[0]: the runner supplies it (the function's name).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple
from urllib.parse import unquote, unquote_plus

from wasm_runtime.errors import BadCgiResponse, BadHttpResponse
from wasm_runtime.types import HttpRequest, Invocation, InvocationResult, Limits

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
EnvPairs = tuple[tuple[str, str], ...]

GATEWAY_INTERFACE = "CGI/1.1"
SERVER_SOFTWARE = "unifaas"

RAW_CONTENT_TYPE = "application/octet-stream"
# A CGI response that sends a body without a Content-Type gets this one. Most
# WAGI functions that forget the header print text.
CGI_DEFAULT_CONTENT_TYPE = "text/plain"
# The header block must end within this many bytes, so a body that happens to
# contain a colon is never mistaken for headers.
CGI_HEADER_BLOCK_MAX_BYTES = 64 * 1024

# Request headers that are not passed on as HTTP_*: Content-Type/Length have their
# own variables; credentials are withheld unless the caller opts in (RFC 3875 4.1.18).
_OWN_VARIABLES = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
_CREDENTIALS = frozenset({"AUTHORIZATION", "PROXY_AUTHORIZATION"})
# HTTP field names that map cleanly to environment names. Names with "_" are
# dropped so "X_Foo" cannot impersonate "X-Foo" (nginx's underscores_in_headers).
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")
# RFC 9110 token characters, for response header names.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class AbiRequest(NamedTuple):
    """What a request turns into for one call: WASI env pairs, args after argv[0], stdin,
    or (a component) the HTTP request itself."""

    env: EnvPairs
    args: tuple[str, ...]
    stdin: bytes
    request: HttpRequest | None = None

    def invocation(self, limits: Limits | None = None) -> Invocation:
        return Invocation(
            stdin=self.stdin,
            args=self.args,
            env=self.env,
            limits=limits or Limits(),
            request=self.request,
        )


@dataclasses.dataclass(frozen=True)
class CgiResponse:
    """An HTTP response built from a function's stdout (both ABIs use it)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


# -- http (components) --------------------------------------------------------


def http_invocation(
    method: str,
    path_with_query: str,
    headers: Headers,
    body: bytes,
    *,
    authority: str = "",
    scheme: str = "http",
    base_env: Iterable[tuple[str, str]] = (),
    base_args: Iterable[str] = (),
) -> AbiRequest:
    """``http`` ABI (a wasi:http component): the request as it is, under the mount; its
    authority is its Host header, else ``authority``."""
    pairs = tuple(headers.items() if isinstance(headers, Mapping) else headers)
    host = next((v for k, v in pairs if k.lower() == "host" and v), "")
    request = HttpRequest(
        method=method,
        path_with_query=path_with_query or "/",
        scheme=scheme,
        authority=host or authority or "localhost",
        headers=pairs,
        body=body,
    )
    return AbiRequest(tuple(base_env), tuple(base_args), b"", request)


def http_response(result: InvocationResult) -> CgiResponse:
    """A component's response; BadHttpResponse when it set none, or an error-code."""
    response = result.response
    if response is None or response.error == "no_response":
        raise BadHttpResponse(
            "the component's handler returned without setting its response-outparam",
            "no_response",
        )
    if response.error:
        raise BadHttpResponse(
            f"the component answered with error-code {response.error!r} instead of a response",
            response.error,
        )
    return CgiResponse(response.status, list(response.headers), response.body)


# -- raw --------------------------------------------------------------------


def raw_invocation(
    body: bytes,
    *,
    base_env: Iterable[tuple[str, str]] = (),
    base_args: Iterable[str] = (),
) -> AbiRequest:
    """``raw`` ABI: the function sees only its configured env/args and the body on stdin."""
    return AbiRequest(tuple(base_env), tuple(base_args), body)


def raw_response(exit_code: int, stdout: bytes) -> CgiResponse:
    """``raw`` ABI: stdout is the body; 200 when the function exited 0, else 500."""
    return CgiResponse(
        status=200 if exit_code == 0 else 500,
        headers=[("Content-Type", RAW_CONTENT_TYPE)],
        body=stdout,
    )


# -- wagi -------------------------------------------------------------------


def _header_pairs(headers: Headers) -> list[tuple[str, str]]:
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def _merge_env(base: Iterable[tuple[str, str]], cgi: dict[str, str]) -> EnvPairs:
    # The request's CGI variables win over the function's configured env; each
    # name appears once (WASI getenv with duplicate names is unspecified).
    merged = {k: v for k, v in base if k not in cgi}
    merged.update(cgi)
    return tuple(merged.items())


def wagi_invocation(
    method: str,
    path_info: str,
    query_string: str,
    headers: Headers,
    body: bytes,
    *,
    script_name: str,
    server_name: str,
    server_port: int | str,
    remote_addr: str,
    base_env: Iterable[tuple[str, str]] = (),
    base_args: Iterable[str] = (),
    scheme: str = "http",
    server_protocol: str = "HTTP/1.1",
    forward_authorization: bool = False,
) -> AbiRequest:
    """Map an HTTP request to a WAGI call.

    ``script_name`` is the route the function is mounted at (e.g. ``/fn/hello``) and
    ``path_info`` the raw (still percent-encoded) rest of the path, e.g. ``/a/b``.
    argv after argv[0] is ``base_args`` followed by the query split on ``&``, each
    part URL-decoded ("+" is a space). Repeated request headers are joined with
    ", ". Authorization headers become ``AUTH_TYPE`` only, unless
    ``forward_authorization`` passes them on as ``HTTP_AUTHORIZATION``.
    """
    pairs = _header_pairs(headers)
    content_type = ""
    http_vars: dict[str, str] = {}
    auth_type = ""
    host = ""
    for name, value in pairs:
        if not _HEADER_NAME.match(name):
            continue
        var = name.upper().replace("-", "_")
        if var == "CONTENT_TYPE":
            content_type = value
        if var == "HOST":
            host = value
        if var == "AUTHORIZATION":
            auth_type = value.split(" ", 1)[0]
        if var in _OWN_VARIABLES or (var in _CREDENTIALS and not forward_authorization):
            continue
        key = f"HTTP_{var}"
        http_vars[key] = f"{http_vars[key]}, {value}" if key in http_vars else value

    decoded_path = unquote(path_info)
    authority = host or f"{server_name}:{server_port}"
    full_url = f"{scheme}://{authority}{script_name}{path_info}"
    if query_string:
        full_url += f"?{query_string}"
    cgi = {
        "REQUEST_METHOD": method.upper(),
        "SCRIPT_NAME": script_name,
        "PATH_INFO": decoded_path,
        "PATH_TRANSLATED": decoded_path,
        "X_RAW_PATH_INFO": path_info,
        "QUERY_STRING": query_string,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": server_protocol,
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "GATEWAY_INTERFACE": GATEWAY_INTERFACE,
        "REMOTE_ADDR": remote_addr,
        "REMOTE_HOST": remote_addr,
        "REMOTE_USER": "",
        "AUTH_TYPE": auth_type,
        "X_MATCHED_ROUTE": script_name,
        "X_FULL_URL": full_url,
        **http_vars,
    }
    query_args = [unquote_plus(part) for part in query_string.split("&") if part]
    return AbiRequest(_merge_env(base_env, cgi), (*base_args, *query_args), body)


def _split_header_block(stdout: bytes) -> tuple[list[bytes], bytes]:
    """Header lines (without line ends) and the body after the first blank line."""
    lines: list[bytes] = []
    pos = 0
    while True:
        end = stdout.find(b"\n", pos)
        if end < 0 or end > CGI_HEADER_BLOCK_MAX_BYTES:
            if not stdout:
                why = "the function wrote nothing"
            elif end < 0:
                why = "no blank line ends the header block"
            else:
                why = f"no blank line within the first {CGI_HEADER_BLOCK_MAX_BYTES} bytes"
            raise BadCgiResponse(
                f"malformed CGI response: {why}; a WAGI function must print header lines "
                "(at least Content-Type), a blank line, then the body",
                stdout,
            )
        line = stdout[pos:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        pos = end + 1
        if not line:
            return lines, stdout[pos:]
        lines.append(line)


def parse_cgi_output(stdout: bytes) -> CgiResponse:
    """Parse a WAGI function's stdout; raises BadCgiResponse when it is not a CGI response.

    Lines may end in "\\n" or "\\r\\n". ``Status: 404 Not Found`` sets the status
    (the reason text is dropped) and is not passed on as a header; a ``Location``
    without ``Status`` is a 302 redirect; otherwise 200. A non-empty body without
    ``Content-Type`` gets ``text/plain``.
    """
    lines, body = _split_header_block(stdout)
    headers: list[tuple[str, str]] = []
    status: int | None = None
    has_location = has_content_type = False
    for raw_line in lines:
        line = raw_line.decode("latin-1")
        name, sep, value = line.partition(":")
        value = value.strip(" \t")
        if not sep or not _TOKEN.match(name):
            raise BadCgiResponse(f"malformed CGI header line {line[:100]!r}", stdout)
        if _CONTROL.search(value):
            raise BadCgiResponse(f"CGI header {name!r} contains a control character", stdout)
        lowered = name.lower()
        if lowered == "status":
            code = value.split(" ", 1)[0]
            if not (code.isascii() and code.isdigit() and 100 <= int(code) <= 599):
                raise BadCgiResponse(f"invalid CGI Status {value[:40]!r}", stdout)
            status = int(code)
            continue
        has_location = has_location or lowered == "location"
        has_content_type = has_content_type or lowered == "content-type"
        headers.append((name, value))
    if status is None:
        status = 302 if has_location else 200
    if body and not has_content_type:
        headers.append(("Content-Type", CGI_DEFAULT_CONTENT_TYPE))
    return CgiResponse(status=status, headers=headers, body=body)
