"""Colours shared by the widgets: one stable colour per service.

The project's services get distinct colours in the order devmesh.yaml lists them (the same
palette as the CLI's ``devmesh logs``); a service not known up front falls back to the CLI's
hash, so it is stable too.
"""

from __future__ import annotations

from collections.abc import Iterable

from devmesh.cli.output import colour_for

PALETTE = ("cyan", "magenta", "yellow", "green", "blue", "bright_red", "bright_cyan", "bright_magenta")
_assigned: dict[str, str] = {}


def assign_colours(services: Iterable[str]) -> None:
    """Give the project's services distinct colours, in order."""
    _assigned.clear()
    for i, service in enumerate(services):
        _assigned[service] = PALETTE[i % len(PALETTE)]


def service_colour(service: str) -> str:
    """A Rich colour name for ``service``."""
    return _assigned.get(service) or colour_for(service)
