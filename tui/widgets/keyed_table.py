"""A DataTable refreshed by row key: what changed is updated, the rest stays where it is."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

Cell = Text | str
KeyedRow = tuple[str, Sequence[Cell]]


def same_cell(a: object, b: object) -> bool:
    """Whether two cells look the same (rich's ``Text ==`` ignores the text's own style)."""
    if isinstance(a, Text) and isinstance(b, Text):
        return (a.plain, a.style, a.spans) == (b.plain, b.style, b.spans)
    return type(a) is type(b) and a == b


class KeyedTable(DataTable[Cell]):
    """Rows set with ``set_rows``: each row has a key, and a refresh that brings the same rows
    updates only the cells that changed. The cursor stays on its row's key and the scroll
    position stays put; rows whose key is gone are removed.

    A DataTable only appends rows, so when a new key belongs between existing rows, the rows
    from there on are added again in order (the cursor follows its key)."""

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor; None while the table is empty."""
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def set_rows(self, rows: Sequence[KeyedRow]) -> None:
        """Make the table show ``rows``, in this order."""
        wanted = [key for key, _ in rows]
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"duplicate row keys in {wanted}")
        at_cursor = self.cursor_key
        for row in list(self.ordered_rows):
            if row.key.value not in wanted:
                self.remove_row(row.key)
        current = [str(row.key.value) for row in self.ordered_rows]
        in_place = 0
        while in_place < min(len(current), len(wanted)) and current[in_place] == wanted[in_place]:
            in_place += 1
        for key in current[in_place:]:
            self.remove_row(key)  # a new row goes before it: it is added again below
        columns = [column.key for column in self.ordered_columns]
        for key, cells in rows[:in_place]:
            shown = self.get_row(key)
            for column, old, new in zip(columns, shown, cells):
                if not same_cell(old, new):
                    self.update_cell(key, column, new)
        for key, cells in rows[in_place:]:
            self.add_row(*cells, key=key)
        if at_cursor in wanted:
            index = self.get_row_index(RowKey(at_cursor))
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)
