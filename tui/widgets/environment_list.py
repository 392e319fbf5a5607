"""The environments of the app: this branch's, other branches', and the baseline."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from devmesh.runtime.base import EnvironmentState
from tui.widgets.keyed_table import same_cell


def summary(state: EnvironmentState | None) -> tuple[str, str]:
    """A few words on an environment's services, and the style to show them in."""
    if state is None:
        return "not running", "dim"
    total = len(state.services)
    running = sum(1 for s in state.services if s.state == "running")
    ready = sum(1 for s in state.services if s.ready)
    if total and ready == total:
        return f"{ready}/{total} ready", "green"
    if running == 0:
        return "stopped", "red"
    bad = [s for s in state.services if s.state not in ("running", "created")]
    return f"{ready}/{total} ready", "red" if bad else "yellow"


class EnvironmentList(OptionList):
    """One line per environment; highlighting one shows its services."""

    class Selected(Message):
        """The user moved to another environment."""

        def __init__(self, env: str) -> None:
            super().__init__()
            self.env = env

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.current_env: str | None = None
        self.states: dict[str, EnvironmentState] = {}

    def show(self, states: Sequence[EnvironmentState], *, branch_env: str | None, selected: str | None,
             error: str | None = None) -> None:
        """Show ``states`` with ``selected`` highlighted (it stays selected: no message). When
        the same environments are listed, only the lines that changed are replaced, so a poll
        moves neither the highlight nor the scroll; otherwise the list is built again."""
        keep = selected or branch_env
        self.states = {s.name: s for s in states}
        names: list[str] = []
        if branch_env is not None:
            names.append(branch_env)
        names += [s.name for s in states if not s.is_baseline and s.name != branch_env]
        if "baseline" not in names:
            names.append("baseline")
        options = []
        for name in names:
            state = self.states.get(name)
            text, style = summary(state)
            if error is not None and state is None:
                text, style = "unknown", "red"
            line = Text()
            line.append(name, style="bold" if name == branch_env else "")
            if name == branch_env and name != "baseline":
                line.append(" (this branch)", style="cyan")
            elif name == "baseline":
                line.append(" (shared)", style="dim")
            elif state is not None and state.branch:
                line.append(f" ({state.branch})", style="dim")
            line.append("\n  ")
            line.append(f"● {text}", style=style)
            options.append(Option(line, id=name))
        if [option.id for option in self.options] == names:
            for option in options:
                assert option.id is not None
                if not same_cell(self.get_option(option.id).prompt, option.prompt):
                    self.replace_option_prompt(option.id, option.prompt)
        else:
            self.clear_options()
            self.add_options(options)
        index = names.index(keep) if keep in names else 0
        self.current_env = names[index]
        self.highlighted = index

    @on(OptionList.OptionHighlighted)
    def _moved(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        env = event.option.id
        if env is not None and env != self.current_env:
            self.current_env = env
            self.post_message(self.Selected(env))
