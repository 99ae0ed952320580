"""Noise control, the window close: the delayed window-close message of a dedup window (sent by
noise_state when the window opens) claims the window and publishes ONE summary alert with the count of the
events grouped into it (noise_state.py's docstring has the whole protocol)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from . import alerts, noise, store
from .noise_state import OPEN, WINDOW_CLOSE, WINDOW_PREFIX, schedule_close

log = logging.getLogger(__name__)


def window_close_request(body: str) -> str | None:
    """The window id of a window-close message body, None for any other body."""
    if not body.startswith("{") or WINDOW_CLOSE not in body:
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested too deep: not ours
        return None
    if isinstance(doc, dict) and doc.get("trailwatch") == WINDOW_CLOSE and isinstance(doc.get("window"), str):
        window = doc["window"]
        return window if window.startswith(WINDOW_PREFIX) else None
    return None


def handle_if_window_close(message: dict, deps: Any) -> bool:
    """Handle a window-close message of the processing queue; False for any other message."""
    window = window_close_request(message.get("body", ""))
    if window is None:
        return False
    close_window(deps, window)
    return True


def close_window(deps: Any, window: str) -> str:
    """Close one dedup window: ONE summary alert with the count of the events grouped into it.

    Returns what happened: ``gone`` (no such window, TTL), ``not-due`` (re-sent with the remaining delay),
    ``done`` (sent before, or being sent by a live invocation whose own message retries it), ``empty`` (no
    later events: nothing to send), ``sent``. A failed publish releases the claim and raises (retry)."""
    ddb, table, now = deps.dynamodb, deps.settings.events_table, deps.now()
    item = store.get_event(ddb, table, window)
    if item is None:
        return "gone"
    state = store.plain(item)
    due = datetime.fromisoformat(str(state["window_end"]).replace("Z", "+00:00"))
    if state.get("alert_status") == OPEN and due - now > timedelta(seconds=1):
        schedule_close(deps, window, state, now)
        return "not-due"
    token = deps.new_token()
    stale = now - timedelta(seconds=deps.claim_stale_seconds)
    try:
        response = ddb.update_item(
            TableName=table,
            Key=store.to_item({"EventId": window}),
            UpdateExpression="SET alert_status = :sending, alert_claim = :token, alert_claimed_at = :now",
            ConditionExpression=(
                "alert_status IN (:open, :pending) OR (alert_status = :sending AND alert_claimed_at < :stale)"
            ),
            ExpressionAttributeValues=store.to_item(
                {
                    ":sending": store.SENDING,
                    ":open": OPEN,
                    ":pending": store.PENDING,
                    ":token": token,
                    ":now": store.iso(now),
                    ":stale": store.iso(stale),
                }
            ),
            ReturnValues="ALL_NEW",
        )
    except ClientError as err:
        if store.error_code(err) != "ConditionalCheckFailedException":
            raise
        return "done"
    state = store.plain(response["Attributes"])
    ids = sorted(state.get("event_ids") or ())
    count = len(ids) + int(state.get("extra_count", 0))
    if count == 0:
        store.mark_sent(ddb, table, window, token=token, message_id="", now=now)
        return "empty"
    message = summary_message(state, ids, count, now, table)
    try:
        message_id = alerts.publish(deps.sns, deps.settings.alert_topic_arn, message)
    except Exception:
        store.release(ddb, table, window, token=token)
        raise
    if not store.mark_sent(ddb, table, window, token=token, message_id=message_id, now=now):
        log.warning("window %s: claim taken over before it was marked sent (possible duplicate)", window)
    log.info("window %s closed: summary of %d event(s)", window, count, extra={"data": {"window": window}})
    return "sent"


def summary_message(state: dict[str, Any], ids: list[str], count: int, now: datetime, table: str) -> Any:
    """The summary alert of a closed window: the AlertTopic's usual message, JSON body with ``count``,
    ``group``, ``rule``, ``window_start``, ``window_end`` and the event IDs that fit."""
    rule_id = str(state.get("noise_rule", ""))
    title = str(state.get("noise_title") or rule_id)
    minutes = float(state.get("window_minutes") or 0)
    try:
        group = json.loads(str(state.get("noise_group", "{}")))
    except ValueError:
        group = {}
    group_text = ", ".join(f"{k}={v!r}" for k, v in group.items()) if isinstance(group, dict) else ""
    return alerts.build_alert(
        alerts.Alert(
            rule_id=rule_id,
            title=noise.summary_title(count, title, minutes),
            severity=str(state.get("noise_severity") or "medium"),
            event_ids=ids,
            events=[],
            description=(
                f"{count} more event(s) of rule {rule_id} for the group {group_text} after the first one "
                f"({state.get('first_event_id')}), which was alerted on its own. They are stored, marked "
                f"grouped_into = {state.get('first_event_id')}."
            ),
            table=table,
            extra={
                "kind": "summary",
                "count": count,
                "group": group,
                "window_start": state.get("window_start"),
                "window_end": store.iso(now),
                "window_minutes": minutes,
                "first_event_id": state.get("first_event_id"),
            },
        )
    )
