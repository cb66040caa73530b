"""The ``unifaas`` command line: argument parsing and readable errors, work done elsewhere.

The commands that talk to a platform over HTTP live in :mod:`gateway.cli.commands`
and ``up`` in :mod:`gateway.up`. Commands that drive a sandbox on this host
(``image build``, ``run``) and the benchmarks (``bench sandbox|platform``) are
registered by their own packages through the ``unifaas.commands`` entry point
group, each a ``register(cli: Registrar)`` function.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

import pydantic

from gateway.cli import asynccommands, commands, manifest
from scheduler.model import FunctionConfig
from wasm_runtime.cliargs import env_pair
from wasm_runtime.errors import UnifaasError

ENTRY_POINT_GROUP = "unifaas.commands"
# Groups of subcommands, whichever package fills them: name -> (help, metavar).
GROUPS = {
    "image": ("build or inspect the guest image", "ACTION"),
    "bench": ("run a benchmark", "SUITE"),
    "toolchain": ("install or list the toolchains templates build with", "ACTION"),
}


class Registrar:
    """What a package's ``register`` gets: a way to add commands, at the top or in a group."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._sub = sub
        self._groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}

    def command(
        self, name: str, help: str, description: str | None = None, group: str | None = None
    ) -> argparse.ArgumentParser:
        sub = self._sub if group is None else self._group(group)
        return sub.add_parser(name, help=help, description=description or help)

    def _group(self, name: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        if name not in self._groups:
            help_text, metavar = GROUPS[name]
            parser = self._sub.add_parser(name, help=help_text, description=help_text)
            self._groups[name] = parser.add_subparsers(
                dest=f"{name}_command", required=True, metavar=metavar
            )
        return self._groups[name]


def _remote(
    cli: Registrar, name: str, help_text: str, description: str | None = None
) -> argparse.ArgumentParser:
    p = cli.command(name, help_text, description)
    p.add_argument("--url", help="platform URL (default $UNIFAAS_URL or http://127.0.0.1:8080)")
    p.add_argument("--state-dir", help="where to find the token (default: as for `up`)")
    return p


def _cmd_up(args: argparse.Namespace) -> int:
    from gateway.up import cmd_up  # uvicorn and the node: only for the command that needs them

    return cmd_up(args)


def _cmd_node(args: argparse.Namespace) -> int:
    from gateway.up import cmd_node

    return cmd_node(args)


def _cmd_gateway(args: argparse.Namespace) -> int:
    from gateway.up import cmd_gateway

    return cmd_gateway(args)


def _listen(p: argparse.ArgumentParser, *, cluster: bool) -> None:
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8080)")
    p.add_argument(
        "--state-dir",
        help="token, Redis data and logs (default $UNIFAAS_STATE_DIR or ~/.local/state/unifaas)",
    )
    if cluster:
        p.add_argument(
            "--redis",
            metavar="URL",
            help="the cluster's Redis: redis://HOST:PORT/DB (default $UNIFAAS_REDIS_URL)",
        )
        p.add_argument(
            "--advertise-url",
            metavar="URL",
            help="where the others reach this server (default http://HOST:PORT)",
        )
    else:
        p.add_argument("--redis", metavar="URL", help="use this Redis instead of a private one")


def _add_up(cli: Registrar) -> None:
    up = cli.command(
        "up",
        "run the platform (gateway + scheduler + microVM pool) in the foreground",
        "Start one node: the HTTP gateway, the scheduler and its warm pool of "
        "microVMs. Without --redis it starts a private redis-server that keeps its data in "
        "the state dir. Stop with Ctrl-C or SIGTERM: every VM it started is stopped.",
    )
    _listen(up, cluster=False)
    up.add_argument("--max-vms", type=int, help="microVMs this node may run (default 8)")
    up.set_defaults(func=_cmd_up)
    node = cli.command(
        "node",
        "run a cluster node: scheduler + microVM pool, registered in the cluster's Redis",
        "Start a node of a cluster: the scheduler and its warm pool of microVMs. It "
        "registers itself in the cluster's Redis every second (its URL, VMs, free slots, "
        "warm functions), serves the calls gateways send it, and serves the public API "
        "too. Every server of a cluster needs the same UNIFAAS_TOKEN. Stop with Ctrl-C or "
        "SIGTERM: it leaves the cluster, finishes its calls and stops its VMs.",
    )
    _listen(node, cluster=True)
    node.add_argument("--max-vms", type=int, help="microVMs this node may run (default 8)")
    node.set_defaults(func=_cmd_node)
    gateway = cli.command(
        "gateway",
        "run a stateless gateway: the public API over the cluster's nodes",
        "Serve the public API (/fn, /v1, /metrics, /dashboard) with no VMs of its own: "
        "functions are managed in the cluster's Redis and each call goes to a node (one "
        "with a warm VM of the function first; a call whose node dies is run again once "
        "on another). Run as many as you like. Every server of a cluster needs the same "
        "UNIFAAS_TOKEN.",
    )
    _listen(gateway, cluster=True)
    gateway.set_defaults(func=_cmd_gateway)


