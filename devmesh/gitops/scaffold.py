"""``devmesh manifests init``: write the layout for the project's services as one commit.

On an empty repository (or a missing branch) it writes everything. On a repository that
already has the layout it adds what the project gained since: base manifests for new
services, and those services in every tier's resources. It never rewrites existing files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.gitops.cache import Checkout
from devmesh.gitops.land import DEFAULT_ATTEMPTS, Change, Landed, Unchanged, land
from devmesh.gitops.layout import TIERS_FILE, Layout, check_tier_name
from devmesh.gitops.render import base_files, tier_kustomization
from devmesh.gitops.yamlio import load_file, write_file

if TYPE_CHECKING:
    from devmesh.config import Project

DEFAULT_TIERS = ("dev", "beta", "prod")


@dataclass(frozen=True)
class ServiceSpec:
    """What the base manifests need to know about a service."""

    name: str
    port: int
    env: dict[str, str]


@dataclass(frozen=True)
class ScaffoldResult:
    tiers: list[str]
    added_services: list[str]
    created: bool  # the layout was written from nothing
    landed: Landed


def specs_from_project(project: Project) -> list[ServiceSpec]:
    """The services of ``project`` with their ports and environments, presets applied."""
    return [
        ServiceSpec(name, project.port_of(name), dict(svc.env)) for name, svc in sorted(project.services.items())
    ]


def parse_tiers(text: str) -> list[str]:
    """``dev,beta,prod`` → ["dev", "beta", "prod"], checked."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UserInputError("--tiers: expected tier names separated by commas, e.g. dev,beta,prod")
    for name in names:
        check_tier_name(name)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserInputError(f"--tiers: {dupes[0]!r} is listed twice")
    return names


def _write_base(layout: Layout, app: str, spec: ServiceSpec) -> None:
    for filename, (header, doc) in base_files(app, spec.name, spec.port, spec.env).items():
        write_file(layout.base_dir(spec.name) / filename, doc, header=header)


def _write_new(layout: Layout, app: str, tiers: list[str], specs: list[ServiceSpec]) -> None:
    header = (
        "# Rollout tiers, in order: a tier takes only the image the tier before it runs.\n"
        "# Each tier may name the kube context its cluster is reached with (context: NAME).\n"
    )
    write_file(layout.tiers_file, {"app": app, "tiers": [{"name": t} for t in tiers]}, header=header)
    for spec in specs:
        _write_base(layout, app, spec)
    for tier in tiers:
        head, doc = tier_kustomization(tier, [s.name for s in specs])
        write_file(layout.tier_file(tier), doc, header=head)


def _add_services(layout: Layout, app: str, tiers: list[str], specs: list[ServiceSpec]) -> None:
    from ruamel.yaml.comments import CommentedSeq

    for spec in specs:
        _write_base(layout, app, spec)
    for tier in tiers:
        path = layout.tier_file(tier)
        if not path.is_file():
            head, doc = tier_kustomization(tier, layout.services())
            write_file(path, doc, header=head)
            continue
        data, yaml = load_file(path, f"{layout.display}: {path.relative_to(layout.root).as_posix()}")
        resources = data.get("resources")
        if resources is None:
            resources = CommentedSeq()
            data["resources"] = resources
        for spec in specs:
            entry = f"../../base/{spec.name}"
            if entry not in resources:
                resources.append(entry)
        write_file(path, data, yaml)


def scaffold(
    checkout: Checkout,
    app: str,
    specs: list[ServiceSpec],
    tiers: list[str] | None = None,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
) -> ScaffoldResult:
    """Write (or complete) the layout and land it as one commit."""
    outcome: list[tuple[list[str], list[str], bool]] = []  # (tiers, added services, created)

    def apply(co: Checkout) -> Change | Unchanged:
        layout = co.layout()
        created = co.tip is None or not layout.exists()
        if created:
            names = list(tiers or DEFAULT_TIERS)
            _write_new(layout, app, names, specs)
            added = [s.name for s in specs]
            message = f"manifests: lay out {app} with tiers {', '.join(names)}"
        else:
            names = [t.name for t in layout.tiers()]
            if tiers is not None and tiers != names:
                raise UserInputError(
                    f"{layout.display} already has tiers {', '.join(names)}; "
                    f"edit {TIERS_FILE} there to change them"
                )
            existing_app = layout.app(app)
            if existing_app != app:
                raise UserInputError(
                    f"{layout.display} holds app {existing_app!r}, not {app!r}: "
                    "use another manifests.path for this app"
                )
            have = set(layout.services())
            new = [s for s in specs if s.name not in have]
            if not new:
                outcome.append((names, [], False))
                return Unchanged(f"{layout.display} already has every service of {app}")
            _add_services(layout, app, names, new)
            added = [s.name for s in new]
            message = f"manifests: add {', '.join(added)} to {app}"
        outcome.append((names, added, created))
        body = "\n".join(f"- {s}" for s in added)
        full = f"{message}\n\nServices:\n{body}\n" if added else message + "\n"
        return Change(full, [co.settings.path], f"devmesh/manifests-{app}-{len(added)}-services")

    landed = land(checkout, apply, attempts=attempts)
    names, added, created = outcome[-1]
    return ScaffoldResult(names, added, created, landed)
