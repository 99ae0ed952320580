"""The loop of the local AWS's services: it goes on past a failing pass and stops on request."""

from __future__ import annotations

import threading

import pytest
from trailwatch.local.periodic import PeriodicThread


class Task:
    """Counts its calls; the first `failures` calls raise."""

    def __init__(self, failures: int = 0) -> None:
        self.calls = 0
        self.failures = failures
        self.errors: list[str] = []
        self.called = threading.Event()
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.calls += 1
            failing = self.calls <= self.failures
        if failing:
            raise RuntimeError(f"pass {self.calls} broke")
        self.called.set()

    def on_error(self, err: Exception) -> None:
        self.errors.append(str(err))


def test_failing_passes_are_reported_and_the_loop_goes_on() -> None:
    task = Task(failures=2)
    loop = PeriodicThread("test-loop", 0.01, task, task.on_error)
    loop.start()
    assert task.called.wait(5)
    loop.stop(timeout=5)
    assert task.errors[:2] == ["pass 1 broke", "pass 2 broke"]
    assert not loop.running


class FirstWait(threading.Event):
    """The loop's stop event: tells when the loop first waits an interval, and for how long."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        self.waiting.set()
        return super().wait(timeout)


@pytest.mark.parametrize(("immediately", "first_call"), [(True, True), (False, False)])
def test_first_call_at_start_only_when_asked(immediately: bool, first_call: bool) -> None:
    """A barrier instead of a wait: the calls made by the time the loop first waits its interval (60 s,
    longer than the test) are the calls at start."""
    task = Task()
    loop = PeriodicThread("test-loop", 60.0, task, task.on_error, immediately=immediately)
    loop._stop = stop = FirstWait()
    loop.start()
    assert stop.waiting.wait(5)
    assert task.called.is_set() is first_call
    assert stop.timeouts == [60.0]
    loop.stop(timeout=5)
    assert task.calls == int(first_call)


def test_start_twice_runs_one_loop_and_stop_ends_it() -> None:
    task = Task()
    loop = PeriodicThread("test-loop-once", 60.0, task, task.on_error, immediately=True)
    loop.start()
    loop.start()
    assert task.called.wait(5)
    assert [t.name for t in threading.enumerate()].count("test-loop-once") == 1
    loop.stop(timeout=5)
    assert "test-loop-once" not in [t.name for t in threading.enumerate()]
    assert task.calls == 1
