"""Events written, and marked sent, up to 100 per DynamoDB call (many matches in one file).

One conditional PutItem per new event and one UpdateItem per alerted event made ~2 round trips per event:
12,000 matches could not be stored within a 30 s function. Both now go through TransactWriteItems, whose
actions keep their own conditions:

- ``put_new_events``: each item is a Put with ``attribute_not_exists(EventId)`` (never resets a stored
  item: BatchWriteItem takes no condition). When one already exists, DynamoDB cancels the whole transaction
  and says why per action (``CancellationReasons``, in action order): ``ConditionalCheckFailed`` (the stored
  item with ``ALL_OLD``) is an existing event, handled as such; ``None`` (not written because of another),
  ``TransactionConflict`` and ``ThrottlingError`` are sent again; another reason (``ValidationError``: the
  table refuses that item) falls back to one PutItem for that item, so that the error names its record.
- ``mark_sent_many``: each id is an Update ``sending`` -> ``sent`` conditioned on our claim token; a
  ``ConditionalCheckFailed`` means the claim was taken over (it had gone stale), as with ``store.mark_sent``.

AWS limits respected (TransactWriteItems): at most 100 actions, 4 MB of items in all, each item once per
transaction (callers pass distinct EventIds; duplicates are dropped here). A transactional write costs twice
the write units of a plain one. botocore fills ``ClientRequestToken`` (idempotency) once per call, so its
own retries of a call that DynamoDB had applied do not cancel; for a later try (or a service that ignores the
token) an existing item whose ``alert_claim`` is the one being written is recognised as ours.

A transaction that keeps being cancelled for conflicts or throttling falls back to the single-item calls
(store.put_event / store.mark_sent) after ``TRANSACT_ATTEMPTS`` tries: slower, never wrong.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from . import store
from .store import Item

log = logging.getLogger(__name__)

TRANSACT_MAX_ACTIONS = 100  # TransactWriteItems: at most 100 actions...
TRANSACT_MAX_BYTES = (
    4_000_000 - 100 * store.ITEM_MARGIN_BYTES
)  # ...and 4 MB of items (item_size is an estimate)
TRANSACT_ATTEMPTS = 5  # tries of one group while its actions are cancelled for conflicts or throttling
RETRIED_REASONS = frozenset(
    {"None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)
CONFLICT_REASONS = RETRIED_REASONS - {"None"}
_MARK_SENT = "SET alert_status = :sent, alert_message_id = :mid, alerted_at = :now"  # as store.mark_sent


@dataclass(frozen=True)
class Written:
    """What became of one item given to ``put_new_events``."""

    created: bool  # written now, by this call
    item: Item | None  # ours when created, else the stored one; None when ``error``
    error: Exception | None = None  # the table refused this item (its PutItem's error)


def put_new_events(ddb: Any, table: str, items: Sequence[Item]) -> dict[str, Written]:
    """Write each item unless its EventId is stored already, up to 100 per TransactWriteItems; returns what
    became of each, by EventId. Raises what a retry may cure (throttling that outlasts botocore's retries,
    a missing table); an error of one item's own is returned in its ``Written``."""
    unique = list({item["EventId"]["S"]: item for item in items}.values())
    results: dict[str, Written] = {}
    for group in transact_groups(unique):
        _put_group(ddb, table, group, results)
    return results


def transact_groups(items: Sequence[Item]) -> Iterator[list[Item]]:
    """``items`` in order, cut into groups of at most 100 whose sizes add up to at most TRANSACT_MAX_BYTES."""
    group: list[Item] = []
    size = 0
    for item in items:
        item_bytes = store.item_size(item)
        if group and (len(group) == TRANSACT_MAX_ACTIONS or size + item_bytes > TRANSACT_MAX_BYTES):
            yield group
            group, size = [], 0
        group.append(item)
        size += item_bytes
    if group:
        yield group


