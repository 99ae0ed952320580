"""All terminal output of the CLI goes through one UI object (click.echo underneath).

With `--json`, stdout carries only JSON; progress and messages go to stderr.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

CHECK_MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


class UI:
    def __init__(
        self, verbose: int = 0, json_mode: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.verbose = verbose
        self.json_mode = json_mode
        self.clock = clock
        self.started = clock()

    # -- plain messages -------------------------------------------------------------------------
    def _human(self, text: str, err: bool = False) -> None:
        click.echo(text, err=err or self.json_mode)

    def info(self, text: str) -> None:
        self._human(text)

    def debug(self, text: str) -> None:
        if self.verbose:
            self._human(click.style(f"debug: {text}", dim=True), err=True)

    def step(self, text: str) -> None:
        """Start of a phase of a long command."""
        self._human(click.style(f"==> {text}", bold=True))

    def elapsed(self) -> float:
        return self.clock() - self.started

    def progress(self, text: str, since: float | None = None) -> None:
        """One progress line with the elapsed time (of the command, or since `since`)."""
        seconds = self.clock() - (self.started if since is None else since)
        self._human(f"  [{_format_seconds(seconds):>6}] {text}")

    # -- progress bar (trailwatch hunt) -------------------------------------------------------------
    def live(self) -> bool:
        """Whether progress goes to a terminal (redrawn in place) rather than a log (one line per call)."""
        stream = sys.stderr if self.json_mode else sys.stdout
        return bool(getattr(stream, "isatty", lambda: False)())

    def bar(self, done: int, total: int, text: str = "", width: int = 30) -> None:
        """``[#####.....]  50.0% text``: redrawn in place on a terminal, else one line per call."""
        fraction = min(done / total, 1.0) if total else 1.0
        filled = int(width * fraction)
        line = f"  [{'#' * filled}{'.' * (width - filled)}] {fraction:6.1%} {printable(text)}"
        if self.live():
            click.echo("\r" + line + "\x1b[K", nl=False, err=self.json_mode)
            self._bar_open = True
        else:
            click.echo(line, err=self.json_mode)

    def bar_end(self) -> None:
        """End a bar redrawn in place (a newline), nothing otherwise."""
        if getattr(self, "_bar_open", False):
            click.echo("", err=self.json_mode)
            self._bar_open = False

    def success(self, text: str) -> None:
        self._human(click.style(text, fg="green"))

    def warn(self, text: str) -> None:
        click.echo(click.style(f"Warning: {text}", fg="yellow"), err=True)

    def error(self, text: str, hint: str | None = None, details: Iterable[str] = ()) -> None:
        click.echo(click.style(f"Error: {text}", fg="red"), err=True)
        for line in details:
            click.echo(f"  {line}", err=True)
        if hint:
            click.echo(f"Hint: {hint}", err=True)

    # -- structured output ------------------------------------------------------------------------
    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Aligned text columns: the command's result on stdout (on stderr when stdout carries JSON)."""
        for line in format_table(headers, rows):
            click.echo(line, err=self.json_mode)

    def json(self, obj: Any) -> None:
        """One JSON document (or JSON line) to stdout."""
        click.echo(json.dumps(obj, default=str, sort_keys=False))

    def check(self, status: str, name: str, reason: str) -> None:
        colour = {"pass": "green", "warn": "yellow", "fail": "red"}.get(status)
        mark = click.style(f"{CHECK_MARKS.get(status, status.upper()):<4}", fg=colour, bold=True)
        self._human(f"  {mark}  {name}: {reason}")


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return lines


# C0/C1 controls and DEL: ESC/CSI sequences from stored records would drive the terminal (clear it, move the
# cursor over earlier lines, set its title); line and paragraph separators would forge rows.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with each control character escaped (``\\x1b``, ``\\n``), never sent to the terminal."""
    return _CONTROL_RE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return printable(",".join(str(v) for v in value)) or "-"
    return printable(str(value))


def _format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"