def _add_deploy(cli: Registrar) -> None:
    d = FunctionConfig()
    deploy = _remote(
        cli,
        "deploy",
        "deploy a .wasm as a new version of a function",
        "Upload FILE.wasm as the next version of NAME and make it current. In a directory "
        f"with a {manifest.MANIFEST} (unifaas new makes one), NAME and FILE.wasm come from "
        "it, as do its settings and secrets; options given override it. Options left out "
        "everywhere take the platform's defaults (shown below).",
    )
    deploy.add_argument("name", nargs="?", help="function name: lowercase letters, digits, dashes")
    deploy.add_argument(
        "module",
        nargs="?",
        metavar="FILE.wasm",
        help="a WASI preview1 command module or a wasi:http component",
    )
    deploy.add_argument(
        "--manifest",
        metavar="PATH",
        help=f"the manifest to deploy from (default ./{manifest.MANIFEST} when NAME or "
        "FILE.wasm is left out)",
    )
    deploy.add_argument(
        "--env",
        action="append",
        type=env_pair,
        metavar="K=V",
        help="environment variable (repeatable)",
    )
    deploy.add_argument("--arg", action="append", help="argument (repeatable)")
    deploy.add_argument("--files", metavar="DIR", help="directory preopened at / in every call")
    deploy.add_argument(
        "--abi",
        choices=["raw", "wagi"],
        help=f"raw: body->stdin, stdout->body; wagi: CGI mapping (default {d.abi})",
    )
    deploy.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help=f"wall-clock limit per call (default {d.timeout_s:g})",
    )
    deploy.add_argument(
        "--memory",
        type=int,
        metavar="MiB",
        help=f"linear-memory cap per call (default {d.memory_mib})",
    )
    deploy.add_argument(
        "--min-warm",
        type=int,
        metavar="N",
        help=f"VMs kept loaded even when idle (default {d.min_warm}: scale to zero)",
    )
    deploy.add_argument(
        "--max-vms",
        type=int,
        metavar="N",
        help=f"most VMs this function may use at once (default {d.max_vms})",
    )
    deploy.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help=f"calls in flight per VM (default {d.concurrency})",
    )
    deploy.add_argument(
        "--keep-alive",
        type=float,
        metavar="S",
        help=f"idle seconds before an extra VM is reclaimed (default {d.keep_alive_s:g})",
    )
    deploy.add_argument(
        "--max-in-flight",
        type=int,
        metavar="N",
        help="calls running or waiting per node before more get 429 "
        "(default: twice max-vms x concurrency)",
    )
    deploy.add_argument(
        "--rate-limit",
        type=float,
        metavar="PER_S",
        help="calls per second per node before more get 429 with Retry-After (default: none)",
    )
    deploy.add_argument(
        "--allow-host",
        action="append",
        metavar="HOST[:PORT]",
        help="a host its outbound requests may reach (repeatable; default: none). "
        "Loopback and private addresses only when named as such (127.0.0.1:8080, localhost)",
    )
    deploy.add_argument(
        "--secret",
        action="append",
        type=env_pair,
        metavar="K=V",
        help="a secret env variable (repeatable): never shown by describe, list or logs. "
        "Given, they replace the current version's; left out, those are kept",
    )
    deploy.add_argument(
        "--no-secrets", action="store_true", help="drop the current version's secrets"
    )
    deploy.add_argument(
        "--kv-max-keys",
        type=int,
        metavar="N",
        help="keys its key-value store may hold (default: the node's, 10000)",
    )
    deploy.add_argument(
        "--kv-max-bytes",
        type=int,
        metavar="BYTES",
        help="bytes (keys + values) its key-value store may hold (default: the node's, 64 MiB)",
    )
    deploy.add_argument("--private", action="store_true", help="invoking needs the bearer token")
    deploy.add_argument("--json", action="store_true", help="print the new version as JSON")
    deploy.set_defaults(func=commands.cmd_deploy)


