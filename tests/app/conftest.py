"""Fixtures for the use-case tests: the GitOps tests' real bare manifest repos, and the kind
runtime's fake cluster for the strategies."""

from __future__ import annotations

from tests.gitops.conftest import _isolated, checkout, devmesh, laid_out, project_file, remote, settings

__all__ = ["_isolated", "checkout", "devmesh", "laid_out", "project_file", "remote", "settings"]
