"""`devmesh presets`: the service and strategy presets a project can use, with their variables."""

from __future__ import annotations

import json
from pathlib import Path

import click

from devmesh.cli import State, pass_state


def _project_root(state: State) -> Path | None:
    """The project's folder (for its own presets/), without requiring a valid devmesh.yaml."""
    from devmesh.config import find_config
    from devmesh.errors import UserInputError

    if state.config is not None:
        return state.config.resolve().parent
    try:
        return find_config().parent
    except UserInputError:
        return None  # outside a project: the shipped presets only


def _value(value: object) -> str:
    return json.dumps(value) if isinstance(value, (str, list, dict)) else str(value).lower() \
        if isinstance(value, bool) else str(value)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def presets(state: State, as_json: bool) -> None:
    """List service presets (set their variables under a service's 'values') and strategy
    presets (canary, mirror, switch, rolling), shipped or in the project's presets/ folder."""
    from devmesh.config.presets import list_presets

    found = list_presets(_project_root(state))
    if as_json:
        click.echo(json.dumps({"presets": [p.to_json() for p in found]}, indent=2))
        return
    for category, title in (("service", "Service presets"), ("strategy", "Strategy presets")):
        click.echo(f"{title}:")
        for p in (p for p in found if p.category == category):
            kind = f" [{p.kind}]" if p.kind else ""
            source = "" if p.source == "devmesh" else f"  ({p.source})"
            click.echo(f"  {p.name}{kind}: {p.description}{source}")
            cells = [f"{v.name} = {_value(v.default)}" for v in p.variables]
            width = max((len(c) for c in cells), default=0)
            for cell, v in zip(cells, p.variables):
                click.echo(f"    {cell:<{width}}  {v.description}".rstrip())
        click.echo("")
