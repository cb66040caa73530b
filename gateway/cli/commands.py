"""CLI commands that talk to a running platform over HTTP (deploy, invoke, list, ...)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.cli import manifest
from gateway.cli.client import Client, raise_for_error
from gateway.errors import ManifestError
from gateway.settings import ClientSettings, given
from wasm_runtime.cliargs import files_bundle, read_data, read_file
from wasm_runtime.errors import UsageError


def client_of(args: argparse.Namespace) -> Client:
    return Client.from_settings(ClientSettings(**given(url=args.url, state_dir=args.state_dir)))


# deploy flag -> FunctionConfig field. Only flags the user gave are sent, so the
# platform's defaults apply to the rest.
_DEPLOY_FIELDS = {
    "abi": "abi",
    "timeout": "timeout_s",
    "memory": "memory_mib",
    "min_warm": "min_warm",
    "max_vms": "max_vms",
    "concurrency": "concurrency",
    "keep_alive": "keep_alive_s",
    "max_in_flight": "max_in_flight",
    "rate_limit": "rate_limit",
    "kv_max_keys": "kv_max_keys",
    "kv_max_bytes": "kv_max_bytes",
}


def deploy_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields of a deploy, from the flags given (and only those)."""
    config: dict[str, Any] = {
        field: getattr(args, flag)
        for flag, field in _DEPLOY_FIELDS.items()
        if getattr(args, flag) is not None
    }
    if args.env:
        config["env"] = dict(args.env)
    if args.arg:
        config["args"] = list(args.arg)
    if args.private:
        config["public"] = False
    if args.allow_host:
        config["allow_hosts"] = list(args.allow_host)
    return config


