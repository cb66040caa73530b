"""The Kubernetes manifests under deploy/ are checked against the API schemas that
kubernetes-validate ships (strict: no unknown fields). No cluster runs them here."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pydantic_settings
import pytest

import gateway.settings
import scheduler.settings
import unikernel.settings
from container.spec import SPEC, UNPRIVILEGED_UID
from tests.manifests import containers, image_mismatches, resources

VERSION = kubernetes_validate.latest_version()


def test_every_role_has_its_manifest() -> None:
    kinds = {name.split(":")[1] for name, _ in resources()}
    assert {
        "DaemonSet/unifaas-node",
        "Deployment/unifaas-gateway",
        "Service/unifaas-gateway",
        "StatefulSet/unifaas-redis",
        "Service/unifaas-redis",
        "Secret/unifaas-token",
    } <= kinds


@pytest.mark.parametrize(("name", "doc"), resources(), ids=[n for n, _ in resources()])
def test_manifest_matches_the_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_check_can_fail() -> None:
    _, doc = next(r for r in resources() if r[0].endswith("DaemonSet/unifaas-node"))
    broken = {**doc, "spec": {**doc["spec"], "replicas": 3}}  # a DaemonSet has none
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


@pytest.mark.parametrize(("name", "container"), containers(), ids=[n for n, _ in containers()])
def test_each_container_uses_the_image_as_built(name: str, container: dict[str, Any]) -> None:
    """Name, entrypoint, environment and port as the image declares them (container/spec.py;
    tests/container compares the spec with a built image's own metadata)."""
    assert image_mismatches(container, SPEC) == []


def test_a_container_that_departs_from_the_image_is_caught() -> None:
    _, node = next(c for c in containers() if c[0].endswith("/node"))
    broken = {**node, "command": ["unifaas"], "ports": [{"containerPort": 9000}]}
    assert len(image_mismatches(broken, SPEC)) == 2


def _settings_env_names() -> set[str]:
    names = set()
    for module in (gateway.settings, scheduler.settings, unikernel.settings):
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, pydantic_settings.BaseSettings):
                prefix = cls.model_config.get("env_prefix", "")
                names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return names


def test_every_unifaas_variable_of_the_manifests_is_a_setting() -> None:
    known = _settings_env_names()
    used = {
        e["name"] for _, c in containers() for e in c.get("env", [])
        if e["name"].startswith("UNIFAAS_")
    }  # fmt: skip
    assert used and used <= known, sorted(used - known)


def test_the_gateway_runs_as_the_images_unprivileged_user() -> None:
    _, gw = next(c for c in containers() if c[0].endswith("/gateway"))
    assert gw["securityContext"]["runAsUser"] == UNPRIVILEGED_UID
    assert gw["securityContext"]["readOnlyRootFilesystem"] is True
