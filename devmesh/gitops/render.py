"""The manifest repo's files: per service a base (a Deployment and a Service), and per tier
the service's traffic (a DestinationRule and a VirtualService, rendered from the same route
plan as the kind runtime's: ``devmesh.plan.k8s.tier_traffic``).

The base holds the container port, the environment and devmesh's labels; the tiers swap its
image (by digest). A tier's traffic file holds what that tier sends where, with the preset's
timeouts, retries, connection limits, outlier detection and rate limit (an EnvoyFilter) —
nothing about preview routing.
It is a file of its own per tier, wholly rendered by devmesh, so that what one tier routes
(a canary, later) is one file's change. The Deployment's pods are the tier's primary version:
the ``baseline`` subset of the DestinationRule, by the ``devmesh.dev/env`` label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devmesh.gitops.layout import KUSTOMIZATION, image_name
from devmesh.gitops.managed import stamp_base, stamp_whole
from devmesh.naming import BASELINE_ENV
from devmesh.plan.k8s import ENV_LABEL

MANAGED_BY = {"app.kubernetes.io/managed-by": "devmesh"}


def base_labels(app: str, service: str) -> dict[str, str]:
    return {**MANAGED_BY, "devmesh.dev/app": app, "devmesh.dev/service": service}


def deployment(app: str, service: str, port: int, env: dict[str, str]) -> dict[str, Any]:
    selector = {"devmesh.dev/app": app, "devmesh.dev/service": service}
    container: dict[str, Any] = {
        "name": service,
        "image": image_name(app, service),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": service, "labels": base_labels(app, service)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**base_labels(app, service), ENV_LABEL: BASELINE_ENV}},
                "spec": {"containers": [container]},
            },
        },
    }


def service(app: str, name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": base_labels(app, name)},
        "spec": {
            "selector": {"devmesh.dev/app": app, "devmesh.dev/service": name},
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def base_files(app: str, name: str, port: int, env: dict[str, str]) -> dict[str, tuple[str, Any]]:
    """file name → (header comment, document) for ``base/<name>/``."""
    header = (f"# Rendered by 'devmesh manifests init' for service {name!r}; edit freely. The container's\n"
              "# image placeholder, ports and env come from devmesh.yaml: 'devmesh manifests sync' renders them.\n")
    return {
        "deployment.yaml": (header, stamp_base(deployment(app, name, port, env), name)),
        "service.yaml": (header, stamp_base(service(app, name, port), name)),
        KUSTOMIZATION: (
            header,
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["deployment.yaml", "service.yaml"],
            },
        ),
    }


def traffic_path(service: str) -> str:
    """A service's traffic file, relative to its tier's folder (and as the tier lists it)."""
    return f"traffic/{service}.yaml"


def traffic_file(app: str, tier: str, name: str, traffic: Sequence[dict[str, Any]]) -> tuple[str, list[Any]]:
    """(header comment, documents) of ``tiers/<tier>/traffic/<name>.yaml``: the service's
    DestinationRule and VirtualService, with the labels of the base objects."""
    header = (f"# Service {name!r} in tier {tier!r}: where its requests go, with its preset's timeout,\n"
              "# retries, connection limits, outlier detection and rate limit. Rendered by devmesh from\n"
              "# devmesh.yaml.\n")
    docs = [stamp_whole({**doc, "metadata": {**doc["metadata"], "labels": base_labels(app, name)}})
            for doc in traffic]
    return header, docs


def tier_kustomization(tier: str, services: list[str], traffic: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    """The overlay for one tier: every service's base and the traffic files of ``traffic``;
    ``images:`` is added by promotions."""
    header = (
        f"# Tier {tier!r}: 'devmesh promote' pins each service's image by digest under images:.\n"
        "# Comments and order in this file are kept by devmesh.\n"
    )
    return header, {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"../../base/{s}" for s in services] + [traffic_path(s) for s in traffic],
    }
