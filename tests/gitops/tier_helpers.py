"""A manifest layout on disk without git, for tests of how tier files are read and edited."""

from __future__ import annotations

from pathlib import Path

from devmesh.gitops.layout import Layout

SERVICES = ("api", "web", "worker")


def sha(char: str) -> str:
    """A made-up digest of 64 ``char``s."""
    return "sha256:" + char * 64


def make_layout(root: Path, tier_file: bytes | str, tier: str = "dev") -> Layout:
    """tiers.yaml (app shop, tiers dev and beta), a base per service, and ``tier_file`` as the tier."""
    (root / "tiers").mkdir(parents=True, exist_ok=True)
    (root / "tiers.yaml").write_text("app: shop\ntiers:\n  - name: dev\n  - name: beta\n")
    for service in SERVICES:
        base = root / "base" / service
        base.mkdir(parents=True, exist_ok=True)
        (base / "kustomization.yaml").write_text("resources:\n  - deployment.yaml\n")
    for name in ("dev", "beta"):
        (root / "tiers" / name).mkdir(exist_ok=True)
        (root / "tiers" / name / "kustomization.yaml").write_text("kind: Kustomization\n")
    raw = tier_file.encode() if isinstance(tier_file, str) else tier_file
    (root / "tiers" / tier / "kustomization.yaml").write_bytes(raw)
    return Layout(root)


def tier_bytes(layout: Layout, tier: str = "dev") -> bytes:
    return layout.tier_file(tier).read_bytes()
