"""The use-case floor: what a person asks devmesh to do, between the front ends and the runtimes.

The CLI and the TUI call these use cases and only turn their answers into text or widgets; the
rules (the tier rule, which tier moves next, what a strategy's next step is) live here or in
the layers below (``devmesh.gitops``, ``devmesh.plan``), never in a front end. Nothing here
imports ``devmesh.cli`` or ``tui`` (an import-linter contract in pyproject.toml says so).
"""
