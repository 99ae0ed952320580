"""One background thread that runs a task every few seconds: the loop of the local AWS's services.

CloudTrail delivery (`recorder`), alarm evaluation (`alarms`) and event source mapping discovery
(`lambda_runtime`) each run one. A task that raises is reported to `on_error` and the loop goes on: the
emulator must keep serving whatever one pass got wrong.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class PeriodicThread:
    """Calls `task` every `interval` seconds in a daemon thread, from `start()` until `stop()`.

    With `immediately`, the first call is at start; otherwise one interval later. `interval` is read at each
    wait, so a service may change it while running.
    """

    name: str
    interval: float
    task: Callable[[], object]
    on_error: Callable[[Exception], None]
    immediately: bool = field(default=False, kw_only=True)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start the loop (no-op when it runs already)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """End the loop, waiting up to `timeout` seconds for a call in progress to return."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def _run(self) -> None:
        if self.immediately:
            self._call()
        while not self._stop.wait(self.interval):
            self._call()

    def _call(self) -> None:
        try:
            self.task()
        except Exception as err:
            self.on_error(err)
