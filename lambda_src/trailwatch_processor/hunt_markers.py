"""The hunt's file markers (hunt.marker_item) of one SQS batch, written together after it: one
BatchWriteItem per 25 files instead of a PutItem per file. A marker that cannot be written fails its message,
which is retried (rewriting a marker is harmless: see hunt.marker_item)."""

from __future__ import annotations

import logging
import time

from . import store
from .deps import Deps

log = logging.getLogger(__name__)

BATCH_WRITE_MAX = 25
BATCH_WRITE_ATTEMPTS = 6  # rounds for UnprocessedItems (throttling)

# The markers of the current batch (one invocation at a time per container), by the message that hunted
# the file.
_markers: list[tuple[str, store.Item]] = []


def queue(message_id: str, item: store.Item) -> None:
    """Keep a file's marker for ``flush`` at the end of the batch."""
    _markers.append((message_id, item))


def flush(deps: Deps) -> list[str]:
    """Write the queued markers (BatchWriteItem, 25 at a time, unprocessed ones again with backoff); the
    message ids whose marker could not be written, to be reported as batch item failures (retried)."""
    queued, _markers[:] = list(_markers), []
    if not queued:
        return []
    by_id: dict[str, tuple[list[str], store.Item]] = {}
    for message_id, item in queued:  # one file twice in a batch: one put (BatchWriteItem refuses duplicates)
        ids, _ = by_id.get(item["EventId"]["S"], ([], item))
        by_id[item["EventId"]["S"]] = ([*ids, message_id], item)
    entries = list(by_id.items())
    failed: list[str] = []
    table = deps.settings.events_table
    for start in range(0, len(entries), BATCH_WRITE_MAX):
        chunk = entries[start : start + BATCH_WRITE_MAX]
        request = {table: [{"PutRequest": {"Item": item}} for _, (_, item) in chunk]}
        try:
            for attempt in range(BATCH_WRITE_ATTEMPTS):
                request = deps.dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
        except Exception as err:
            log.error(
                "hunt: writing %d file marker(s) failed: %s; their messages are retried", len(chunk), err
            )
            failed.extend(m for _, (ids, _) in chunk for m in ids)
            continue
        if request:
            left = {r["PutRequest"]["Item"]["EventId"]["S"] for r in request.get(table, [])}
            failed.extend(m for marker, (ids, _) in chunk if marker in left for m in ids)
    return failed
