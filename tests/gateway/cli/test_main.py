"""The ``unifaas`` CLI driven like a user: a real subprocess, real microVMs for ``run``."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wasm

CLI = [sys.executable, "-m", "gateway.cli"]


def unifaas(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, timeout=120, check=False)


def test_help_lists_commands() -> None:
    proc = unifaas("--help")
    assert proc.returncode == 0
    for command in (b"image", b"bench", b"run"):
        assert command in proc.stdout
    run_help = unifaas("run", "--help").stdout
    assert b"--timeout" in run_help and b"exit code" in run_help


def test_invalid_module_is_one_readable_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_text("(module)")
    proc = unifaas("run", str(bad))
    assert proc.returncode == 1
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("unifaas: error:") and "WAT" in lines[0]


@pytest.mark.vm
def test_run_echo_and_exit_code(tmp_path: Path) -> None:
    echo = tmp_path / "echo.wasm"
    echo.write_bytes(wasm("echo"))
    proc = unifaas("run", str(echo), "--data", "-", stdin=b"from stdin\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"from stdin\n"

    misbehave = tmp_path / "misbehave.wasm"
    misbehave.write_bytes(wasm("misbehave"))
    proc = unifaas("run", str(misbehave), "--arg", "exit", "--arg", "7")
    assert proc.returncode == 7
    proc = unifaas("run", str(misbehave), "--arg", "loop", "--timeout", "0.5")
    assert proc.returncode == 124
    assert b"timeout" in proc.stderr


@pytest.mark.vm
def test_run_with_files_bundle(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "data.txt").write_text("bundled data\n")
    module = tmp_path / "files.wasm"
    module.write_bytes(wasm("files"))
    proc = unifaas("run", str(module), "--files", str(files))
    assert proc.returncode == 0, proc.stderr
    assert b"bundled data" in proc.stdout


def test_deploy_sends_only_the_flags_given() -> None:
    from gateway.cli.commands import deploy_config
    from gateway.cli.main import build_parser

    def config(*flags: str) -> dict[str, object]:
        return deploy_config(build_parser().parse_args(["deploy", "f", "f.wasm", *flags]))

    assert config() == {}  # the platform's defaults apply
    assert config("--memory", "32", "--private", "--env", "A=1", "--arg", "x") == {
        "memory_mib": 32,
        "public": False,
        "env": {"A": "1"},
        "args": ["x"],
    }
    assert config("--timeout", "2.5", "--abi", "wagi", "--keep-alive", "0") == {
        "timeout_s": 2.5,
        "abi": "wagi",
        "keep_alive_s": 0.0,
    }
    assert config("--max-in-flight", "8", "--rate-limit", "2.5") == {
        "max_in_flight": 8,
        "rate_limit": 2.5,
    }


def test_deploy_help_shows_the_platform_defaults() -> None:
    from scheduler.model import FunctionConfig

    text = " ".join(unifaas("deploy", "--help").stdout.decode().split())
    defaults = FunctionConfig()
    assert f"(default {defaults.memory_mib})" in text
    assert f"(default {defaults.timeout_s:g})" in text


def test_commands_of_other_packages_are_registered_by_entry_point() -> None:
    from gateway.cli.main import build_parser

    parser = build_parser()
    for argv in (
        ["image", "build"],
        ["run", "x.wasm"],
        ["bench", "sandbox"],
        ["bench", "platform"],
    ):
        args = parser.parse_args(argv)
        assert args.func.__module__ in ("unikernel.cli", "loadtests.cli")


def test_a_bad_setting_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli.main import main

    monkeypatch.setenv("UNIFAAS_TOKEN", "short")  # a shared token must be 16 characters or more
    assert main(["up", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "unifaas: error: GatewaySettings token: String should have at least 16 characters"
    )
    assert "short" not in err  # the value is never echoed


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    proc = subprocess.Popen([*CLI, "new", "--list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `| head` does, before the command writes
    with proc.stderr:
        assert proc.wait(timeout=120) == 141
        assert proc.stderr.read() == b""


def test_bash_completion_knows_commands_group_actions_and_options(tmp_path: Path) -> None:
    script = tmp_path / "unifaas.bash"
    script.write_bytes(unifaas("completion", "bash").stdout)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in ("unifaas", *words))
        done = subprocess.run(
            ["bash", "-c", f'source {script}; COMP_WORDS=({line}); '
             f'COMP_CWORD={len(words)}; _unifaas; echo "${{COMPREPLY[@]}}"'],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout.split()

    assert complete("de") == ["deploy", "dead-letters", "describe", "delete"]
    assert complete("deploy", "--mem") == ["--memory"]
    assert complete("toolchain", "") == ["install", "list"]
    assert "--follow" in complete("logs", "--")


HOLDS = """
import argparse, sys, time
from gateway.cli import main as cli

def hold(args):
    try:
        print("ready", flush=True)
        time.sleep(60)
    finally:
        print("cleaned up", flush=True)  # a bench stops its platform here
    return 0

def parser():
    p = argparse.ArgumentParser()
    p.set_defaults(func=hold)
    return p

cli.build_parser = parser
sys.exit(cli.main([]))
"""


def test_sigterm_unwinds_a_command_like_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDS], stdout=subprocess.PIPE, cwd=Path(__file__).parents[3]
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == b"cleaned up\n" and proc.returncode == 128 + signal.SIGTERM
