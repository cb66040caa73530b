"""The real platform against its own schema: a bounded schemathesis run with every check
(status codes, content types, headers, bodies, schema-valid and -invalid data, 405s with
Allow, auth), then what a user sees of limits: 429 with Retry-After, and no token in the
server's log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.platforms import LivePlatform

pytestmark = pytest.mark.vm

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Small enough to stay a few seconds under TCG; every phase still covers every operation.
MAX_EXAMPLES = 15


def test_schemathesis_with_every_check_finds_nothing(
    platform: LivePlatform, modules: dict[str, Path], tmp_path: Path
) -> None:
    # Invocations in the run reach this real function (see schemathesis.toml).
    deployed = platform.cli("deploy", "st-echo", str(modules["echo"]))
    assert deployed.returncode == 0, deployed.stderr
    argv = [
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{platform.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--header",
        f"Authorization: Bearer {platform.token}",
    ]
    proc = subprocess.run(  # in tmp_path: it keeps a .schemathesis/ cache in its cwd
        argv, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    assert "passed" in report and "failure" not in report.split("SUMMARY")[-1]


def test_a_rate_limited_function_gets_429_with_retry_after(
    platform: LivePlatform, modules: dict[str, Path]
) -> None:
    deployed = platform.cli("deploy", "limited", str(modules["echo"]), "--rate-limit", "0.2")
    assert deployed.returncode == 0, deployed.stderr
    with platform.http() as http:
        assert http.post("/fn/limited", content=b"one").content == b"one"
        r = http.post("/fn/limited", content=b"two")
        assert r.status_code == 429 and r.json()["error"]["kind"] == "throttled"
        assert r.headers["retry-after"] == "5"  # one call per 5 s
        described = http.get("/v1/functions/limited").json()
        assert described["versions"][0]["config"]["rate_limit"] == 0.2
    invoked = platform.cli("invoke", "limited", "--data", "three")
    assert invoked.returncode != 0 and b"429" in invoked.stderr + invoked.stdout


def test_the_token_is_never_in_the_server_log(platform: LivePlatform) -> None:
    with platform.http() as http:
        wrong = {"Authorization": "Bearer nope"}
        assert http.get("/v1/functions", headers=wrong).status_code == 401
        assert http.get("/v1/functions").status_code == 200
    log = platform.served.log.read_text(errors="replace")
    assert "unifaas listening on" in log  # the right file, being written
    assert platform.token not in log
