"""The Kubernetes manifests under deploy/, read as data: their resources, the containers of
their workloads, and how a container departs from the image it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from container.spec import LATEST, ImageSpec

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
WORKLOADS = {"DaemonSet", "Deployment", "StatefulSet"}
# What each container runs: a `unifaas` subcommand by the image's entrypoint, or (Redis)
# another program of the image.
ROLES = {"node": ("node",), "gateway": ("gateway",), "redis": ()}
OTHER_PROGRAMS = {"redis": ["redis-server"]}


def resources() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


def containers() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{name}/{c['name']}", c)
        for name, doc in resources()
        if doc["kind"] in WORKLOADS
        for c in doc["spec"]["template"]["spec"]["containers"]
    ]


def image_mismatches(container: dict[str, Any], image: ImageSpec) -> list[str]:
    """How a manifest's container departs from the image (empty: it uses it as built)."""
    role = container["name"]
    wrong = []
    if container.get("image") != LATEST:
        wrong.append(f"image {container.get('image')!r}, not {LATEST!r}")
    args = [str(a) for a in container.get("args", [])]
    if role in OTHER_PROGRAMS:
        if container.get("command") != OTHER_PROGRAMS[role]:
            wrong.append(f"command {container.get('command')}, not {OTHER_PROGRAMS[role]}")
        return wrong
    if "command" in container:
        wrong.append(f"command {container['command']} replaces the entrypoint {image.entrypoint}")
    if tuple(args[:1]) != ROLES[role]:
        wrong.append(f"args {args} do not start with the role {ROLES[role]}")
    if "--host" in args:
        wrong.append("--host: the image sets UNIFAAS_HOST")
    ports = [p["containerPort"] for p in container.get("ports", [])]
    if ports != [image.port]:
        wrong.append(f"ports {ports}, the image exposes {image.port}")
    for probe in ("readinessProbe", "livenessProbe"):
        port = container.get(probe, {}).get("httpGet", {}).get("port")
        if port not in (None, "http", image.port):
            wrong.append(f"{probe} on port {port}")
    ours = image.env_dict()
    wrong += [f"env {e['name']} overrides the image's" for e in container.get("env", [])
              if e["name"] in ours]  # fmt: skip
    return wrong
