"""The Kubernetes manifests under deploy/ are checked against the API schemas that
kubernetes-validate ships (strict: no unknown fields). No cluster runs them here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
VERSION = kubernetes_validate.latest_version()


def resources() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


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
