"""Noise control, the table state: dedup windows and thresholds in the SecurityEvents table.

``decide`` runs once per NEW event (before its item is written, so a retry after a crash finds no item and
decides again: every step here is idempotent for the same event). The state items carry ``kind = "noise"``
and no ``event_day``/``rule_id``/``event_time``: they are in neither index (docs/architecture.md).

Thresholds: one item per rule and group (``trailwatch#noise-threshold#<sha>``) holding the current window
(``window_start``/``window_end`` in event time: the window starts at the first event's eventTime and lasts
``window_minutes``) and the set of its event IDs. Each event is added with ``ADD`` to a string set, so an
event delivered twice (two files, two concurrent invocations) counts once. The event that makes the set reach
the count sets ``alerted_by`` conditionally: exactly one event alerts per window, through the usual alert
claim of its own item (two invocations on one file may decide an event differently: when the crossing
event was stored first by the one that found it below the count, the crosser takes that item over,
``take_over_crossing``). Events before it are ``below-threshold``, after it ``grouped`` into it. A late event
(eventTime before the window) counts in the current window; windows do not slide (a burst across two windows
may stay below the count in both).

Dedup: a group item (``trailwatch#noise-group#<sha>``) points to the group's open window item
(``trailwatch#noise-window#<sha>``). The first event creates the window, points the group to it, alerts as
usual, and sends the window-close message ``{"trailwatch": "window-close", "window": <id>}`` to the
processing queue with ``DelaySeconds`` (at most 900: a longer window re-sends itself with the remaining
delay). Later events ``ADD`` their ID to the open window (``grouped``). The close claims the window
(``open`` -> ``sending``, the alert claim protocol of store.py: a duplicate close message finds it ``sent``;
a failed publish releases it to ``pending`` and the message is retried) and publishes ONE summary with the
count through the AlertTopic. An event arriving while the window closes starts the next window. The message
is in SQS before the first event's item is written, so a count is never lost to a restart. The close itself
is noise_close.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from . import noise, store
from .noise import ALERT, BELOW_THRESHOLD, GROUPED, Decision, Plan

log = logging.getLogger(__name__)

NOISE_KIND = "noise"
THRESHOLD_PREFIX = "trailwatch#noise-threshold#"
GROUP_PREFIX = "trailwatch#noise-group#"
WINDOW_PREFIX = "trailwatch#noise-window#"
WINDOW_CLOSE = "window-close"
MAX_DELAY_SECONDS = 900  # SQS DelaySeconds maximum
# Event IDs kept in a dedup window item (~80 KB). Beyond, events are only counted (extra_count): exact for
# every delivery except a crash between the count and the event's item write, whose retry counts it again.
WINDOW_MAX_IDS = 2000
STATE_TTL = timedelta(days=1)  # kept this long after the window's end
OPEN = "open"
ATTEMPTS = 5  # rounds when racing writers keep replacing a window

_sqs_client: Any = None


def queue_url(deps: Any) -> str | None:
    """The processing queue (``NOISE_QUEUE_URL``) that receives the window-close messages."""
    return getattr(deps, "noise_queue_url", None) or os.environ.get("NOISE_QUEUE_URL") or None


def _sqs(deps: Any) -> Any:
    global _sqs_client
    client = getattr(deps, "sqs", None)
    if client is not None:
        return client
    if _sqs_client is None:  # once per container
        import boto3

        from .aws import CLIENT_CONFIG

        _sqs_client = boto3.client("sqs", config=CLIENT_CONFIG)
    return _sqs_client


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _failed_item(err: ClientError) -> dict[str, Any] | None:
    """The item returned by ReturnValuesOnConditionCheckFailure, as plain values; re-raise other errors."""
    if _code(err) != "ConditionalCheckFailedException":
        raise err
    item = err.response.get("Item")
    return store.plain(item) if item else None


def _ttl(end: datetime) -> int:
    return int((end + STATE_TTL).timestamp())


def decide(deps: Any, plan: Plan | None, event_id: str) -> Decision:
    """The decision for one NEW event (``plan`` from noise.plan): alert, or quiet with the item's marks."""
    if plan is None:
        return ALERT
    if plan.suppressed_by is not None:
        return noise.suppressed(plan.suppressed_by)
    if plan.kind == "threshold":
        return _threshold(deps, plan, event_id)
    if plan.kind == "dedup":
        if queue_url(deps) is None:
            log.warning(
                "rule %s: dedup needs NOISE_QUEUE_URL (window close); alerting every event", plan.rule_id
            )
            return ALERT
        return _dedup(deps, plan, event_id)
    return ALERT


