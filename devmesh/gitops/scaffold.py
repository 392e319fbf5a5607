"""``devmesh manifests init``: write the layout for the project's services as one commit.

On an empty repository (or a missing branch) it writes everything. On a repository that
already has the layout it adds what the project gained since: base manifests for new
services, and those services in every tier's resources (a text splice: no other byte of a
tier file changes). On an incomplete layout (tiers.yaml or a tier's kustomization.yaml
deleted) it writes the missing files and says which. It never overwrites an existing file:
pins and hand edits stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devmesh.errors import UserInputError
from devmesh.gitops.cache import Checkout, require_app
from devmesh.gitops.land import DEFAULT_ATTEMPTS, Change, Landed, Unchanged, land
from devmesh.gitops.layout import TIERS_FILE, Layout, check_tier_name
from devmesh.gitops.render import base_files, tier_kustomization, traffic_file, traffic_path
from devmesh.gitops.yamlio import write_documents, write_file
from devmesh.plan.k8s import tier_traffic
from devmesh.plan.routing import plan_for_project

if TYPE_CHECKING:
    from devmesh.config import Project

DEFAULT_TIERS = ("dev", "beta", "prod")


@dataclass(frozen=True)
class ServiceSpec:
    """What the base manifests need to know about a service."""

    name: str
    port: int
    env: dict[str, str]
    traffic: tuple[dict[str, Any], ...] = ()  # its DestinationRule and VirtualService


@dataclass(frozen=True)
class ScaffoldResult:
    tiers: list[str]
    added_services: list[str]
    created: bool  # the layout was written from nothing
    landed: Landed
    restored: list[str] = field(default_factory=list)  # files an existing layout lacked, now written
    traffic: list[str] = field(default_factory=list)  # services there before whose traffic a tier lacked


def specs_from_project(project: Project) -> list[ServiceSpec]:
    """The services of ``project`` with their ports, environments and traffic (the route plan
    of the baseline alone: the tier's primary version), presets applied."""
    plan = plan_for_project(project, ())
    return [
        ServiceSpec(name, project.port_of(name), dict(svc.env), tuple(tier_traffic(plan, name)))
        for name, svc in sorted(project.services.items())
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


_TIERS_HEADER = (
    "# Rollout tiers, in order: a tier takes only the image the tier before it runs.\n"
    "# Each tier may name the kube context its cluster is reached with (context: NAME).\n"
)


def _write_missing(path: Path, doc: object, header: str, written: list[Path]) -> None:
    """Write ``path`` only if it does not exist: init never overwrites a file."""
    if path.exists() or path.is_symlink():
        return
    write_file(path, doc, header=header)
    written.append(path)


def _tier_folders(layout: Layout) -> list[str]:
    folder = layout.root / "tiers"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _tier_names(layout: Layout, tiers: list[str] | None) -> list[str]:
    """The tiers of the layout; when tiers.yaml is missing, the given ones (or the default),
    refused if tier folders already there would be left out of it."""
    if layout.exists():
        names = [t.name for t in layout.tiers()]
        if tiers is not None and tiers != names:
            raise UserInputError(
                f"{layout.display} already has tiers {', '.join(names)}; edit {TIERS_FILE} there to change them"
            )
        return names
    names = list(tiers or DEFAULT_TIERS)
    orphans = [name for name in _tier_folders(layout) if name not in names]
    if orphans:
        found = ", ".join(_tier_folders(layout))
        raise UserInputError(
            f"{layout.display} has no {TIERS_FILE} but has the tier folders {found} "
            f"(not in the tiers {', '.join(names)}): nothing written",
            hint=f"give their rollout order with --tiers, e.g. --tiers {found.replace(', ', ',')}",
        )
    return names


def _complete(layout: Layout, app: str, names: list[str],
              specs: list[ServiceSpec]) -> tuple[list[str], list[Path], list[str]]:
    """Write what the layout lacks; (services added, files written other than traffic files,
    services already there whose traffic some tier lacked and now has)."""
    written: list[Path] = []
    given_traffic: set[str] = set()
    _write_missing(layout.tiers_file, {"app": app, "tiers": [{"name": t} for t in names]}, _TIERS_HEADER, written)
    have = set(layout.services())
    new = [spec for spec in specs if spec.name not in have]
    for spec in new:
        for filename, (header, doc) in base_files(app, spec.name, spec.port, spec.env).items():
            _write_missing(layout.base_dir(spec.name) / filename, doc, header, written)
    for tier in names:
        path = layout.tier_file(tier)
        # Each service's traffic in the tier: written where missing (a layout from before
        # devmesh wrote them gets them too), never over a file that is there.
        fresh = []
        for spec in specs:
            if not spec.traffic:  # a spec made without its traffic has no file to write
                continue
            target = path.parent / traffic_path(spec.name)
            if not (target.exists() or target.is_symlink()):
                head, docs = traffic_file(app, tier, spec.name, spec.traffic)
                write_documents(target, docs, head)
                fresh.append(spec.name)
        given_traffic.update(fresh)
        if not (path.exists() or path.is_symlink()):
            head, doc = tier_kustomization(tier, layout.services(), [spec.name for spec in specs if spec.traffic])
            _write_missing(path, doc, head, written)
            continue
        if new or fresh:
            # A splice: the tier's other bytes, pins and hand edits stay as they are; a path
            # the tier lists already is not added again.
            layout.add_resources(tier, [f"../../base/{spec.name}" for spec in new]
                                 + [traffic_path(name) for name in fresh])
    added = [spec.name for spec in new]
    return added, written, sorted(given_traffic - set(added))


def scaffold(
    checkout: Checkout,
    app: str,
    specs: list[ServiceSpec],
    tiers: list[str] | None = None,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
) -> ScaffoldResult:
    """Write (or complete) the layout and land it as one commit."""
    # (tiers, added, created, restored, services given their traffic)
    outcome: list[tuple[list[str], list[str], bool, list[str], list[str]]] = []

    def apply(co: Checkout) -> Change | Unchanged:
        layout = co.layout()
        if layout.exists():
            require_app(layout, app)
        created = co.tip is None or not any(
            p.exists() for p in (layout.tiers_file, layout.root / "base", layout.root / "tiers")
        )
        names = _tier_names(layout, tiers)
        added, written, traffic = _complete(layout, app, names, specs)
        new_dirs = {layout.base_dir(name) for name in added}
        restored = [] if created else [
            path.relative_to(layout.root).as_posix() for path in written if path.parent not in new_dirs
        ]
        outcome.append((names, added, created, restored, traffic))
        if created:
            message = f"manifests: lay out {app} with tiers {', '.join(names)}"
        elif traffic and not (restored or added):
            message = f"manifests: add the traffic of {', '.join(traffic)} to the tiers of {app}"
        elif restored and added:
            message = f"manifests: add {', '.join(added)} to {app}, restore {', '.join(restored)}"
        elif restored:
            message = f"manifests: restore {', '.join(restored)} of {app}"
        elif added:
            message = f"manifests: add {', '.join(added)} to {app}"
        else:
            return Unchanged(f"{layout.display} already has every service of {app}")
        body = "\n".join(f"- {s}" for s in added)
        full = f"{message}\n\nServices:\n{body}\n" if added else message + "\n"
        if traffic and (restored or added):
            full += f"\nTraffic added to the tiers for: {', '.join(traffic)}\n"
        return Change(full, [co.settings.path], f"devmesh/manifests-{app}-{len(added)}-services")

    landed = land(checkout, apply, attempts=attempts)
    names, added, created, restored, traffic = outcome[-1]
    return ScaffoldResult(names, added, created, landed, restored, traffic)
