"""CLI commands for async calls: ``result`` (status and response) and ``dead-letters``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from gateway.cli.commands import client_of, print_answer
from gateway.errors import ClientError

# `result --wait` asks this often; it gives up after --timeout.
POLL_S = 0.5
ENDED = {"succeeded", "failed", "dead"}


def _describe(call: dict[str, Any]) -> str:
    text = f"{call['id']}: {call['status']} ({call['function']}, attempt {call['attempts']})"
    return text + (f": {call['error']}" if call.get("error") else "")


def cmd_result(args: argparse.Namespace) -> int:
    """Exit codes: the function's own once it answered; 1 dead or failed by the platform;
    3 not finished (without --wait, or when --timeout passed)."""
    client = client_of(args)
    deadline = time.monotonic() + args.timeout
    shown = ""
    while True:
        call = client.json("GET", f"/v1/invocations/{args.id}")
        if "status" not in call or not isinstance(call["status"], str):
            raise ClientError(f"{args.id} is a sync call's record: see `unifaas logs`")
        if call["status"] in ENDED or not args.wait or time.monotonic() > deadline:
            break
        if call["status"] != shown:
            shown = call["status"]
            print(f"{args.id}: {shown}...", file=sys.stderr)
        time.sleep(POLL_S)
    if args.json:
        print(json.dumps(call, indent=2, sort_keys=True))
        return 0
    if call["status"] not in ENDED:
        print(_describe(call), file=sys.stderr)
        return 3
    if call.get("response") is None:
        print(_describe(call), file=sys.stderr)
        return 1
    return print_answer(client.request("GET", f"/v1/invocations/{args.id}/response"))


def cmd_dead_letters(args: argparse.Namespace) -> int:
    client = client_of(args)
    if args.retry:
        call = client.json("POST", f"/v1/dead-letters/{args.retry}/retry")
        print(f"{call['id']}: queued again ({call['function']})")
        return 0
    calls = client.json("GET", "/v1/dead-letters", params={"limit": args.limit})
    if args.json:
        print(json.dumps(calls, indent=2, sort_keys=True))
        return 0
    if not calls:
        print("no dead-letters")
        return 0
    for call in calls:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(call["finished_at"] or 0))
        print(f"{when}  {_describe(call)}")
    print("retry one: unifaas dead-letters --retry ID", file=sys.stderr)
    return 0
