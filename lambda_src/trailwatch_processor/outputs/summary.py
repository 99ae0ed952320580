"""A window summary's representative event, for the Slack message.

A dedup window's summary alert (``"kind": "summary"``, noise_state.py) lists the grouped events' IDs and the
group, but no event fields: the first event of the group was alerted on its own. A Slack message a person can
act on still needs who, what, where and when, and a link; they come from the first event's stored item
(``first_event_id``), read once with GetItem. The webhook gets the alert's JSON exactly as published.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from .. import store

log = logging.getLogger("trailwatch_processor.outputs")

# SecurityEvents item attribute -> the alert's event summary key (records.summary)
ITEM_FIELDS = {
    "EventId": "eventID",
    "event_name": "eventName",
    "event_source": "eventSource",
    "event_time": "eventTime",
    "aws_region": "awsRegion",
    "account_id": "account",
    "principal_arn": "principal",
    "principal_type": "principalType",
    "source_ip": "sourceIPAddress",
    "error_code": "errorCode",
}

Lookup = Callable[[str], "Mapping[str, Any] | None"]  # event id -> the stored item as plain values


def needs_event(alert: Mapping[str, Any]) -> str | None:
    """The first event's id when ``alert`` is a summary without event fields, else None."""
    if alert.get("kind") != "summary" or alert.get("events"):
        return None
    first = alert.get("first_event_id")
    return first if isinstance(first, str) and first else None


def with_representative(alert: dict[str, Any], lookup: Lookup | None) -> dict[str, Any]:
    """``alert`` with ``events`` = [the first event's fields] when it is a summary without them and the
    item is found; otherwise ``alert`` unchanged (the message then shows what the alert holds)."""
    first = needs_event(alert)
    if first is None or lookup is None:
        return alert
    try:
        item = lookup(first)
    except Exception as err:  # best effort: the summary is still delivered, with fewer fields
        log.warning("summary alert: reading its first event failed: %s", type(err).__name__)
        return alert
    if not item:
        return alert
    event = {key: str(item[name]) for name, key in ITEM_FIELDS.items() if item.get(name) not in (None, "")}
    return {**alert, "events": [event]}


def table_lookup(env: Mapping[str, str] | None = None) -> Lookup | None:
    """GetItem on the events table (``EVENTS_TABLE``), the client created on first use; None without one."""
    env = os.environ if env is None else env
    table = env.get("EVENTS_TABLE")
    if not table:
        return None
    client: list[Any] = []

    def lookup(event_id: str) -> Mapping[str, Any] | None:
        if not client:
            import boto3

            from ..aws import CLIENT_CONFIG

            client.append(boto3.client("dynamodb", config=CLIENT_CONFIG))
        item = store.get_event(client[0], table, event_id)
        return store.plain(item) if item else None

    return lookup
