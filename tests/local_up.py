"""`trailwatch local up` in a child process, for the tests that check the command itself."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

CODE = "from trailwatch.local.commands import local_group; local_group()"


@contextmanager
def local_up(*args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """Start `local up ARGS` and read its output up to the "Press Ctrl-C" line: (the child, the lines).
    The child is killed on the way out if it still runs."""
    child = subprocess.Popen(
        [sys.executable, "-c", CODE, "up", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("Press Ctrl-C") for line in lines):
            line = child.stdout.readline()
            assert line, f"`local up` exited early: {''.join(lines)}"
            lines.append(line)
        yield child, lines
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=20)
