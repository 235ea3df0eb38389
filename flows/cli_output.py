"""How `ebops` prints tables: one helper for every command, so a pipe or a log reads as well as a terminal.

On a terminal rich fits a table to the window. Anywhere else (a pipe, `make demo | tee`, a cron
log) rich would assume 80 columns and fold Chinese text and bundle prefixes into unreadable
columns; there a table is printed at its natural width instead, and plain lines are never broken.
`--format tsv|json` gives the same rows to scripts: keys, prefixes and URLs are never cut.
"""
from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Any, Sequence

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


class OutputFormat(str, Enum):
    table = "table"
    tsv = "tsv"
    json = "json"


FormatOpt = typer.Option(OutputFormat.table, "--format", "-f", case_sensitive=False,
                         help="table (for people), tsv or json (for scripts; nothing cut or wrapped)")

# Wider than any real table: what "no limit" means to rich's layout.
_UNLIMITED = 100_000


def make_console(stderr: bool = False) -> Console:
    """A console that breaks no line it did not write itself when it is not a terminal."""
    c = Console(stderr=stderr)
    c.soft_wrap = not c.is_terminal
    return c


def print_table(console: Console, table: Table) -> None:
    """A terminal: fitted to the window. Elsewhere: at the table's natural width, nothing folded."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(_UNLIMITED), table).maximum
    # print(width=) is capped at the console's width (80 off a terminal): a console as wide as the table.
    wide = Console(file=console.file, width=max(natural, console.width))
    wide.print(table, crop=False)


def _tsv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def emit(fmt: OutputFormat, console: Console, *, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
         data: Any, notes: Sequence[str] = (), cell_styles: dict[str, dict[str, str]] | None = None,
         no_wrap: Sequence[str] = ()) -> None:
    """Print rows as a table, TSV or JSON.

    `data` is the JSON document (the rows and whatever belongs with them); `notes` are the lines
    printed after a table (in TSV as `# ` comment lines, so the rows stay machine-readable);
    `cell_styles[column][value]` colours a cell in the table only; `no_wrap` columns hold keys that
    must be copied whole (never folded, even on a narrow terminal).
    """
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    if fmt is OutputFormat.tsv:
        lines = ["\t".join(columns)] + ["\t".join(_tsv_cell(v) for v in row) for row in rows]
        lines += [f"# {n}" for n in notes]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    table = Table(title=title)
    styles = cell_styles or {}
    for col in columns:
        if col in no_wrap:
            table.add_column(col, no_wrap=True, min_width=max((len(str(r[columns.index(col)])) for r in rows), default=4))
        else:
            table.add_column(col, overflow="fold")
    for row in rows:
        cells = []
        for col, v in zip(columns, row):
            text = "" if v is None else str(v)
            # Text, not markup: a reason may hold "[...]" that rich would take for a style.
            cells.append(Text(text, style=styles.get(col, {}).get(text, "")))
        table.add_row(*cells)
    print_table(console, table)
    for n in notes:
        console.print(n, soft_wrap=True, markup=False, highlight=False)
