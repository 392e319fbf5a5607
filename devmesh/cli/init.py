"""``devmesh init``: write a devmesh.yaml for this repository, or scaffold a starter app."""

from __future__ import annotations

from pathlib import Path

import click

from devmesh.config import CONFIG_NAME


@click.command("init")
@click.argument("directory", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--starter", metavar="NAME", help="Scaffold the starter app NAME (e.g. shop) into DIRECTORY, a new git repository.")
@click.option("--base-image", metavar="IMAGE", help="With --starter: build every service FROM this image (passed as the BASE_IMAGE build argument).")
@click.option("--force", is_flag=True, help="Replace an existing devmesh.yaml.")
@click.option("--manifests", "manifests_repo", metavar="REPO",
              help="Record the GitOps manifest repo (git URL or path) in devmesh.yaml; alone, in a project that has one, only that.")
def init(directory: Path | None, starter: str | None, base_image: str | None, force: bool,
         manifests_repo: str | None) -> None:
    """Write a devmesh.yaml from the Dockerfiles in DIRECTORY (default: here).

    With --starter, copy an example app into DIRECTORY (default: ./NAME) instead.
    """
    if starter is None:
        if base_image is not None:
            raise click.UsageError("--base-image applies to --starter only; in your own repository, set 'build_args' in devmesh.yaml")
        target = directory or Path(".")
        if not (manifests_repo and (target / CONFIG_NAME).is_file() and not force):
            _scan(target, force)
        if manifests_repo:
            _record(target / CONFIG_NAME, manifests_repo)
    else:
        if force:
            raise click.UsageError("--force does not apply to --starter: a starter only goes into a new or empty directory")
        _starter(starter, directory or Path(starter), base_image)
        if manifests_repo:
            _record((directory or Path(starter)) / CONFIG_NAME, manifests_repo)


def _record(config: Path, repo: str) -> None:
    from devmesh.gitops import record_manifests

    changed = record_manifests(config, repo)
    click.echo(f"manifests.repo: {repo}" + ("" if changed else " (already set)") + f" in {config}")


def _starter(name: str, directory: Path, base_image: str | None) -> None:
    from devmesh.scaffold import create_starter

    result = create_starter(name, directory, base_image)
    click.echo(f"Created the {name} starter in {result.path}: a git repository on branch main, "
               f"first commit {result.commit[:10]} by {result.author}.")
    if base_image:
        click.echo(f"Every service builds FROM {base_image}.")
    click.echo("\nNext steps:")
    click.echo(f"  cd {result.path}")
    click.echo("  git checkout -b feature/my-change   # a branch gets its own preview environment")
    click.echo("  devmesh render                      # the objects devmesh would create for it")
    click.echo("  devmesh doctor                      # what each runtime needs on this machine")


def _scan(directory: Path, force: bool) -> None:
    from devmesh.scaffold import init_repository

    result = init_repository(directory, force=force)
    click.echo(f"Wrote {result.path} with {len(result.services)} service(s):")
    names = max(len(s.name) for s in result.services)
    contexts = max(len(s.context) for s in result.services)
    for svc in result.services:
        entry = "  (entry)" if svc.entry else ""
        click.echo(f"  {svc.name:<{names}}  {svc.context:<{contexts}}  port {svc.port:<5}  {svc.preset}{entry}")
        click.echo(f"      port: {svc.port_source}; preset: {svc.preset_reason}")
        if svc.entry:
            click.echo(f"      entry: {svc.entry_reason}")
        if svc.preset != "container":
            click.echo(f"      sync: {'; '.join(svc.sync) or 'nothing: every change rebuilds'}")
        for note in svc.notes:
            click.echo(f"      note: {note}")
    click.echo(f"\nCheck the guesses in {CONFIG_NAME} (ports, presets, which service is the entry).")
    click.echo("Each service must copy the routing header x-devmesh-env from incoming requests "
               "onto its outbound calls.")
    if not result.is_git_repo:
        click.echo(f"note: {directory} is not in a git repository; devmesh names preview "
                   "environments after the current branch, so run 'git init' first.")
    click.echo("Then: devmesh render")
