"""Local Lambda runtime for SQS event source mappings (work in progress skeleton)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

LogFn = Callable[[str], None]


def disable_moto_lambda_docker() -> None:
    """Stop moto's SQS from invoking mapped Lambda functions through Docker (idempotent)."""


class LambdaRuntime:
    """Polls each SQS event source mapping like the Lambda service and runs the function locally."""

    def __init__(self, endpoint: str, region: str, log: LogFn | None = None) -> None:
        self.endpoint = endpoint
        self.region = region
        self.log: LogFn = log or logging.getLogger(__name__).info
        self._stop = threading.Event()

    def start(self) -> None:
        self._stop.clear()

    def stop(self) -> None:
        self._stop.set()

    def __enter__(self) -> LambdaRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
