"""Terminal output: the one output layer of the CLI. Library code never prints.

- Results go to stdout (``out``, ``table``, ``kv_table``, ``print_json``); messages, errors and
  progress go to stderr (``info``, ``error``, ``progress``, ``activity``).
- On a terminal, tables are rich tables and long steps show one rich progress display. When
  stdout is not a terminal, tables are plain aligned lines and nothing is wrapped or cut (an
  identifier is never split across lines); when stderr is not a terminal, long steps print a
  short heartbeat line every ``HEARTBEAT_S`` seconds instead of a bar.
- ``NO_COLOR`` and ``-q/--quiet`` apply to everything here, the ``error:`` line included.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence

from rich.console import Console
from rich.markup import escape

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

#: Seconds between heartbeat lines when stderr is not a terminal.
HEARTBEAT_S = 10.0
#: A step that took longer than this prints a last heartbeat line when it ends (not a terminal).
SLOW_STEP_S = 2.0

_quiet = False
_printed_json = False


def set_quiet(quiet: bool) -> None:
    """``-q/--quiet``: no progress, no heartbeats, no informational messages (results and errors stay).

    Called once per command (by the root group), so it also starts the command's output state afresh.
    """
    global _quiet, _printed_json
    _quiet = quiet
    _printed_json = False


def is_quiet() -> bool:
    return _quiet


def silence_third_party_progress() -> None:
    """Turn off the tqdm bars of huggingface_hub, transformers and friends: llmpatch shows its own."""
    from llmpatch import paths

    paths.silence_third_party_progress_bars()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


# --- results (stdout) ------------------------------------------------------------------------

def out(text: str = "", *, markup: bool = True, end: str = "\n") -> None:
    """One line (or more) of results on stdout. Never wrapped by rich: identifiers stay whole."""
    console.print(text, markup=markup, soft_wrap=True, end=end)


def print_json(data: Any) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout, nothing else."""
    global _printed_json
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
    _printed_json = True


def printed_json() -> bool:
    """Whether this command already printed its JSON result (a later error then stays on stderr only)."""
    return _printed_json


def _cell(v: Any) -> str:
    return "" if v is None else str(v)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None,
          no_wrap: Sequence[str] = ()) -> None:
    """A table: a rich table on a terminal, plain aligned columns (no wrapping) otherwise.

    Plain form: the title line, a header line, one line per row with columns separated by at
    least two spaces (the last column unpadded), then the caption line. Cells are not marked up.
    ``no_wrap`` names columns holding identifiers, which a terminal table must not fold.
    """
    rows = [[_cell(v) for v in r] for r in rows]
    if not console.is_terminal:
        lines = [title] if title else []
        grid = [list(columns), *rows]
        widths = [max(len(r[i]) for r in grid) for i in range(len(columns))]
        for r in grid:
            cells = [c.ljust(w) for c, w in zip(r[:-1], widths[:-1])] + [r[-1]]
            lines.append("  ".join(cells).rstrip())
        if caption:
            lines.append(caption)
        for line in lines:
            console.print(line, markup=False, soft_wrap=True)
        return
    from rich.table import Table

    t = Table(title=title and escape(title), caption=caption and escape(caption), show_lines=False)
    for c in columns:
        t.add_column(c, no_wrap=c in no_wrap)
    for r in rows:
        t.add_row(*(escape(c) for c in r))
    console.print(t)


def kv_table(title: str | None, pairs: Iterable[tuple[str, Any]]) -> None:
    """Key/value pairs: a two-column table on a terminal, ``key: value`` lines otherwise."""
    pairs = [(str(k), _cell(v)) for k, v in pairs]
    if not console.is_terminal:
        if title:
            console.print(title, markup=False, soft_wrap=True)
        for k, v in pairs:
            console.print(f"{k.strip()}: {v}", markup=False, soft_wrap=True)
        return
    table(title, ["field", "value"], pairs, no_wrap=["value"])


# --- messages (stderr) -----------------------------------------------------------------------

def info(message: str, *, style: str | None = "yellow") -> None:
    """A message for the person at the terminal (stderr); silent under ``--quiet``."""
    if not _quiet:
        err_console.print(message, style=style, markup=False, soft_wrap=True)


def error(message: str, hint: str | None = None) -> None:
    """The ``error: ...`` / ``hint: ...`` lines on stderr (colour only where rich allows: NO_COLOR)."""
    err_console.print(f"error: {message}", style="red", markup=False, soft_wrap=True)
    if hint:
        err_console.print(f"hint: {hint}", markup=False, soft_wrap=True)


# --- progress (stderr) -----------------------------------------------------------------------

