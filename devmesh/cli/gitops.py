"""``devmesh manifests init`` and ``sync``, ``tiers``, ``promote``, ``rollback``, ``history``, and the tier
strategies (``canary``/``mirror``/``switch`` with ``--tier``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

from devmesh.cli import State, pass_state
from devmesh.errors import UserInputError
from devmesh.gitops.landed import landed_message
from devmesh.gitops.settings import ENV_VAR, ManifestSettings, manifest_settings
from devmesh.gitops.trailers import Promotion, Rollback, TrafficChange

if TYPE_CHECKING:
    from devmesh.app.releases import ManifestRepo


def _note(message: str) -> None:
    click.echo(f"note: {message}", err=True)


def _project(state: State, *, required: bool) -> Any:
    """The project; without a devmesh.yaml, None when DEVMESH_MANIFESTS names the repo."""
    import os

    from devmesh.config import find_config

    if not required and state.config is None and os.environ.get(ENV_VAR):
        try:
            find_config()
        except UserInputError:
            return None
    return state.project()


def _settings(state: State, *, project_required: bool = False) -> tuple[Any, ManifestSettings]:
    project = _project(state, required=project_required)
    return project, manifest_settings(project)


@contextmanager
def _checkout(settings: ManifestSettings) -> Iterator[Any]:
    from devmesh.gitops.cache import open_checkout

    with open_checkout(settings, notify=_note) as checkout:
        yield checkout


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UserInputError(f"{question.rstrip('?')}: not confirmed; pass --yes to confirm without a terminal")
    if not click.confirm(question, default=False):
        raise click.Abort()


def _age(when: datetime, now: datetime | None = None) -> str:
    seconds = int(((now or datetime.now(timezone.utc)) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


# --- manifests init ------------------------------------------------------------------------


@click.group("manifests")
def manifests() -> None:
    """The shared GitOps manifest repo."""


@manifests.command("init")
@click.option("--tiers", "tiers_text", metavar="T1,T2,…", help="Tiers in rollout order (default: dev,beta,prod).")
@pass_state
def manifests_init(state: State, tiers_text: str | None) -> None:
    """Write the Kustomize layout for the project's services into the manifest repo, as one commit."""
    from devmesh.gitops.scaffold import parse_tiers, scaffold, specs_from_project

    tiers = parse_tiers(tiers_text) if tiers_text is not None else None
    project, settings = _settings(state, project_required=True)
    with _checkout(settings) as checkout:
        if checkout.tip is None:
            _note(f"branch {settings.branch!r} does not exist in {settings.url} yet; starting it")
        result = scaffold(checkout, project.app, specs_from_project(project), tiers)
    if result.landed.unchanged:
        click.echo(result.landed.unchanged)
        return
    if result.restored:
        _note(f"the layout was incomplete: {', '.join(result.restored)} missing; the existing files were left as they are")
    if result.created:
        done = "wrote the layout"
    elif result.restored:
        done = "completed the layout (wrote " + ", ".join(result.restored) + ")"
    elif result.added_services:
        done = "added services"
    else:
        done = "added each service's traffic to the tiers"
    if result.traffic and not result.created:
        _note(f"the tiers lacked the traffic of {', '.join(result.traffic)}: written under tiers/<tier>/traffic/")
    what = f"{done} for {project.app} ({', '.join(result.added_services) or 'no services added'}; tiers {', '.join(result.tiers)})"
    click.echo(landed_message(result.landed, what))


