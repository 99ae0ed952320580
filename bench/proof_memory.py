"""Memory of a proof run: this process (the harness and the local AWS it serves) and its children (the
function's worker processes), sampled from /proc, reported per scenario and bounded.

The full proof was once OOM-killed at ~23 GB although every scenario passed alone: memory that grows across
scenarios shows here as the harness's resident size at the end of each one. ``MemoryWatch`` also stops the
run (KeyboardInterrupt in the main thread, so the harness still closes) when this process and its children
pass ``limit_mb`` together, rather than let the machine's OOM killer pick a victim. Linux only; elsewhere it
reports nothing.
"""

from __future__ import annotations

import _thread
import os
import threading
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LIMIT_MB = 12_000  # half of the 24 GB machine the proof runs on
SAMPLE_SECONDS = 0.5


def rss_mb(pid: int) -> float:
    """Resident size of one process in MB (0 when it is gone or /proc is not there)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1_000_000
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (/proc/<pid>/task/<tid>/children, recursively)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found += children
            pending += children
    return found


@dataclass(frozen=True)
class Usage:
    """Memory over one stretch of the run, in MB."""

    harness_now: float  # this process at the end of the stretch
    harness_peak: float
    children_peak: float  # the function's workers together, at their highest sample

    def note(self) -> str:
        return (
            f"memory: harness {self.harness_now:,.0f} MB at the end (peak {self.harness_peak:,.0f} MB), "
            f"function workers peak {self.children_peak:,.0f} MB"
        )


class MemoryWatch:
    """Samples this process and its children every ``sample_seconds`` in a daemon thread."""

    def __init__(
        self,
        limit_mb: float | None = DEFAULT_LIMIT_MB,
        pid: int | None = None,
        sample_seconds: float = SAMPLE_SECONDS,
    ) -> None:
        self.limit_mb = limit_mb
        self.pid = pid or os.getpid()
        self.sample_seconds = sample_seconds
        self.exceeded: float | None = None  # the total that stopped the run
        self._lock = threading.Lock()
        self._harness_peak = 0.0
        self._children_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proof-memory", daemon=True)

    def start(self) -> MemoryWatch:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> tuple[float, float]:
        """(this process, its children together) now, in MB; peaks updated."""
        harness = rss_mb(self.pid)
        children = sum(rss_mb(child) for child in descendants(self.pid))
        with self._lock:
            self._harness_peak = max(self._harness_peak, harness)
            self._children_peak = max(self._children_peak, children)
        return harness, children

    def mark(self) -> Usage:
        """Usage since the previous mark (or the start); the peaks start again from now."""
        harness, children = self.sample()
        with self._lock:
            usage = Usage(harness, self._harness_peak, self._children_peak)
            self._harness_peak, self._children_peak = harness, children
        return usage

    def _run(self) -> None:
        while not self._stop.wait(self.sample_seconds):
            harness, children = self.sample()
            if self.limit_mb is not None and harness + children > self.limit_mb and self.exceeded is None:
                self.exceeded = harness + children
                _thread.interrupt_main()
