"""What a command is about: the runtime (``--runtime``, ``--context``) and the environment
(``--branch`` or ``--env``), opened for the commands that act on a running environment.

devmesh, its runtimes and devmesh.yaml's models load only when a command runs, not for its
``--help`` (importing devmesh.config alone takes longer than the rest of the CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from devmesh.cli import State
from devmesh.errors import UserInputError
from devmesh.naming import is_env_name

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.runtime.base import RuntimeApp

RUNTIMES = click.Choice(["auto", "docker", "kind"])
CONTEXT_OPTION = click.option("--context", metavar="NAME",
                              help="Kind runtime on this existing cluster (a kubeconfig context).")

ENV_OPTION = click.option("--env", "env_name", metavar="ENV",
                          help="An environment by name (as 'devmesh ls' shows it), e.g. one whose branch is gone.")


def env_for(project: object, branch: str | None, env: str | None) -> str:
    """The environment a command is about: ``--env``, else the branch's (default: checked out)."""
    from devmesh.workspace import current_branch

    if env is not None:
        if branch is not None:
            raise UserInputError("give --branch or --env, not both")
        if not is_env_name(env):
            raise UserInputError(f"--env: {env!r} is not an environment name (see 'devmesh ls')")
        return env
    return current_branch(project, branch).env  # type: ignore[arg-type]


def open_for(state: State, runtime: str | None, context: str | None, branch: str | None,
             env: str | None, *, need_env: bool = True) -> tuple[RuntimeApp, str, Project | None]:
    """The runtime, the environment a command is about and the project; when devmesh.yaml does
    not load, the app's objects found by their labels alone (what ``down``, ``ls`` and ``logs``
    need), and no project."""
    from devmesh.app import by_labels
    from devmesh.app.environments import open_runtime
    from devmesh.config import find_config

    try:
        project = state.project()
    except UserInputError as exc:
        path = state.config or find_config()
        if not path.is_file():
            raise
        found = by_labels.salvage(path)
        rt = by_labels.open_by_labels(found, runtime, context)
        click.echo(f"note: {str(exc).splitlines()[0]}", err=True)
        click.echo(f"note: {path.name} could not be loaded: working from the labels of app "
                   f"{rt.app!r} on the {rt.name} runtime alone", err=True)
        if env is not None:
            return rt, env_for(None, branch, env), None
        name = by_labels.env_by_labels(rt, path.parent, branch) if need_env else ""
        return rt, name, None
    name = env_for(project, branch, env) if need_env else ""
    return open_runtime(project, runtime, context), name, project