@manifests.command("sync")
@click.option("--dry-run", is_flag=True, help="Show the diff and the hand edits found; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite fields edited by hand with what the presets give.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def manifests_sync(state: State, dry_run: bool, force: bool, yes: bool) -> None:
    """Render again what devmesh renders in every service's base and every tier's traffic, from
    devmesh.yaml and the presets as they are now, in one commit (the diff is shown first)."""
    from devmesh.gitops.preset_sync import manifests_sync as sync_now
    from devmesh.gitops.preset_sync import plan_sync

    project, settings = _settings(state, project_required=True)
    with _checkout(settings) as checkout:
        checkout.require_tip()
        plan = plan_sync(checkout.layout(), project, force=force)
    prefix = "" if settings.path == "." else settings.path.rstrip("/") + "/"
    if plan.not_in_layout:
        _note(f"not in the manifest repo yet: {', '.join(plan.not_in_layout)} ('devmesh manifests init' adds them)")
    if plan.missing_traffic:
        _note(f"no traffic file for {', '.join(plan.missing_traffic)} ('devmesh manifests init' writes them)")
    for edit in plan.edits:
        click.echo(f"{'overwriting' if force else 'edited by hand'}: {edit.line()}", err=True)
    diff = "".join(c.diff(prefix) for c in plan.changes)
    services = plan.services
    what = f"{len(plan.changes)} file(s) of {len(services)} service(s)"
    if dry_run:
        click.echo(diff, nl=False)
        if plan.edits and not force:
            click.echo(f"sync would refuse: {len(plan.edits)} field(s) edited by hand (--force overwrites them)", err=True)
        click.echo(f"would sync {what}" if plan.changes else "nothing to sync", err=True)
        return
    if plan.edits and not force:
        raise plan.refusal()
    if not plan.changes:
        click.echo(f"every tier of {project.app} is what devmesh.yaml and the presets give: nothing to sync")
        return
    click.echo(diff, nl=False)
    _confirm(yes, f"sync {what} with devmesh.yaml and the presets?")
    with _checkout(settings) as checkout:
        result = sync_now(checkout, project, force=force)
    if result.landed.unchanged:
        click.echo(result.landed.unchanged)
        return
    landed = [c.path for c in result.plan.changes]
    if landed != [c.path for c in plan.changes]:
        _note(f"the manifest repo moved meanwhile: the sync was planned again and wrote {len(landed)} file(s), "
              f"not the {len(plan.changes)} shown")
    click.echo(landed_message(result.landed, f"synced {len(landed)} file(s) of {len(result.plan.services)} "
                                             f"service(s) of {project.app}"))


# --- tiers -----------------------------------------------------------------------------------


@click.command("tiers")
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
@pass_state
def tiers(state: State, as_json: bool) -> None:
    """Show which image each tier runs for each service, its split while a strategy runs there,
    and what may move up."""
    from devmesh.gitops.tier_traffic import summary
    from devmesh.gitops.tiers import tier_matrix

    project, settings = _settings(state)
    with _checkout(settings) as checkout:
        matrix = tier_matrix(checkout, app=project.app if project else None)
    if as_json:
        click.echo(json.dumps(matrix.to_json(), indent=2))
        return
    names = [t.name for t in matrix.tiers]
    rows = []
    for service, row in matrix.services.items():
        cells = [service]
        for name in names:
            cell = row[name]
            if cell.image is None:
                cells.append("-")
                continue
            text = cell.image.short.removeprefix("sha256:")
            if cell.last is not None:
                text += f" {_age(cell.last.date)} {cell.last.author}"
            text += " >" if cell.next_may_take else ""
            if cell.traffic.candidate is not None:
                text += f" [{summary(cell.traffic)}]"
            cells.append(text)
        rows.append(cells)
    click.echo(_table(["SERVICE", *names], rows))
    click.echo("\n> the next tier may take this image; [...] the tier's candidate and its split", err=True)


# --- promote ---------------------------------------------------------------------------------


def _repo(state: State) -> tuple[Any, ManifestRepo]:
    """The project (None without one) and the manifest repo as the release use cases take it."""
    from devmesh.app.releases import ManifestRepo  # not at the top: `--help` stays free of git

    project, settings = _settings(state)
    return project, ManifestRepo(settings, project.app if project else None, notify=_note, project=project)


@click.command("promote")
@click.argument("service")
@click.option("--to", "tier", required=True, metavar="TIER", help="The tier to promote into.")
@click.option("--image", metavar="REF", help="NAME@sha256:<digest>, or a local image to push to the registry and pin.")
@click.option("--branch", "-b", metavar="BRANCH", help="Build SERVICE from this branch's last commit, push it and pin it (first tier).")
@click.option("--force", is_flag=True, help="Override the tier rule (needs --reason).")
@click.option("--reason", metavar="TEXT", help="Why the tier rule is overridden; recorded in the commit.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def promote(state: State, service: str, tier: str, image: str | None, branch: str | None,
            force: bool, reason: str | None, yes: bool) -> None:
    """Pin SERVICE's image in TIER: the first tier takes --image or --branch, later tiers the
    tier below's."""
    from devmesh.app import releases  # not at the top: `--help` stays free of git and docker
    from devmesh.gitops.promote import PromotionRequest

    PromotionRequest(service, tier, None, force, reason)  # option errors before any network
    if image and branch:
        raise click.UsageError("give --image or --branch, not both")
    project, repo = _repo(state)
    if branch is not None:
        image = releases.branch_image(project, service, branch, notify=_note)
    preview = releases.preview_promotion(repo, service, tier, image=image or None, force=force, reason=reason)
    if not isinstance(preview, releases.ChangePreview):
        click.echo(preview.reason)
        return
    plan = preview.change
    assert isinstance(plan, Promotion)
    was = f" (it runs {plan.previous.short} now)" if plan.previous else " (it runs nothing now)"
    forced = f", overriding the tier rule: {plan.reason}" if plan.reason else ""
    _confirm(yes, f"promote {service} to {tier}: {plan.image}{was}{forced}?")
    landing = releases.land(repo, preview)
    if landing.unchanged or landing.promotion is None:
        click.echo(landing.unchanged)
        return
    done = landing.promotion
    source = f" from {done.source}" if done.source else ""
    forced = " (forced)" if done.reason else ""
    click.echo(landed_message(landing.landed, f"promoted {service} to {tier}{source}{forced}: {done.image}"))


# --- rollback --------------------------------------------------------------------------------


@click.command("rollback")
@click.argument("service")
@click.option("--tier", required=True, metavar="TIER", help="The tier to roll back.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def rollback(state: State, service: str, tier: str, yes: bool) -> None:
    """Revert TIER's latest change of SERVICE: a promotion, or a step of a canary, mirror or switch."""
    from devmesh.app import releases  # not at the top: `--help` stays free of git

    _, repo = _repo(state)
    preview = releases.preview_rollback(repo, service, tier)
    plan = preview.change
    assert isinstance(plan, Rollback)
    _confirm(yes, f"roll back {service} in {tier} from {releases.rollback_from(plan)} to {releases.rollback_back(plan)} "
                  f"(reverting {plan.reverts[:10]} \"{plan.reverted_subject}\")?")
    landing = releases.land(repo, preview)
    if landing.unchanged or landing.rollback is None:
        click.echo(landing.unchanged)
        return
    if landing.warning:
        _note(landing.warning)
    done = landing.rollback
    click.echo(landed_message(landing.landed, f"rolled back {service} in {tier} to {releases.rollback_back(done)} "
                                              f"(reverted {done.reverts[:10]})"))


# --- history ---------------------------------------------------------------------------------


@click.command("history")
@click.argument("service", required=False)
@click.option("--tier", metavar="TIER", help="Only this tier.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@pass_state
def history(state: State, service: str | None, tier: str | None, as_json: bool) -> None:
    """Promotions, tier strategies and rollbacks, newest first, read from the commit trailers."""
    from devmesh.gitops.history import read_history, require_known

    _, settings = _settings(state)
    with _checkout(settings) as checkout:
        checkout.require_tip()
        layout = checkout.layout()
        entries = read_history(checkout, service, tier)
        require_known(layout, entries, service, tier)
    if as_json:
        click.echo(json.dumps([e.to_json() for e in entries], indent=2))
        return
    if not entries:
        click.echo("no promotions yet")
        return
    rows = []
    for e in entries:
        note = f"forced: {e.reason}" if e.reason else (f"reverts {e.reverts[:10]}" if e.reverts else "")
        rows.append([e.date.strftime("%Y-%m-%d %H:%M"), e.kind, e.service, e.tier, e.what, e.author, e.commit[:10], note])
    click.echo(_table(["DATE", "ACTION", "SERVICE", "TIER", "CHANGE", "BY", "COMMIT", ""], rows))


# --- tier strategies -------------------------------------------------------------------------


def tier_strategy(state: State, service: str, tier: str, kind: str, *, image: str | None, yes: bool,
                  **choices: Any) -> None:
    """``canary``/``mirror``/``switch`` SERVICE ``--tier`` TIER: one commit to the tier's traffic
    file (``choices``: weight, next_step, sticky, percent, preset, end, end_kind)."""
    from devmesh.app import releases  # not at the top: `--help` stays free of git
    from devmesh.gitops.tier_traffic import summary

    if choices.get("end") and image is not None:
        raise UserInputError("ending a strategy takes no --image: it removes the candidate")
    project, repo = _repo(state)
    if project is None:
        raise UserInputError(f"a {kind} in a tier needs the project's devmesh.yaml: the tier's traffic is "
                             "rendered from it", hint="run it in the project")
    request = releases.tier_strategy_request(project, service, tier, kind, **choices)
    if image is not None:
        from dataclasses import replace

        request = replace(request, image=releases.resolve_image(repo, service, tier, image))
    preview = releases.preview_traffic(repo, request)
    if not isinstance(preview, releases.ChangePreview):
        click.echo(preview.reason)
        return
    plan = preview.change
    assert isinstance(plan, TrafficChange)
    _confirm(yes, f"{preview.title} (now: {summary(plan.before)})?")
    landing = releases.land(repo, preview)
    if landing.unchanged or landing.traffic is None:
        click.echo(landing.unchanged)
        return
    if landing.warning:
        _note(landing.warning)
    click.echo(landed_message(landing.landed, landing.traffic.subject()))
