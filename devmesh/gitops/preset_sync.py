"""``manifests sync``: render again what devmesh renders in the manifest repo — the fields of
each service's base it owns, and every tier's traffic files — from devmesh.yaml and the presets
as they are now, in one commit.

Only devmesh's fields change: in a base file the service's container image placeholder, ports
and environment and the Service's ports (everything else, comments and order included, stays
as people wrote it); a traffic file is devmesh's whole, rendered for the candidate and strategy
it holds. A field a person changed (see devmesh.gitops.managed) is reported with what it is and
what the presets give, and overwritten only when forced.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml.error import YAMLError

from devmesh.errors import UserInputError
from devmesh.files import replace_file
from devmesh.gitops.cache import Checkout
from devmesh.gitops.land import DEFAULT_ATTEMPTS, Change, Landed, Unchanged, land
from devmesh.gitops.layout import Layout
from devmesh.gitops.managed import (
    RENDERED,
    base_fields,
    fingerprint,
    judge_base,
    recorded,
    set_base_fields,
    show,
)
from devmesh.gitops.render import base_files
from devmesh.gitops.tier_strategy import traffic_location
from devmesh.gitops.tier_traffic import TrafficEdited, file_text, inspect, peek
from devmesh.gitops.yamlio import read_text, round_trip_yaml

if TYPE_CHECKING:
    from devmesh.config import Project

BASE_FILES = ("deployment.yaml", "service.yaml")


@dataclass(frozen=True)
class HandEdit:
    """A field devmesh renders that a person changed: where, what it is, what the presets give."""

    path: str  # relative to the layout's root
    obj: str  # "Deployment api"
    field: str
    found: Any
    wanted: Any

    def line(self) -> str:
        return (f"{self.path}: {self.obj}: {self.field} was edited by hand: it is {show(self.found)}, "
                f"devmesh.yaml and the presets give {show(self.wanted)}")


@dataclass(frozen=True)
class FileChange:
    path: str  # relative to the layout's root
    before: str
    after: str

    def diff(self, prefix: str = "") -> str:
        name = f"{prefix}{self.path}"
        return "".join(difflib.unified_diff(self.before.splitlines(keepends=True), self.after.splitlines(keepends=True),
                                            fromfile=f"a/{name}", tofile=f"b/{name}"))


@dataclass(frozen=True)
class SyncPlan:
    changes: list[FileChange] = field(default_factory=list)
    edits: list[HandEdit] = field(default_factory=list)  # found; overwritten only when forced
    forced: bool = False
    not_in_layout: list[str] = field(default_factory=list)  # services of devmesh.yaml the layout lacks
    missing_traffic: list[str] = field(default_factory=list)  # tier/service without a traffic file

    @property
    def services(self) -> list[str]:
        """The services whose files change."""
        names = set()
        for change in self.changes:
            parts = change.path.split("/")
            names.add(parts[1] if parts[0] == "base" else parts[-1].removesuffix(".yaml"))
        return sorted(names)

    def refusal(self) -> UserInputError:
        first = self.edits[0]
        more = len(self.edits) - 1
        also = f" (and {more} more: 'devmesh manifests sync --dry-run' lists them)" if more else ""
        return UserInputError(f"{first.line()}{also}; nothing written",
                              hint="undo the edit, or set it in devmesh.yaml (or the preset's variables); "
                                   "--force overwrites it with what the presets give")


def _base_change(layout: Layout, project: Project, service: str, filename: str,
                 wanted: dict[str, Any], force: bool, edits: list[HandEdit]) -> FileChange | None:
    path = layout.base_dir(service) / filename
    relative = path.relative_to(layout.root).as_posix()
    if not path.is_file():
        return None  # a base the team removed or never had: not devmesh's to write again
    display = f"{layout.display}: {relative}"
    text = read_text(path, display)
    yaml = round_trip_yaml(text)
    try:
        docs = list(yaml.load_all(text))
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserInputError(f"{display}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") == wanted["kind"]]
    if len(found) != 1:
        raise UserInputError(f"{display}: expected one {wanted['kind']} (devmesh renders its "
                             f"{', '.join(base_fields(wanted, service))}), found {len(found)}")
    obj = found[0]
    plain = _plain(obj)
    if wanted["kind"] == "Deployment" and not any(
            isinstance(c, dict) and c.get("name") == service
            for c in (((plain.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []):
        raise UserInputError(f"{display}: the Deployment has no container named {service!r}: devmesh renders its "
                             "image, ports and env there", hint=f"name the service's container {service!r}")
    verdict = judge_base(plain, wanted, service)
    mark = fingerprint(base_fields(wanted, service))
    if verdict.state == "same" and recorded(plain) == mark:
        return None
    if verdict.state == "edited":
        name = f"{wanted['kind']} {(plain.get('metadata') or {}).get('name', service)}"
        edits += [HandEdit(relative, name, d.field, d.found, d.wanted) for d in verdict.differences]
        if not force:
            return None
    set_base_fields(obj, service, base_fields(wanted, service))
    metadata = obj.setdefault("metadata", {})
    if metadata.get("annotations") is None:
        metadata["annotations"] = {}
    metadata["annotations"][RENDERED] = mark
    out = io.StringIO()
    if len(docs) == 1:
        yaml.dump(docs[0], out)
    else:
        yaml.dump_all(docs, out)
    after = _keep_header(text, out.getvalue())
    return None if after == text else FileChange(relative, text, after)


def _plain(obj: Any) -> Any:
    """A round-trip YAML node as plain dicts and lists (what the render compares with)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    return str(obj)


