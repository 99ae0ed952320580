"""bench/proof_memory.py: the proof's memory notes count this process and its children, and a run past the
limit is stopped in the main thread (the full proof was once OOM-killed at ~23 GB)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bench import proof_memory

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc")


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A child holding ~50 MB."""
    code = "b = bytearray(50_000_000); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 20
    while proof_memory.rss_mb(process.pid) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield process
    process.kill()
    process.wait()


def test_rss_of_this_process_and_of_none() -> None:
    assert proof_memory.rss_mb(os.getpid()) > 1
    assert proof_memory.rss_mb(2**22 + 12345) == 0.0  # above pid_max's default: no such process


def test_children_are_found_and_counted(child: subprocess.Popen[bytes]) -> None:
    assert child.pid in proof_memory.descendants(os.getpid())
    watch = proof_memory.MemoryWatch(limit_mb=None)
    watch.sample()
    usage = watch.mark()
    assert usage.children_peak >= 50 and usage.harness_peak >= usage.harness_now > 1
    assert "function workers peak" in usage.note()


def test_peaks_start_again_at_each_mark(child: subprocess.Popen[bytes]) -> None:
    watch = proof_memory.MemoryWatch(limit_mb=None)
    assert watch.mark().children_peak >= 50
    child.kill()
    child.wait()
    watch.mark()  # the stretch in which the child died still saw it
    assert watch.mark().children_peak == 0


def test_past_the_limit_the_main_thread_is_interrupted() -> None:
    # As in `python bench/proof.py`: Python's own SIGINT handler (a pytest-xdist worker ignores SIGINT, and
    # interrupt_main does nothing for an ignored signal).
    # interrupt_main raises in the main thread at its next bytecode, not inside a blocking call: the main
    # thread works in short steps, as the proof's harness does, for at most 5 s.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    # any Python process is over 1 MB
    watch = proof_memory.MemoryWatch(limit_mb=1, sample_seconds=0.01).start()
    deadline = time.monotonic() + 5
    try:
        with pytest.raises(KeyboardInterrupt):
            while time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        watch.stop()
        signal.signal(signal.SIGINT, previous)
    assert watch.exceeded is not None and watch.exceeded > 1
