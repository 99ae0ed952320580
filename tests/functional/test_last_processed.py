"""Issue 15 case 7: `verify` reports the trail's last delivery and the last processed file.

The processor writes a small marker item (markers.note_processed, at most once a minute per container);
verify compares it with GetTrailStatus. Without the marker write in processor.py the first two tests fail
(no item); without the verdicts verify says nothing about a pipeline that stopped processing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from trailwatch import verify
from trailwatch_processor import markers, store
from trailwatch_processor.handler import handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, TABLE, Env

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_container(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a new Lambda container: nothing written yet."""
    monkeypatch.setattr(markers, "_last_processed_noted", {})


def marker(env: Env) -> dict[str, Any] | None:
    got = env.clients.dynamodb.get_item(
        TableName=TABLE, Key={"EventId": {"S": markers.last_processed_id(BUCKET)}}, ConsistentRead=True
    )
    return store.plain(got["Item"]) if "Item" in got else None


def process(env: Env, deps: Any, key: str) -> None:
    env.put_log([f.record("DescribeInstances")], key)
    response = handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)
    assert response["batchItemFailures"] == []


def test_processing_a_log_file_records_it(env: Env, deps: Any) -> None:
    key = f.log_key()
    process(env, deps, key)
    got = marker(env)
    assert got is not None
    assert (got["object_key"], got["processed_at"], got["kind"]) == (
        key,
        store.iso(env.clock.now()),
        markers.OPERATIONAL,
    )
    assert "event_day" not in got and "rule_id" not in got  # stays out of both indexes


def test_marker_is_written_at_most_once_a_minute_per_container(env: Env, deps: Any) -> None:
    first, second, third = (f.log_key(suffix=f"_{n}.json.gz") for n in "abc")
    process(env, deps, first)
    env.clock.advance(30)
    process(env, deps, second)
    assert marker(env)["object_key"] == first
    env.clock.advance(31)
    process(env, deps, third)
    assert marker(env)["object_key"] == third


def test_marker_time_only_moves_forward(env: Env) -> None:
    ddb = env.clients.dynamodb
    assert markers.note_processed(ddb, TABLE, BUCKET, "new", NOW)
    markers._last_processed_noted.clear()  # another container, whose clock is behind
    assert not markers.note_processed(ddb, TABLE, BUCKET, "old", NOW - timedelta(seconds=5))
    assert marker(env)["object_key"] == "new"


def test_marker_write_failure_does_not_fail_the_file(env: Env) -> None:
    assert not markers.note_processed(env.clients.dynamodb, "NoSuchTable", BUCKET, "k", NOW)


def test_verify_reads_the_marker_the_processor_wrote(env: Env) -> None:
    markers.note_processed(env.clients.dynamodb, TABLE, BUCKET, "AWSLogs/x.json.gz", NOW - timedelta(hours=2))
    ctx = SimpleNamespace(
        aws=SimpleNamespace(client=lambda name: env.clients.dynamodb),
        outputs={"EventsTableName": TABLE, "TrailBucketName": BUCKET},
        trail_status={"LatestDeliveryTime": datetime.now(UTC)},
    )
    status, reason = verify.check_last_processed(ctx)  # type: ignore[arg-type]
    assert status == "warn"
    assert "AWSLogs/x.json.gz" in reason and "while the trail delivered since" in reason


def _marker_at(moment: datetime) -> dict[str, Any]:
    return {"object_key": "AWSLogs/k.json.gz", "processed_at": store.iso(moment)}


@pytest.mark.parametrize(
    ("processed_ago", "delivered_ago", "status"),
    [
        (timedelta(minutes=2), timedelta(minutes=1), "pass"),  # delivered after, but recently processed
        (timedelta(minutes=40), timedelta(minutes=45), "pass"),  # quiet: nothing delivered since
        (timedelta(minutes=40), timedelta(minutes=3), "warn"),  # delivered since, 40 min idle
        (timedelta(hours=5), None, "pass"),  # no delivery known
        (None, timedelta(hours=1), "warn"),  # never processed although delivered long ago
        (None, None, "warn"),
    ],
)
def test_last_processed_verdict(
    processed_ago: timedelta | None, delivered_ago: timedelta | None, status: str
) -> None:
    marker_item = None if processed_ago is None else _marker_at(NOW - processed_ago)
    delivered = None if delivered_ago is None else NOW - delivered_ago
    got, reason = verify.last_processed_verdict(marker_item, delivered, NOW)
    assert got == status, reason


@pytest.mark.parametrize(
    ("status", "expected", "needle"),
    [
        ({"LatestDeliveryTime": NOW - timedelta(minutes=4)}, "pass", "(4 min ago)"),
        ({"LatestDeliveryTime": NOW - timedelta(hours=3)}, "warn", "delivery has stopped"),
        ({}, "warn", "not delivered a log file yet"),
        (
            {"LatestDeliveryTime": NOW - timedelta(hours=3), "LatestDeliveryError": "AccessDenied"},
            "fail",
            "failed: AccessDenied",
        ),
        ({"LatestDeliveryError": "NoSuchBucket"}, "fail", "NoSuchBucket"),
    ],
)
def test_delivery_verdict(status: dict[str, Any], expected: str, needle: str) -> None:
    got, reason = verify.delivery_verdict(status, NOW)
    assert (got, needle in reason) == (expected, True), reason
