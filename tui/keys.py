"""The keys: one list that the footer, the `?` help and the command palette all read."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class Key:
    key: str  # Textual's name of the key
    shown: str  # how people see it
    action: str  # an action of the main screen (or ``app.…``)
    label: str  # the footer's word, and the palette's title
    help: str  # one line for `?` and the palette


KEYS: tuple[Key, ...] = (
    Key("u", "u", "up", "Up", "Build the branch's changed services and run them beside the baseline"),
    Key("d", "d", "down", "Down", "Remove the selected environment"),
    Key("s", "s", "sync", "Sync", "Turn live sync of the branch's files on or off"),
    Key("o", "o", "open_preview", "Open", "Open the selected environment's preview URL in the browser"),
    Key("y", "y", "copy_preview", "Copy URL", "Copy the selected environment's preview URL"),
    Key("p", "p", "promote", "Promote", "Promote the selected service to the next tier (shows the diff first)"),
    Key("b", "b", "rollback", "Rollback", "Roll back the selected service's latest promotion or strategy step (shows the diff first)"),
    Key("c", "c", "canary", "Canary", "Tiers tab: start the service's canary in the tier under the cursor, "
        "or take it to the preset's next step (shows the diff first)"),
    Key("w", "w", "switch", "Switch", "Tiers tab: send all of the service's traffic in that tier to its "
        "candidate (shows the diff first)"),
    Key("slash", "/", "filter_logs", "Filter", "Filter the logs (or, in the Traffic tab, the requests) as you "
        "type (esc leaves the filter)"),
    Key("f", "f", "follow", "Follow", "Follow the logs, or pause them where they are"),
    Key("r", "r", "refresh", "Refresh", "Read environments, routes and tiers again"),
    Key("question_mark", "?", "app.help", "Help", "Show these keys"),
    Key("q", "q", "app.quit", "Quit", "Quit (environments keep running)"),
)

TABS: tuple[tuple[str, str, str], ...] = (
    ("1", "routing", "Routing"),
    ("2", "tiers", "Tiers"),
    ("3", "logs", "Logs"),
    ("4", "traffic", "Traffic"),
    ("5", "activity", "Activity"),
)


def bindings() -> list[BindingType]:
    out: list[BindingType] = [Binding(k.key, k.action, k.label, key_display=k.shown) for k in KEYS]
    out += [Binding(key, f"show_tab('{tab}')", f"{title} tab", show=False) for key, tab, title in TABS]
    return out