def _add_remote_commands(cli: Registrar) -> None:
    inv = _remote(
        cli,
        "invoke",
        "call a function; its stdout to stdout, stderr to stderr",
        "Call a function over HTTP. Prints the response body, writes the function's "
        "stderr to stderr, and exits with the function's exit code.",
    )
    inv.add_argument("name")
    inv.add_argument("--data", metavar="TEXT|@FILE|-", help="request body")
    inv.add_argument("--path", help="path after /fn/NAME (for wagi routing)")
    inv.add_argument("--method", help="HTTP method (default POST with --data, else GET)")
    inv.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="K:V",
        help="request header (repeatable)",
    )
    inv.add_argument(
        "--async",
        dest="async_",
        action="store_true",
        help="queue the call (Prefer: respond-async) and print its id; see `unifaas result`",
    )
    inv.add_argument(
        "--callback",
        metavar="URL",
        help="with --async: POST the response here when it ends (hosts the platform allows)",
    )
    inv.set_defaults(func=commands.cmd_invoke)

    res = _remote(
        cli,
        "result",
        "an async call's status, or its response once it ended",
        "Show what became of a call made with `invoke --async`: its response as `invoke` "
        "would have shown it (exit code the function's), or its status. Exit 3 when it has "
        "not ended, 1 when it went dead.",
    )
    res.add_argument("id", help="the id `invoke --async` printed")
    res.add_argument("--wait", action="store_true", help="wait until the call ends")
    res.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="most to wait (default 600)"
    )
    res.add_argument("--json", action="store_true", help="print the status as JSON")
    res.set_defaults(func=asynccommands.cmd_result)

    dead = _remote(
        cli,
        "dead-letters",
        "async calls the platform gave up on",
        "List the async calls that went dead (their attempts used up by platform failures, "
        "or older than the maximum event age), newest first; --retry ID queues one again.",
    )
    dead.add_argument("--retry", metavar="ID", help="queue this dead call again")
    dead.add_argument("--limit", type=int, default=100, help="how many (default 100)")
    dead.add_argument("--json", action="store_true")
    dead.set_defaults(func=asynccommands.cmd_dead_letters)

    lst = _remote(cli, "list", "list functions")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=commands.cmd_list)

    desc = _remote(cli, "describe", "versions, config and warm VMs of a function")
    desc.add_argument("name")
    desc.add_argument("--json", action="store_true")
    desc.set_defaults(func=commands.cmd_describe)

    logs = _remote(cli, "logs", "recent invocations of a function")
    logs.add_argument("name")
    logs.add_argument("--invocation", metavar="ID", help="show one invocation in full")
    logs.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    logs.add_argument("--json", action="store_true", help="JSON (with -f: one line per record)")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="print new records as they come; Ctrl-C stops"
    )
    logs.set_defaults(func=commands.cmd_logs)

    delete = _remote(cli, "delete", "delete a function and all its versions")
    delete.add_argument("name")
    delete.set_defaults(func=commands.cmd_delete)

    rb = _remote(cli, "rollback", "make an earlier version current")
    rb.add_argument("name")
    rb.add_argument("--to", type=int, metavar="VERSION", help="default: the previous version")
    rb.set_defaults(func=commands.cmd_rollback)

    st = _remote(cli, "status", "nodes, pool by state, warm VMs per function")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=commands.cmd_status)


def _add_completion(cli: Registrar) -> None:
    done = cli.command(
        "completion",
        "print a shell completion script (bash or zsh)",
        "Print a completion script for every command and option: in bash, "
        "source <(unifaas completion bash); in zsh, source <(unifaas completion zsh). "
        "Add that line to ~/.bashrc or ~/.zshrc to keep it.",
    )
    done.add_argument("shell", choices=["bash", "zsh"])
    done.set_defaults(func=_print_completion)


def _print_completion(args: argparse.Namespace) -> int:
    from gateway.cli.completion import script

    print(script(build_parser(), args.shell), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unifaas",
        description="WebAssembly functions, each in its own unikernel-style QEMU microVM.",
    )
    cli = Registrar(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        entry.load()(cli)
    _add_up(cli)
    _add_deploy(cli)
    _add_remote_commands(cli)
    _add_completion(cli)
    return parser


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: a bench or a follower stops what it started on the
    # way out (a bench killed by default disposition left its `unifaas up` running).
    # `up`, `node` and `gateway` drain on it through their event loop's own handler.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # here, so that a closed pipe is an error caught below
        return code
    except UnifaasError as err:
        print(f"unifaas: error: {err}", file=sys.stderr)
        return 1
    except pydantic.ValidationError as err:  # a setting from the environment or an option
        for problem in err.errors():
            field = "_".join(str(part) for part in problem["loc"])
            print(f"unifaas: error: {err.title} {field}: {problem['msg']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`unifaas list | head`): end quietly, as a pipe's writer
        # does, and keep the interpreter from complaining while it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
