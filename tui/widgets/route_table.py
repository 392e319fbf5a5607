"""The Routing tab's table: every service's rules in the order they are tried."""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import DataTable

from devmesh.plan.routing import Rule, RoutePlan, Weighted
from tui.palette import service_colour
from tui.widgets.keyed_table import KeyedRow, KeyedTable

GATEWAY = "gateway"
_KNOWN_RULE_FIELDS = {"name", "match", "to", "why", "set_headers"}


def destinations(to: tuple[Weighted, ...]) -> Text:
    """Where a rule sends requests: one backend, or a weighted split with a bar per share."""
    out = Text()
    total = sum(w.weight for w in to) or 1
    for i, w in enumerate(to):
        if i:
            out.append("  ")
        out.append(w.backend.service, style=service_colour(w.backend.service))
        out.append("@")
        out.append(w.backend.env, style="bold magenta" if w.backend.env != "baseline" else "bold")
        if len(to) > 1:
            share = round(100 * w.weight / total)
            out.append(f" {share}% ", style="bold")
            out.append("█" * max(1, share // 20), style="cyan" if i == 0 else "magenta")
        extras = _extras(w, {"backend", "weight"})
        if extras:
            out.append(f" ({extras})", style="dim")
    return out


def _format(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return ", ".join(f"{k}: {v}" for k, v in value)
    if isinstance(value, tuple):
        return ", ".join(_format(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [f"{f.name}={_format(getattr(value, f.name))}" for f in dataclasses.fields(value)
                  if getattr(value, f.name) not in (None, (), "", False)]
        return f"{type(value).__name__.lower()}({', '.join(fields)})"
    return str(value)


def _extras(obj: Any, known: set[str]) -> str:
    """Fields a newer core added (sticky buckets, mirrors, …), shown as ``name: value``."""
    out = []
    for field in dataclasses.fields(obj):
        if field.name in known:
            continue
        value = getattr(obj, field.name)
        default = field.default if field.default is not dataclasses.MISSING else None
        if value in (None, (), "", False) or value == default:
            continue
        out.append(f"{field.name.replace('_', ' ')}: {_format(value)}")
    return "; ".join(out)


def rule_notes(rule: Rule) -> Text:
    notes = []
    if rule.set_headers:
        notes.append("sets " + ", ".join(f"{k}: {v}" for k, v in rule.set_headers))
    extra = _extras(rule, _KNOWN_RULE_FIELDS)
    if extra:
        notes.append(extra)
    return Text("; ".join(notes), style="dim")


class RouteTable(KeyedTable):
    """Rules grouped by where they apply: the gateway first, then each service.

    A row's key is where the rule applies and its name (``api/api-canary``), so a refresh
    that adds or drops a rule leaves the cursor on the rule it was on."""

    class RuleHighlighted(Message):
        def __init__(self, where: str, index: int, rule: Rule) -> None:
            super().__init__()
            self.where = where
            self.index = index
            self.rule = rule

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self.rules: dict[str, tuple[str, int, Rule]] = {}
        self._announced: tuple[str, int, Rule] | None = None

    def on_mount(self) -> None:
        for label, key, width in (("WHERE", "where", 8), ("#", "n", 1), ("MATCH", "match", 56),
                                  ("ROUTES TO", "to", 48), ("ALSO", "also", 28)):
            self.add_column(label, key=key, width=width)

    def show(self, plan: RoutePlan) -> None:
        rules: dict[str, tuple[str, int, Rule]] = {}
        rows: list[KeyedRow] = []
        groups: list[tuple[str, tuple[Rule, ...]]] = [(GATEWAY, plan.gateway)]
        groups += [(routes.service, routes.rules) for routes in plan.services]
        for where, group in groups:
            for i, rule in enumerate(group, start=1):
                key = f"{where}/{rule.name}"
                if key in rules:  # names are unique in a group; should one repeat, its place tells
                    key = f"{key}#{i}"
                rules[key] = (where, i, rule)
                label = Text(where if i == 1 else "", style=f"bold {service_colour(where)}" if where != GATEWAY else "bold")
                match = Text(rule.match.describe(), style="dim" if rule.match.describe() == "any request" else "")
                rows.append((key, [label, str(i), match, destinations(rule.to), rule_notes(rule)]))
        self.rules = rules
        self.set_rows(rows)
        at = self.cursor_key
        self._announce(self.rules.get(at) if at is not None else None)

    def _announce(self, found: tuple[str, int, Rule] | None) -> None:
        """Tell the screen which rule is highlighted, once per change (a refresh that changes
        nothing moves no cursor and says nothing)."""
        if found is not None and found != self._announced:
            self._announced = found
            self.post_message(self.RuleHighlighted(*found))

    @on(DataTable.RowHighlighted)
    def _moved(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._announce(self.rules.get(str(event.row_key.value)))
