"""How the CLI prints, with rich: tables and a progress bar for people, JSON with --json.
rich is imported when something is printed, not when the CLI starts (`taskbeat serve`
prints nothing with it)."""

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

# Piped output is not cut to a terminal's width: a task id stays whole for grep and awk.
PIPE_WIDTH = 1000


def console() -> "Console":
    """Standard output as rich sees it now (colours and width only on a terminal)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH, highlight=False)


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def cell(value: Any) -> str:
    """One value as a table cell: `-` for none, JSON for structures."""
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(getattr(value, "value", value))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Columns under a header line; cells never wrap."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, no_wrap=True)
    for row in rows:
        table.add_row(*(cell(value) for value in row))
    console().print(table)


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """Name and value, one pair a line, the values aligned."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in fields:
        grid.add_row(name, cell(value))
    console().print(grid)


class ProgressBar:
    """A task's progress bar, redrawn in place and cleared when done; only on a terminal."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self._progress = Progress(
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[status]}"),
            console=console(),
            transient=True,
        )
        self._bar = self._progress.add_task("task", total=100, status="")

    def __enter__(self) -> "ProgressBar":
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def draw(self, progress: int, status: str) -> None:
        self._progress.update(self._bar, completed=max(0, min(progress, 100)), status=status)


def print_items(items: Sequence[dict[str, Any]], columns: Sequence[str], *, as_json: bool) -> None:
    """A list answer `{"items": [...]}`: as JSON, or a table of `columns`."""
    if as_json:
        emit_json({"items": list(items)})
    else:
        rows = [tuple(item.get(column) for column in columns) for item in items]
        print_table(tuple(column.upper() for column in columns), rows)