def _keep_header(before: str, after: str) -> str:
    """ruamel keeps comments inside a document; the comment lines above its first key are
    kept by hand when the dump lost them."""
    head = []
    for line in before.splitlines(keepends=True):
        if line.startswith("#") or not line.strip():
            head.append(line)
            continue
        break
    lead = "".join(head)
    return after if after.startswith(lead) else lead + after


def _traffic_change(layout: Layout, project: Project, tier: str, service: str, force: bool,
                    edits: list[HandEdit], missing: list[str]) -> FileChange | None:
    path, display = traffic_location(layout, tier, service)
    relative = path.relative_to(layout.root).as_posix()
    if not path.is_file():
        missing.append(f"{tier}/{service}")
        return None
    text = read_text(path, display)
    try:
        state, findings = inspect(project, tier, service, path, display)
    except TrafficEdited as exc:  # a missing or foreign object: the whole file is not devmesh's
        edits.append(HandEdit(relative, "file", "(objects)", exc.message, "the file devmesh renders"))
        if not force:
            return None
        state, findings = peek(path), []
    for finding in findings:
        if finding.verdict.state == "edited":
            edits += [HandEdit(relative, f"{finding.kind} {finding.name}", d.field, d.found, d.wanted)
                      for d in finding.verdict.differences]
            if not force:
                return None
    after = file_text(project, tier, service, state)
    return None if after == text else FileChange(relative, text, after)


def plan_sync(layout: Layout, project: Project, *, force: bool = False) -> SyncPlan:
    """Every file ``manifests sync`` would write, and every hand edit found; nothing is written."""
    layout.app(project.app)
    have = set(layout.services())
    services = sorted(s for s in project.services if s in have)
    changes: list[FileChange] = []
    edits: list[HandEdit] = []
    missing: list[str] = []
    tiers = [t.name for t in layout.tiers()]
    for service in services:
        wanted = base_files(project.app, service, project.port_of(service), dict(project.services[service].env))
        for filename in BASE_FILES:
            change = _base_change(layout, project, service, filename, wanted[filename][1], force, edits)
            if change is not None:
                changes.append(change)
    for tier in tiers:
        for service in services:
            change = _traffic_change(layout, project, tier, service, force, edits, missing)
            if change is not None:
                changes.append(change)
    return SyncPlan(changes, edits, force, sorted(set(project.services) - have), missing)


def write_plan(layout: Layout, plan: SyncPlan) -> list[Path]:
    written = []
    for change in plan.changes:
        path = layout.root / change.path
        replace_file(path, change.after.encode("utf-8"))
        written.append(path)
    return written


def message(app: str, plan: SyncPlan) -> str:
    services = plan.services
    forced = " (hand edits overwritten)" if plan.forced and plan.edits else ""
    lines = [f"manifests: sync {len(services)} service{'s' if len(services) != 1 else ''} of {app} with "
             f"devmesh.yaml and the presets{forced}", "", "Files:"]
    lines += [f"- {c.path}" for c in plan.changes]
    if plan.forced and plan.edits:
        lines += ["", "Hand edits overwritten:"] + [f"- {e.line()}" for e in plan.edits]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SyncResult:
    plan: SyncPlan
    landed: Landed


def manifests_sync(checkout: Checkout, project: Project, *, force: bool = False,
                   attempts: int = DEFAULT_ATTEMPTS) -> SyncResult:
    """Commit and push the sync; on a push race it is planned again on the new tip (so a
    strategy or promotion that landed meanwhile is kept, and a sync that landed meanwhile
    leaves nothing to do)."""
    planned: list[SyncPlan] = [SyncPlan()]

    def apply(co: Checkout) -> Change | Unchanged:
        co.require_tip()
        layout = co.layout()
        plan = plan_sync(layout, project, force=force)
        planned[0] = plan
        if plan.edits and not force:
            raise plan.refusal()
        if not plan.changes:
            return Unchanged(f"every tier of {project.app} is what devmesh.yaml and the presets give: nothing to sync")
        paths = [co.relative(p) for p in write_plan(layout, plan)]
        digest = fingerprint([[c.path, c.after] for c in plan.changes]).removeprefix("sha256:")[:12]
        return Change(message(project.app, plan), paths, f"devmesh/sync-{project.app}-{digest}")

    landed = land(checkout, apply, attempts=attempts)
    return SyncResult(planned[0], landed)
