"""How the CLI prints: compact tables for people, JSON with --json."""

import json
from collections.abc import Sequence
from typing import Any


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
    """Left-aligned columns, two spaces apart."""
    cells = [[cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print(
            "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        )
