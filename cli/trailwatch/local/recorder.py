"""CloudTrail for the local AWS: a record for each request moto serves, delivered per trail into S3.

Skeleton: the interface LocalAWS codes against. The body follows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


class CloudTrailRecorder:
    """Records each served request and delivers the records to the emulator's trails every `interval` s."""

    def __init__(
        self,
        region: str,
        account_id: str,
        *,
        interval: float = 5.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.interval = interval
        self.log = log
        self._lock = threading.Lock()
        self._pending: list[dict] = []

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """A WSGI middleware around `app` that records each request it serves."""
        return app

    def start(self) -> None:
        """Start periodic delivery."""

    def stop(self) -> None:
        """Stop periodic delivery (delivering what is pending)."""

    def flush(self) -> None:
        """Deliver pending records now."""
