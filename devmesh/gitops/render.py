"""Base manifests for the manifest repo: a Deployment and a Service per service.

Deliberately small: the tiers only swap the image (by digest), so the base needs the
container port, the environment and devmesh's labels, nothing about preview routing.
"""

from __future__ import annotations

from typing import Any

from devmesh.gitops.layout import KUSTOMIZATION, image_name

MANAGED_BY = {"app.kubernetes.io/managed-by": "devmesh"}


def _labels(app: str, service: str) -> dict[str, str]:
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
        "metadata": {"name": service, "labels": _labels(app, service)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": _labels(app, service)},
                "spec": {"containers": [container]},
            },
        },
    }


def service(app: str, name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": _labels(app, name)},
        "spec": {
            "selector": {"devmesh.dev/app": app, "devmesh.dev/service": name},
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def base_files(app: str, name: str, port: int, env: dict[str, str]) -> dict[str, tuple[str, Any]]:
    """file name → (header comment, document) for ``base/<name>/``."""
    header = f"# Rendered by 'devmesh manifests init' for service {name!r}; edit freely.\n"
    return {
        "deployment.yaml": (header, deployment(app, name, port, env)),
        "service.yaml": (header, service(app, name, port)),
        KUSTOMIZATION: (
            header,
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["deployment.yaml", "service.yaml"],
            },
        ),
    }


def tier_kustomization(tier: str, services: list[str]) -> tuple[str, dict[str, Any]]:
    """The overlay for one tier: every service's base; ``images:`` is added by promotions."""
    header = (
        f"# Tier {tier!r}: 'devmesh promote' pins each service's image by digest under images:.\n"
        "# Comments and order in this file are kept by devmesh.\n"
    )
    return header, {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"../../base/{s}" for s in services],
    }