def _put_group(ddb: Any, table: str, group: list[Item], results: dict[str, Written]) -> None:
    remaining = group
    for attempt in range(TRANSACT_ATTEMPTS):
        actions = [
            {
                "Put": {
                    "TableName": table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(EventId)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            for item in remaining
        ]
        try:
            reasons = _transact(ddb, actions)
        except ClientError as err:
            if _code(err) not in ("ValidationException", "TransactionCanceledException"):
                raise
            # The request refused as a whole, or reasons we cannot match: one by one finds the item.
            _put_one_by_one(ddb, table, remaining, results)
            return
        if reasons is None:
            for item in remaining:
                results[item["EventId"]["S"]] = Written(True, item)
            return
        retry, refused = [], []
        for item, (code, stored) in zip(remaining, reasons, strict=True):
            if code == "ConditionalCheckFailed":
                found = stored or store.get_event(ddb, table, item["EventId"]["S"])
                if found is None:
                    retry.append(item)  # deleted since (TTL): write it again
                else:
                    results[item["EventId"]["S"]] = Written(_ours(found, item), found)
            elif code in RETRIED_REASONS:
                retry.append(item)
            else:
                refused.append(item)
        _put_one_by_one(ddb, table, refused, results)
        remaining = retry
        if not remaining:
            return
        _back_off(reasons, attempt)
    log.warning(
        "%d event(s) still cancelled after %d transactions: written one by one", len(remaining), attempt + 1
    )
    _put_one_by_one(ddb, table, remaining, results)


def _put_one_by_one(ddb: Any, table: str, items: Sequence[Item], results: dict[str, Written]) -> None:
    """store.put_event for each item: an error of the table about one item is kept in its result."""
    for item in items:
        event_id = item["EventId"]["S"]
        try:
            outcome = store.put_event(ddb, table, item)
        except ClientError as err:
            if _code(err) != "ValidationException":
                raise
            results[event_id] = Written(False, None, err)
            continue
        results[event_id] = Written(outcome.created or _ours(outcome.item, item), outcome.item)


def _ours(stored: Item, item: Item) -> bool:
    """The stored item is the one being written (same claim token): an earlier try of this write applied."""
    claim = item.get("alert_claim")
    return claim is not None and stored.get("alert_claim") == claim


def mark_sent_many(
    ddb: Any, table: str, event_ids: Sequence[str], *, token: str, message_id: str, now: datetime
) -> list[str]:
    """``store.mark_sent`` for each event, up to 100 per TransactWriteItems; returns the ids that could not
    be marked (their claim was taken over). Every id is attempted even when some fail (the SNS message is
    out)."""
    unique = list(dict.fromkeys(event_ids))
    values = store.to_item(
        {
            ":sent": store.SENT,
            ":sending": store.SENDING,
            ":token": token,
            ":mid": message_id,
            ":now": store.iso(now),
        }
    )
    lost: list[str] = []
    for start in range(0, len(unique), TRANSACT_MAX_ACTIONS):
        lost += _mark_group(
            ddb, table, unique[start : start + TRANSACT_MAX_ACTIONS], values, token, message_id, now
        )
    return lost


def _mark_group(
    ddb: Any, table: str, ids: list[str], values: Item, token: str, message_id: str, now: datetime
) -> list[str]:
    remaining, lost = ids, []
    for attempt in range(TRANSACT_ATTEMPTS):
        actions = [
            {
                "Update": {
                    "TableName": table,
                    "Key": store.to_item({"EventId": event_id}),
                    "UpdateExpression": _MARK_SENT,
                    "ConditionExpression": "alert_status = :sending AND alert_claim = :token",
                    "ExpressionAttributeValues": values,
                }
            }
            for event_id in remaining
        ]
        try:
            reasons = _transact(ddb, actions)
        except ClientError:
            break  # not a cancellation we can read: one by one below
        if reasons is None:
            return lost
        retry = []
        for event_id, (code, _) in zip(remaining, reasons, strict=True):
            if code == "ConditionalCheckFailed":
                lost.append(event_id)
            elif code in RETRIED_REASONS:
                retry.append(event_id)
            else:
                break
        else:
            remaining = retry
            if not remaining:
                return lost
            _back_off(reasons, attempt)
            continue
        break  # an unexpected reason: one by one below
    for event_id in remaining:
        if not store.mark_sent(ddb, table, event_id, token=token, message_id=message_id, now=now):
            lost.append(event_id)
    gone = set(lost)
    return [event_id for event_id in ids if event_id in gone]


def _transact(ddb: Any, actions: list[dict[str, Any]]) -> list[tuple[str, Item | None]] | None:
    """One TransactWriteItems: None when it applied, else the (code, ALL_OLD item) per action of its
    cancellation. Raises the ClientError when it is not a cancellation whose reasons match the actions."""
    try:
        ddb.transact_write_items(TransactItems=actions)
    except ClientError as err:
        reasons = _reasons(err, len(actions))
        if reasons is None:
            raise
        return reasons
    return None


def _back_off(reasons: list[tuple[str, Item | None]], attempt: int) -> None:
    """Wait before the next attempt when a cancellation came from a conflict with another writer."""
    if any(code in CONFLICT_REASONS for code, _ in reasons):
        time.sleep(min(0.05 * 2**attempt, 1.0))


_MESSAGE_CODES = re.compile(r"\[([A-Za-z, ]*)\]\s*$")


def _reasons(err: ClientError, actions: int) -> list[tuple[str, Item | None]] | None:
    """(code, ALL_OLD item) per action of a cancelled transaction, in action order; None when ``err`` is not
    a cancellation or its reasons cannot be matched to the actions. botocore puts ``CancellationReasons`` in
    the response; the message also lists the codes (``... reasons [None, ConditionalCheckFailed]``)."""
    if _code(err) != "TransactionCanceledException":
        return None
    listed = err.response.get("CancellationReasons")
    if isinstance(listed, list) and len(listed) == actions:
        return [(str(r.get("Code") or "None"), r.get("Item") or None) for r in listed]
    match = _MESSAGE_CODES.search(str(err.response.get("Error", {}).get("Message", "")))
    if match:
        codes = [code.strip() or "None" for code in match.group(1).split(",")]
        if len(codes) == actions:
            return [(code, None) for code in codes]
    return None


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))
