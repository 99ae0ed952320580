"""Alerts say how they arrived: ``path`` and ``latency_seconds`` (eventTime -> the alert)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from trailwatch_processor import alerts

SENT = datetime(2024, 1, 15, 12, 0, 10, tzinfo=UTC)


def _alert(path: str | None, *times: str | None) -> alerts.Alert:
    events = [
        {"eventID": f"e{i}", "eventName": "ConsoleLogin", **({"eventTime": t} if t is not None else {})}
        for i, t in enumerate(times)
    ]
    return alerts.Alert(
        rule_id="root-usage",
        title="Root account used",
        severity="critical",
        event_ids=[e["eventID"] for e in events],
        events=events,
        path=path,
        alerted_at=SENT,
    )


def _parts(alert: alerts.Alert) -> tuple[dict, str]:
    doc = json.loads(alerts.build_alert(alert).message)
    return json.loads(doc["default"]), doc["email"]


@pytest.mark.parametrize(
    ("event_time", "expected"),
    [
        ("2024-01-15T12:00:07Z", 3.0),
        ("2024-01-15T12:00:07.250Z", 2.75),
        ("2024-01-15T12:00:07", 3.0),  # no zone: UTC, as CloudTrail means it
        ("2024-01-15T12:00:12Z", -2.0),  # clocks disagree: shown, not hidden
        ("yesterday", None),
        ("", None),
        (None, None),
        (1705320007, None),
    ],
)
def test_latency_seconds(event_time: object, expected: float | None) -> None:
    assert alerts.latency_seconds(event_time, SENT) == expected


def test_body_has_path_and_latency_per_event_and_the_largest_on_top() -> None:
    body, _ = _parts(_alert("s3", "2024-01-15T11:55:10Z", "2024-01-15T11:58:10Z", "garbage"))
    assert body["path"] == "s3" and body["latency_seconds"] == 300.0
    assert [e.get("latency_seconds") for e in body["events"]] == [300.0, 120.0, None]


def test_email_names_the_path_and_the_earliest_events_latency() -> None:
    _, email = _parts(_alert("eventbridge", "2024-01-15T12:00:08Z", "2024-01-15T12:00:04Z"))
    assert (
        "Path:     eventbridge (EventBridge fast path), alerted 6.0 s after the event (the earliest event)"
        in email
    )
    assert "Latency:  2.0 s from the event to this alert" in email


def test_attributes_carry_the_path() -> None:
    message = alerts.build_alert(_alert("eventbridge", "2024-01-15T12:00:08Z"))
    assert message.attributes["path"] == {"DataType": "String", "StringValue": "eventbridge"}


def test_no_path_no_latency_fields() -> None:
    """Operational alerts (and any alert built without a path) carry neither."""
    body, email = _parts(
        alerts.Alert("r", "t", "low", ["e"], [{"eventID": "e", "eventTime": "2024-01-15T12:00:00Z"}])
    )
    assert "path" not in body and "latency_seconds" not in body and "latency_seconds" not in body["events"][0]
    assert "Path:" not in email and "Latency:" not in email
    operational = json.loads(json.loads(alerts.operational_alert("x", "y", source="s").message)["default"])
    assert "path" not in operational


def test_slack_message_says_how_it_arrived() -> None:
    from trailwatch_processor.outputs import slack

    body, _ = _parts(_alert("eventbridge", "2024-01-15T12:00:08Z"))
    fields = [f["text"] for block in slack.build_message(body)["blocks"] for f in block.get("fields", [])]
    assert "*Arrived:*\neventbridge, 2.0 s after the event" in fields
    plain = slack.build_message({**body, "path": None})
    assert not any("Arrived" in f["text"] for b in plain["blocks"] for f in b.get("fields", []))