def mark(item: store.Item, decision: Decision) -> store.Item:
    """The item to store for a quiet decision: its alert status and marks (never claimed, never alerted)."""
    marked = dict(item)
    marked.update(store.to_item({"alert_status": decision.status, **dict(decision.marks)}))
    return marked


# ------------------------------------------------------------------------------------------- thresholds


def _threshold(deps: Any, plan: Plan, event_id: str) -> Decision:
    ddb, table = deps.dynamodb, deps.settings.events_table
    key = THRESHOLD_PREFIX + noise.group_key("threshold", plan.rule_id, plan.group)
    moment = plan.moment or deps.now()
    at = store.iso(moment)
    for _ in range(ATTEMPTS):
        try:
            response = ddb.update_item(
                TableName=table,
                Key=store.to_item({"EventId": key}),
                UpdateExpression="ADD event_ids :e",
                ConditionExpression="window_end > :m AND attribute_not_exists(alerted_by)",
                ExpressionAttributeValues={":e": {"SS": [event_id]}, ":m": {"S": at}},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            state = store.plain(response["Attributes"])
        except ClientError as err:
            old = _failed_item(err)
            if old is not None and str(old.get("window_end", "")) > at and old.get("alerted_by"):
                return _after_crossing(old["alerted_by"], event_id, key)
            state = _new_threshold_window(deps, plan, key, event_id, moment)
            if state is None:
                continue  # another event opened a window meanwhile: join it
        ids = state.get("event_ids") or set()
        if len(ids) < plan.count:
            return Decision(BELOW_THRESHOLD, (("noise_window", key),))
        try:  # crossed: exactly one event of this window sets alerted_by
            ddb.update_item(
                TableName=table,
                Key=store.to_item({"EventId": key}),
                UpdateExpression="SET alerted_by = :e, alerted_at = :now",
                ConditionExpression="attribute_not_exists(alerted_by) AND window_start = :ws",
                ExpressionAttributeValues=store.to_item(
                    {":e": event_id, ":now": store.iso(deps.now()), ":ws": state["window_start"]}
                ),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return _crossed(key)
        except ClientError as err:
            old = _failed_item(err)
            if old is not None and old.get("alerted_by") and old.get("window_start") == state["window_start"]:
                return _after_crossing(old["alerted_by"], event_id, key)
            # the window was replaced meanwhile: count again in the new one
    raise RuntimeError(f"threshold {key}: the window kept changing; the message will be retried")


def _crossed(key: str) -> Decision:
    return Decision(None, (("noise_window", key), ("noise_role", "threshold-crossed")))


def _after_crossing(alerted_by: str, event_id: str, key: str) -> Decision:
    if alerted_by == event_id:  # a retry of the event that alerted (its item was not written yet)
        return _crossed(key)
    return Decision(GROUPED, (("grouped_into", alerted_by), ("noise_window", key)))


def take_over_crossing(deps: Any, ours: store.Item, stored: store.Item | None, token: str) -> bool:
    """``ours`` crossed a threshold (the window's ``alerted_by`` names it) but a racing invocation stored the
    same event first, decided before the count was reached (``below-threshold``): no one would alert the
    window. Take the stored item over, claimed by us with the crossing's marks; True when we did. False
    for any other pair (nothing to do: the usual existing-item path), or when it changed meanwhile."""
    crossing = ours.get("noise_role", {}).get("S") == "threshold-crossed"
    if not crossing or stored is None or stored.get("alert_status", {}).get("S") != BELOW_THRESHOLD:
        return False
    marks = store.plain({k: ours[k] for k in ("noise_window", "noise_role")})
    try:
        deps.dynamodb.update_item(
            TableName=deps.settings.events_table,
            Key={"EventId": ours["EventId"]},
            UpdateExpression="SET alert_status = :s, alert_claim = :t, alert_claimed_at = :now, "
            + ", ".join(f"{k} = :{k}" for k in marks),
            ConditionExpression="alert_status = :below",
            ExpressionAttributeValues=store.to_item(
                {
                    ":s": store.SENDING,
                    ":t": token,
                    ":now": store.iso(deps.now()),
                    ":below": BELOW_THRESHOLD,
                    **{f":{k}": v for k, v in marks.items()},
                }
            ),
        )
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            raise
        return False
    return True


def _window_fields(plan: Plan, item_id: str, kind: str, start: datetime, end: datetime) -> dict[str, Any]:
    """What every noise window item (threshold or dedup) says of itself."""
    return {
        "EventId": item_id,
        "kind": NOISE_KIND,
        "noise_kind": kind,
        "noise_rule": plan.rule_id,
        "noise_group": json.dumps(plan.group_map, ensure_ascii=False),
        "window_start": store.iso(start),
        "window_end": store.iso(end),
    }


def _new_threshold_window(
    deps: Any, plan: Plan, key: str, event_id: str, moment: datetime
) -> dict[str, Any] | None:
    """Open the group's window at ``moment`` with this event, unless a live one exists: the new state, or
    None when another writer's window is live (the caller joins it)."""
    end = moment + timedelta(minutes=plan.window_minutes)
    fields = {
        **_window_fields(plan, key, "threshold", moment, end),
        "threshold_count": plan.count,
        "stored_at": store.iso(deps.now()),
        "expires_at": _ttl(max(end, deps.now())),
    }
    item = store.to_item(fields)
    item["event_ids"] = {"SS": [event_id]}
    try:
        deps.dynamodb.put_item(
            TableName=deps.settings.events_table,
            Item=item,
            ConditionExpression="attribute_not_exists(EventId) OR window_end <= :m",
            ExpressionAttributeValues={":m": {"S": store.iso(moment)}},
        )
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            raise
        return None
    return {**fields, "event_ids": {event_id}}


# ------------------------------------------------------------------------------------------------ dedup


def _window_id(group: str, first_event_id: str) -> str:
    return WINDOW_PREFIX + hashlib.sha256(f"{group}/{first_event_id}".encode()).hexdigest()


def _dedup(deps: Any, plan: Plan, event_id: str) -> Decision:
    ddb, table = deps.dynamodb, deps.settings.events_table
    group = GROUP_PREFIX + noise.group_key("dedup", plan.rule_id, plan.group)
    for _ in range(ATTEMPTS):
        pointer = store.get_event(ddb, table, group)
        current = store.plain(pointer) if pointer else {}
        window = current.get("current_window")
        if window:
            try:
                ddb.update_item(
                    TableName=table,
                    Key=store.to_item({"EventId": window}),
                    UpdateExpression="ADD event_ids :e",
                    ConditionExpression=(
                        "alert_status = :open AND first_event_id <> :id AND "
                        "(attribute_not_exists(event_ids) OR size(event_ids) < :max)"
                    ),
                    ExpressionAttributeValues={
                        ":e": {"SS": [event_id]},
                        ":open": {"S": OPEN},
                        ":id": {"S": event_id},
                        ":max": {"N": str(WINDOW_MAX_IDS)},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return _grouped(current["first_event_id"], window)
            except ClientError as err:
                old = _failed_item(err)
            if old is not None and old.get("first_event_id") == event_id:
                schedule_close(deps, window, old)  # a retry of the first event: the close may not be sent
                return _opened(window)
            if old is not None and old.get("alert_status") == OPEN:
                ids = old.get("event_ids") or set()
                if event_id in ids:  # counted before (a retry)
                    return _grouped(old["first_event_id"], window)
                if len(ids) >= WINDOW_MAX_IDS and _count_extra(deps, window):  # full: counted beyond the IDs
                    return _grouped(old["first_event_id"], window)
                continue  # the window changed meanwhile: look again
        # No open window (none yet, or it is closing): this event opens the next one.
        opened = _open_window(deps, plan, group, window, event_id)
        if opened is not None:
            schedule_close(deps, opened["EventId"], opened)
            return _opened(opened["EventId"])
    raise RuntimeError(f"dedup {group}: the window kept changing; the message will be retried")


def _opened(window: str) -> Decision:
    return Decision(None, (("noise_window", window), ("noise_role", "window-first")))


def _grouped(first_event_id: str, window: str) -> Decision:
    return Decision(GROUPED, (("grouped_into", first_event_id), ("noise_window", window)))


def _count_extra(deps: Any, window: str) -> bool:
    try:
        deps.dynamodb.update_item(
            TableName=deps.settings.events_table,
            Key=store.to_item({"EventId": window}),
            UpdateExpression="ADD extra_count :one",
            ConditionExpression="alert_status = :open",
            ExpressionAttributeValues={":one": {"N": "1"}, ":open": {"S": OPEN}},
        )
        return True
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            raise
        return False


def _open_window(
    deps: Any, plan: Plan, group: str, previous: str | None, event_id: str
) -> dict[str, Any] | None:
    """Create this event's window, then point the group to it unless another event did first (None)."""
    ddb, table, now = deps.dynamodb, deps.settings.events_table, deps.now()
    window = _window_id(group, event_id)
    end = now + timedelta(minutes=plan.window_minutes)
    fields = {
        **_window_fields(plan, window, "dedup-window", now, end),
        "noise_title": plan.title,
        "noise_severity": plan.severity,
        "window_minutes": str(plan.window_minutes),
        "first_event_id": event_id,
        "alert_status": OPEN,
        "stored_at": store.iso(now),
        "expires_at": _ttl(end),
    }
    try:
        ddb.put_item(
            TableName=table, Item=store.to_item(fields), ConditionExpression="attribute_not_exists(EventId)"
        )
    except ClientError as err:  # a retry: it exists already (first_event_id is this event by its key)
        if _code(err) != "ConditionalCheckFailedException":
            raise
        existing = store.get_event(ddb, table, window)
        fields = store.plain(existing) if existing else fields
    condition = "attribute_not_exists(current_window)"
    values: dict[str, Any] = {}
    if previous:
        condition += " OR current_window = :previous"
        values[":previous"] = {"S": previous}
    try:
        ddb.put_item(
            TableName=table,
            Item=store.to_item(
                {
                    "EventId": group,
                    "kind": NOISE_KIND,
                    "noise_kind": "dedup-group",
                    "noise_rule": plan.rule_id,
                    "current_window": window,
                    "first_event_id": event_id,
                    "stored_at": store.iso(now),
                    "expires_at": _ttl(end),
                }
            ),
            ConditionExpression=condition,
            **({"ExpressionAttributeValues": values} if values else {}),
        )
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            raise
        return None
    return fields


def schedule_close(deps: Any, window: str, fields: dict[str, Any], now: datetime | None = None) -> None:
    """Send the window-close message, due at the window's end (re-sent by the close while not due)."""
    now = now or deps.now()
    due = datetime.fromisoformat(str(fields["window_end"]).replace("Z", "+00:00"))
    delay = min(MAX_DELAY_SECONDS, max(0, math.ceil((due - now).total_seconds())))
    body = json.dumps({"trailwatch": WINDOW_CLOSE, "window": window, "due": fields["window_end"]})
    _sqs(deps).send_message(QueueUrl=queue_url(deps), MessageBody=body, DelaySeconds=delay)


# ------------------------------------------------------------------------------------ processor hook

NOTES_KEPT = 20  # notes per alert message (one per group that alerted in the file)


def annotate(extra: dict[str, Any], plan: Plan | None) -> None:
    """Add to an alert's ``extra`` (JSON body and email) why an alerting event was subject to noise control:
    ``noise``: a list of notes, e.g. ``threshold: 5 events within 5 min (sourceIPAddress='203.0.113.9')``."""
    if plan is None or plan.kind is None:
        return
    group = ", ".join(f"{k}={v!r}" for k, v in plan.group_map.items()) or "the whole rule"
    if plan.kind == "threshold":
        note = f"threshold: {plan.count} events within {plan.window_minutes:g} min ({group})"
    else:
        note = f"first of a {plan.window_minutes:g} min window ({group}): later ones come as one summary"
    notes = extra.setdefault("noise", [])
    if note not in notes and len(notes) < NOTES_KEPT:
        notes.append(note)


def item_to_store(
    deps: Any, plan: Plan | None, event_id: str, item: store.Item, token: str
) -> tuple[store.Item, bool]:
    """The item to write for a NEW event and whether it is to be alerted: born claimed (store.with_claim)
    as before, or marked quiet (suppressed, grouped, below-threshold) and never claimed."""
    decision = decide(deps, plan, event_id)
    if decision.quiet:
        return mark(item, decision), False
    if decision.marks:  # the event that opened a dedup window or crossed a threshold: where to look
        item = {**item, **store.to_item(dict(decision.marks))}
    return store.with_claim(item, token=token, now=deps.now()), True
