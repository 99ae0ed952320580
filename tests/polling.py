"""Waiting for something a background thread or process does (the local AWS delivers asynchronously)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(
    predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition", interval: float = 0.1
) -> Any:
    """Call `predicate` every `interval` seconds until it returns something truthy (returned); fail after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
