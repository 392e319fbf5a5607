"""Type a request, see which rule takes it and where it goes (the core's ``first_match``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Select, Static

from devmesh.plan.routing import RoutePlan, first_match
from devmesh.traffic.stats import RuleTaken
from tui.request_text import parse_request
from tui.widgets.route_table import GATEWAY, destinations


def explain(plan: RoutePlan, where: str, text: str, taken: Taken | None = None) -> Text:
    """Which rule of ``where`` (the gateway or a service) matches the typed request, and why;
    with ``taken`` (the mesh's records), how many requests that rule routed lately."""
    request = parse_request(text)
    rules = plan.gateway if where == GATEWAY else plan.routes_for(where).rules
    try:
        rule = first_match(rules, request.host, request.headers)
    except LookupError:
        return Text("no rule matches (every rule list should end with a catch-all)", style="red")
    position = rules.index(rule) + 1
    asked = [f"host {request.host}"] if request.host else []
    asked += [f"{k}: {v}" for k, v in request.headers.items()]
    out = Text.assemble(
        ("request ", "dim"), (" and ".join(asked) or "with no host or headers", "bold"),
        ("\nmatches ", "dim"), (f"rule {position} of {len(rules)} ", "bold"), (f"({rule.name})", "dim"),
        ("\ngoes to  ", "dim"), destinations(rule.to),
        ("\nbecause  ", "dim"), rule.why,
    )
    if rule.set_headers:
        out.append("\nsets     ", style="dim")
        out.append(", ".join(f"{k}: {v}" for k, v in rule.set_headers))
    if taken is not None and taken.rules:  # once the mesh has recorded requests
        seen = taken.rules.get((where, rule.name))
        window = f"the last {taken.window:g} s"
        out.append("\nrecords  ", style="dim")
        out.append(f"no request took this rule in {window}" if seen is None else
                   f"{seen.requests} request{'s' if seen.requests != 1 else ''} took it in {window} "
                   f"(latest at {time.strftime('%H:%M:%S', time.localtime(seen.latest))})")
    return out


@dataclass(frozen=True)
class Taken:
    """What the mesh's records say each rule routed over a window (see WindowStats.rules)."""

    rules: Mapping[tuple[str, str], RuleTaken]
    window: float


class ExplainBox(Vertical):
    """A request line, where it enters (gateway or a service), and the verdict."""

    DEFAULT_CSS = """
    ExplainBox { height: auto; border: round $secondary; padding: 0 1; }
    ExplainBox Horizontal { height: 3; }
    ExplainBox Select { width: 22; }
    ExplainBox Input { width: 1fr; }
    ExplainBox #explain-result { height: auto; min-height: 4; }
    """

    def __init__(self, *, cursor_blink: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.plan: RoutePlan | None = None
        self.taken: Taken | None = None
        self._cursor_blink = cursor_blink

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Select[str]([(GATEWAY, GATEWAY)], value=GATEWAY, allow_blank=False, id="explain-where")
            request = Input(placeholder="a request: http://ENV.APP.localhost/  or  x-devmesh-env: ENV",
                            id="explain-request")
            request.cursor_blink = self._cursor_blink
            yield request
        yield Static(Text("type a request to see which rule takes it", style="dim"), id="explain-result")

    def on_mount(self) -> None:
        self.border_title = "explain a request"

    def show(self, plan: RoutePlan) -> None:
        self.plan = plan
        where = self.query_one("#explain-where", Select)
        names = [GATEWAY, *(r.service for r in plan.services)]
        current = where.value if where.value in names else GATEWAY
        where.set_options([(n, n) for n in names])
        where.value = current
        self._explain()

    def records(self, taken: Taken) -> None:
        """The mesh's latest figures per rule, shown under the verdict."""
        self.taken = taken
        self._explain()

    def ask(self, where: str, text: str) -> None:
        """Fill in a request (as a person would type it) and explain it."""
        self.query_one("#explain-where", Select).value = where
        self.query_one("#explain-request", Input).value = text
        self._explain()

    @on(Input.Changed, "#explain-request")
    @on(Select.Changed, "#explain-where")
    def _explain(self) -> None:
        result = self.query_one("#explain-result", Static)
        text = self.query_one("#explain-request", Input).value
        where = self.query_one("#explain-where", Select).value
        if self.plan is None:
            result.update(Text("no routing plan yet", style="dim"))
            return
        if not text.strip():
            result.update(Text("type a request to see which rule takes it", style="dim"))
            return
        try:
            result.update(explain(self.plan, str(where), text, self.taken))
        except KeyError:
            result.update(Text(f"{where} has no routes in this plan", style="red"))
