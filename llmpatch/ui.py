"""Terminal output: one rich console, tables, progress bars, JSON. Library code never prints."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None) -> None:
    """Print a rich table."""
    t = Table(title=title, caption=caption, show_lines=False)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    console.print(t)


def kv_table(title: str | None, pairs: Iterable[tuple[str, Any]]) -> None:
    """Print a two-column key/value table."""
    table(title, ["field", "value"], pairs)


@contextmanager
def progress(description: str, total: int | None, *, enabled: bool = True) -> Iterator[Any]:
    """A progress bar on stderr; yields ``advance(n)``. Disabled (no output) when not a terminal."""
    if not enabled or total == 0:
        yield lambda n=1: None
        return
    prog = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False,
        disable=not err_console.is_terminal,
    )
    with prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)
