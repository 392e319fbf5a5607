"""Which environment a command works on: the branch, its env name, the services it forks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.plan.routing import Environment
from devmesh.workspace import changed_services, current_branch

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.workspace import Branch


@dataclass(frozen=True)
class Selection:
    """The branch a command was asked about and its environment."""

    branch: Branch
    environment: Environment


def select(project: Project, branch: str | None = None, *, fork_all: bool = False,
           require_forks: bool = False) -> Selection:
    """Resolve ``branch`` (default: checked out) and decide which services it forks."""
    chosen = current_branch(project, branch)
    if chosen.env == "baseline":
        forks: tuple[str, ...] = ()
    elif fork_all:
        forks = tuple(project.services)
    else:
        forks = tuple(changed_services(project, chosen))
    if require_forks and not forks and chosen.env != "baseline":
        raise UserInputError(
            f"branch {chosen.label} changes no service's build context",
            hint="use --all to run every service of the branch anyway",
        )
    return Selection(chosen, Environment(chosen.env, forks, chosen.name))
