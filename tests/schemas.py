"""Validate rendered objects against real schemas: Kubernetes (strict) and Istio models."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from devmesh.plan.k8s import to_yaml

K8S_VERSION = "1.34"


def _dropped(sent: Any, kept: Any, path: str = "") -> list[str]:
    """Keys present in ``sent`` that the model silently dropped."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        out = []
        for key, value in sent.items():
            if key not in kept:
                out.append(f"{path}.{key}")
            else:
                out += _dropped(value, kept[key], f"{path}.{key}")
        return out
    if isinstance(sent, list) and isinstance(kept, list):
        return [d for i, (a, b) in enumerate(zip(sent, kept)) for d in _dropped(a, b, f"{path}[{i}]")]
    return []


def _istio_ranges(obj: dict[str, Any]) -> list[str]:
    problems = []
    if obj["kind"] == "VirtualService":
        for route in obj["spec"].get("http", []):
            dests = route.get("route", [])
            weights = [d.get("weight") for d in dests]
            if len(dests) > 1 and sum(w or 0 for w in weights) != 100:
                problems.append(f"route {route.get('name')}: weights sum to {sum(w or 0 for w in weights)}")
            for d in dests:
                w = d.get("weight")
                if w is not None and not 0 <= w <= 100:
                    problems.append(f"route {route.get('name')}: weight {w} out of 0–100")
                port = d["destination"].get("port", {}).get("number")
                if port is not None and not 1 <= port <= 65535:
                    problems.append(f"route {route.get('name')}: port {port}")
            mirror = route.get("mirrorPercentage", {}).get("value")
            if mirror is not None and not 0 <= mirror <= 100:
                problems.append(f"route {route.get('name')}: mirror percentage {mirror}")
    return problems


def validate(obj: dict[str, Any]) -> None:
    """Raise AssertionError naming the object and what is wrong with it."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if obj["apiVersion"].startswith("networking.istio.io/"):
        import importlib

        version = obj["apiVersion"].split("/", 1)[1]
        model = getattr(importlib.import_module(f"cloudcoil.models.istio.networking.{version}"), obj["kind"])
        parsed = model.model_validate(obj)
        kept = parsed.model_dump(by_alias=True, exclude_none=True)
        dropped = _dropped(obj, kept)
        assert not dropped, f"{name}: fields unknown to the Istio model: {dropped}"
        problems = _istio_ranges(obj)
        assert not problems, f"{name}: {problems}"
        return
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(f"{name}: {exc.message} at {list(exc.path)}") from None


def analyze(istioctl: str, objects: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """istioctl's verdict on ``objects``: every namespace (by default it reports on `default`
    only, and devmesh's objects live in `devmesh-<app>`), warnings counted as failures."""
    path = tmp_path / "objects.yaml"
    path.write_text(to_yaml(objects))
    return subprocess.run([istioctl, "analyze", "--use-kube=false", "--all-namespaces",
                           "--failure-threshold", "Warning", str(path)], capture_output=True, text=True, timeout=120)
