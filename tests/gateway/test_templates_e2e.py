"""Every template from ``unifaas new`` to its first answer, as a new user goes: new, build,
deploy from the manifest, invoke, all through the CLI against ``unifaas up`` (real microVMs).
The toolchains must be installed (``unifaas toolchain install --all``; make test does it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devkit import scaffold, toolchains
from tests.platforms import LivePlatform

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]
# A component's build and its compile at deploy take longest on a busy host.
SLOW_S = 600


@pytest.mark.parametrize("template", [t.name for t in scaffold.TEMPLATE_LIST])
def test_a_new_function_builds_deploys_and_answers(
    platform: LivePlatform, tmp_path: Path, template: str
) -> None:
    toolchain = toolchains.get(scaffold.get(template).toolchain)
    assert toolchain.installed(), f"unifaas toolchain install {toolchain.name} (make test does)"
    name = f"new-{template}"
    made = platform.cli("new", name, "--template", template, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    here = tmp_path / name
    built = platform.cli("build", "--quiet", cwd=here, timeout=SLOW_S)
    assert built.returncode == 0, built.stderr
    deployed = platform.cli("deploy", cwd=here, timeout=SLOW_S)
    assert deployed.returncode == 0, deployed.stderr
    answered = platform.cli("invoke", name, "--data", "hello", "--path", "a/b", cwd=here)
    assert answered.returncode == 0, answered.stderr
    document = json.loads(answered.stdout)
    assert document["function"] == name
    assert document["language"] == template
    assert document["received_bytes"] == 5
    if template != "wat":  # the raw ABI sees no method or path
        assert (document["method"], document["path"]) == ("POST", "/a/b")
    if template in scaffold.SHARED:  # a hostcall SDK: it counts its calls in its store
        assert document["calls"] == 1
        again = platform.cli("invoke", name, cwd=here)
        assert json.loads(again.stdout)["calls"] == 2