def _fmt_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _command_name() -> str:
    """The running command's name for heartbeat lines, e.g. ``verify`` or ``base show``."""
    try:
        import click

        ctx = click.get_current_context(silent=True)
    except Exception:  # pragma: no cover - click is always there for the CLI
        ctx = None
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names)) or "llmpatch"


class _Task:
    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self.t0 = time.monotonic()
        self.rich_id: Any = None
        self.command = _command_name()  # here: the heartbeat thread has no click context

    def count(self) -> str:
        """``40/96 prompts``, or nothing for a step without a total."""
        return f"{self.done}/{self.total}{' ' + self.unit if self.unit else ''}" if self.total is not None else ""

    def line(self) -> str:
        count = f"{self.count()}, " if self.total is not None else ""
        return f"[{self.command}] {self.description}: {count}{_fmt_duration(time.monotonic() - self.t0)}"


class _Display:
    """One display for every active task: rich progress on a terminal, a heartbeat thread otherwise.

    Tasks may nest (a spinner around a step that has a bar): they share one live display, since
    rich allows only one at a time.
    """

    def __init__(self) -> None:
        self.tasks: list[_Task] = []
        self.lock = threading.Lock()
        self.rich: Any = None
        self.stop: threading.Event | None = None
        self.thread: threading.Thread | None = None

    def start(self, task: _Task) -> None:
        with self.lock:
            first = not self.tasks
            self.tasks.append(task)
            if err_console.is_terminal:
                if first:
                    from rich.progress import (
                        BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
                    )

                    self.rich = Progress(
                        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.fields[count]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=err_console, transient=True,
                    )
                    self.rich.start()
                task.rich_id = self.rich.add_task(escape(task.description), total=task.total, count=task.count())
            elif first:
                self.stop = threading.Event()
                self.thread = threading.Thread(target=self._beat, args=(self.stop,), daemon=True)
                self.thread.start()

    def advance(self, task: _Task, n: int) -> None:
        task.done += n
        if task.rich_id is not None and self.rich is not None:
            self.rich.update(task.rich_id, completed=task.done, count=task.count())

    def finish(self, task: _Task) -> None:
        with self.lock:
            self.tasks.remove(task)
            if task.rich_id is not None and self.rich is not None:
                self.rich.remove_task(task.rich_id)
            elif time.monotonic() - task.t0 > SLOW_STEP_S:
                err_console.print(task.line() + " done", markup=False, soft_wrap=True, highlight=False)
            if self.tasks:
                return
            if self.rich is not None:
                self.rich.stop()
                self.rich = None
            if self.stop is not None:
                self.stop.set()
                self.stop = self.thread = None

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            with self.lock:
                lines = [t.line() for t in self.tasks]
            for line in lines:
                err_console.print(line, markup=False, soft_wrap=True, highlight=False)


_display = _Display()


@contextmanager
def progress(description: str, total: int | None, *, enabled: bool = True, unit: str = "prompts") -> Iterator[Callable[..., None]]:
    """Progress of a long step on stderr; yields ``advance(n=1)``.

    A rich bar on a terminal; otherwise a heartbeat line such as
    ``[verify] toxicity: patched: 40/96 prompts, 1m12s`` every ``HEARTBEAT_S`` seconds. Silent when
    ``enabled`` is false (``--json``), under ``--quiet``, or for an empty step.
    """
    if not enabled or _quiet or total == 0:
        yield lambda n=1: None
        return
    task = _Task(description, total, unit)
    _display.start(task)
    try:
        yield lambda n=1: _display.advance(task, n)
    finally:
        _display.finish(task)


@contextmanager
def activity(description: str, *, enabled: bool = True) -> Iterator[None]:
    """A step without a count (loading or converting a model): a spinner, or heartbeat lines."""
    if not enabled or _quiet:
        yield
        return
    task = _Task(description, None, "")
    _display.start(task)
    try:
        yield
    finally:
        _display.finish(task)


class TextStream:
    """Prints generated text as it arrives (the CLI's TextStreamer): decode all tokens so far, print the new part.

    Decoding the whole sequence each time keeps multi-byte characters and merged word pieces
    right; a trailing replacement character (half a UTF-8 sequence) waits for the next token.
    """

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self.decode = decode
        self.ids: list[int] = []
        self.shown = 0

    def __call__(self, token_id: int) -> None:
        self.ids.append(token_id)
        text = self.decode(self.ids)
        if text.endswith("\ufffd"):
            return
        new = text[self.shown:]
        if new:
            console.print(new, end="", markup=False, highlight=False, soft_wrap=True)
            console.file.flush()
            self.shown = len(text)

    def end(self, final: str) -> None:
        """Print the rest of ``final`` (the whole decoded text) not shown yet, and end the line."""
        console.print(final[self.shown:], markup=False, highlight=False, soft_wrap=True)