def deploy_secrets(args: argparse.Namespace) -> dict[str, str] | None:
    """The secrets part of a deploy: None keeps the current version's, {} drops them."""
    if args.secret:
        return dict(args.secret)
    return {} if args.no_secrets else None


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _with_manifest(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` completed from the manifest (./unifaas.toml, or --manifest) when NAME or
    FILE.wasm is left out; flags given override what it says."""
    if args.name and args.module and not args.manifest:
        return args
    path = Path(args.manifest) if args.manifest else manifest.find()
    if path is None:
        missing = "FILE.wasm" if args.name else "NAME and FILE.wasm"
        raise UsageError(
            f"no {missing} given, and no {manifest.MANIFEST} here: give them, "
            "or run it in a function's directory (unifaas new makes one)"
        )
    found = manifest.load(path)
    if not args.module and found.build is None:
        raise ManifestError(f"{found.path}: build.output: required to deploy without FILE.wasm")
    module = args.module or str(found.build.output if found.build else "")
    if not args.module and not Path(module).is_file():
        raise UsageError(f"{module} does not exist yet: run `unifaas build` first")
    secrets = None if args.secret or args.no_secrets or not found.secrets else found
    return argparse.Namespace(
        **{
            **vars(args),
            "name": args.name or found.name,
            "module": module,
            "files": args.files or (str(found.files) if found.files else None),
            "manifest_config": found.config,
            "manifest_secrets": secrets,
        }
    )


def cmd_deploy(args: argparse.Namespace) -> int:
    args = _with_manifest(args)
    module = Path(args.module)
    wasm = read_file(args.module)
    config = {**getattr(args, "manifest_config", {}), **deploy_config(args)}
    files: dict[str, Any] = {"module": (module.name, wasm, "application/wasm")}
    if args.files:
        files["files"] = ("files.tar", files_bundle(args.files), "application/x-tar")
    form = {"config": json.dumps(config)}
    secrets = deploy_secrets(args)
    from_manifest = getattr(args, "manifest_secrets", None)
    if secrets is None and from_manifest is not None:
        secrets = from_manifest.secret_values()
    if secrets is not None:
        form["secrets"] = json.dumps(secrets)
    client = client_of(args)
    print(f"deploying {args.name} from {module} ({len(wasm)} bytes)...", file=sys.stderr)
    fv = client.json("POST", f"/v1/functions/{args.name}", files=files, data=form)
    if args.json:
        _print_json(fv)
    else:
        print(f"deployed {fv['name']} version {fv['version']}")
        print(f"  curl -X POST --data-binary 'hello' {client.url}/fn/{fv['name']}")
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    client = client_of(args)
    path = f"/fn/{args.name}" + (("/" + args.path.lstrip("/")) if args.path else "")
    headers = {"X-Unifaas-Stderr": "1"}
    for header in args.header:
        key, _, value = header.partition(":")
        headers[key.strip()] = value.strip()
    if getattr(args, "async_", False):
        headers["Prefer"] = "respond-async"
        if args.callback:
            headers["X-Callback-Url"] = args.callback
    method = args.method or ("POST" if args.data is not None else "GET")
    response = client.request(method, path, content=read_data(args.data), headers=headers)
    if response.status_code == 202 and headers.get("Prefer"):
        accepted = response.json()
        print(accepted["id"])
        print(f"queued: unifaas result {accepted['id']} --wait", file=sys.stderr)
        return 0
    return print_answer(response)


def print_answer(response: httpx.Response) -> int:
    """A function's answer as `invoke` shows it: body to stdout, its stderr to stderr, the
    exit code its own; an error of the platform on stderr."""
    exit_code = int(response.headers.get("x-exit-code", "1"))
    if response.headers.get("x-stderr"):
        sys.stderr.buffer.write(base64.b64decode(response.headers["x-stderr"]))
    if (
        response.status_code >= 400
        and response.headers.get("content-type", "").startswith("application/json")
        and "x-invocation-id" in response.headers
    ):
        error = response.json().get("error", {})
        if error.get("stderr") and "x-stderr" not in response.headers:
            sys.stderr.write(error["stderr"])
        print(
            f"unifaas: {error.get('kind', 'error')}: {error.get('message', '')} "
            f"(HTTP {response.status_code})",
            file=sys.stderr,
        )
        return exit_code if exit_code != 0 else 1
    if "x-invocation-id" not in response.headers:
        raise_for_error(response)
    sys.stdout.buffer.write(response.content)
    sys.stdout.flush()
    return exit_code


def cmd_list(args: argparse.Namespace) -> int:
    items = list(client_of(args).pages("/v1/functions"))
    if args.json:
        _print_json(items)
        return 0
    _table(
        [[i["name"], str(i["current"]), str(len(i["versions"]))] for i in items],
        ["NAME", "CURRENT", "VERSIONS"],
    )
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    d = client_of(args).json("GET", f"/v1/functions/{args.name}")
    if args.json:
        _print_json(d)
        return 0
    print(f"name     {d['name']}\ncurrent  {d['current']}")
    _table(
        [
            [
                str(v["version"]),
                v["config"]["abi"],
                v["module_sha256"][:12],
                str(v["config"]["timeout_s"]),
                str(v["config"]["memory_mib"]),
            ]
            for v in d["versions"]
        ],
        ["VERSION", "ABI", "MODULE", "TIMEOUT_S", "MEMORY_MIB"],
    )
    for key, info in sorted(d["warm_vms"].items()):
        print(f"warm VMs {key}: {info}")
    return 0


LOG_HEADER = ["ID", "VERSION", "START", "OUTCOME", "EXIT", "STATUS", "RETRIES", "TOTAL_MS"]
# How often `logs -f` asks for new records.
FOLLOW_EVERY_S = 1.0


def _log_row(r: dict[str, Any]) -> list[str]:
    return [
        r["id"], str(r["version"]), r["start"], r["outcome"], str(r["exit_code"]),
        str(r["status"]), str(r["retries"]), f"{r['total_ms']:.1f}",
    ]  # fmt: skip


def cmd_logs(args: argparse.Namespace) -> int:
    client = client_of(args)
    if args.follow:
        return _follow(client, args)
    if args.invocation:
        records = [client.json("GET", f"/v1/invocations/{args.invocation}")]
    else:
        records = client.json(
            "GET", f"/v1/functions/{args.name}/invocations", params={"limit": args.limit}
        )
    if args.json:
        _print_json(records)
        return 0
    _table([_log_row(r) for r in records], LOG_HEADER)
    if args.invocation and records[0]["stderr_tail"]:
        print("stderr:\n" + records[0]["stderr_tail"])
    return 0


def _follow(client: Client, args: argparse.Namespace) -> int:
    """New records as they come, oldest first, until Ctrl-C (main's exit code 130)."""
    path = f"/v1/functions/{args.name}/invocations"
    seen: set[str] = set()
    widths = [len(h) for h in LOG_HEADER]
    first = True
    while True:
        records = client.json("GET", path, params={"limit": args.limit})
        fresh = [r for r in reversed(records) if r["id"] not in seen]
        seen.update(r["id"] for r in records)
        for r in fresh:
            if args.json:
                print(json.dumps(r, sort_keys=True), flush=True)
                continue
            row = _log_row(r)
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
            if first:
                print("  ".join(h.ljust(w) for h, w in zip(LOG_HEADER, widths, strict=True)))
                first = False
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        sys.stdout.flush()
        time.sleep(FOLLOW_EVERY_S)


def cmd_delete(args: argparse.Namespace) -> int:
    client_of(args).json("DELETE", f"/v1/functions/{args.name}")
    print(f"deleted {args.name}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    params = {"to": args.to} if args.to is not None else {}
    fv = client_of(args).json("POST", f"/v1/functions/{args.name}/rollback", params=params)
    print(f"{fv['name']} is now at version {fv['version']}")
    return 0


def _plain(value: Any) -> str:
    """A status value as a person reads it: no Python reprs."""
    if isinstance(value, dict):
        return "  ".join(f"{k} {_plain(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def cmd_status(args: argparse.Namespace) -> int:
    status = client_of(args).json("GET", "/v1/status")
    if args.json:
        _print_json(status)
        return 0
    print(f"{status.get('role', 'node')} {status['node']}")
    pool = status.get("pool")
    if pool is not None:
        width = max(map(len, pool))
        for key in sorted(k for k in pool if k != "functions"):
            print(f"  {key:<{width}}  {_plain(pool[key])}")
        functions = pool.get("functions") or []
        if isinstance(functions, dict):  # keyed by version
            functions = [{"version": k, **v} for k, v in functions.items()]
        if functions:
            print("functions:")
            keys = list(functions[0])
            rows = [[_plain(f.get(k)) for k in keys] for f in functions]
            _table(rows, [k.upper() for k in keys])
    confinement = status.get("confinement")
    if confinement is not None:
        print("VM confinement:")
        for key, value in confinement.items():
            if key != "not_applied":
                print(f"  {key}: {_plain(value)}")
        for why in confinement.get("not_applied", []):
            print(f"  NOT APPLIED {why}")
    print_nodes(status["nodes"])
    return 0


def print_nodes(nodes: list[dict[str, Any]]) -> None:
    print(f"nodes: {len(nodes)}")
    if not nodes:
        return
    rows = [
        (
            n["id"],
            n["url"],
            "up" if n.get("alive", True) else "DOWN",
            f"{n['vms']}/{n['max_vms']}",
            str(n.get("room", "")),
            str(n.get("free_slots", "")),
            str(n.get("in_flight", "")),
            " ".join(f"{w['ref']}({w['vms']})" for w in n.get("warm", [])) or "-",
        )
        for n in nodes
    ]
    header = ("ID", "URL", "STATE", "VMS", "ROOM", "FREE", "LOAD", "WARM")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        print("  " + "  ".join([*cells, row[-1]]))
