"""Issue 15 case 4 on moto, through the handler: the notified version is what is read, and a log object
overwritten or deleted in the (versioned) trail bucket is one operational ``high`` alert naming the key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from trailwatch import synth
from trailwatch_processor import tamper
from trailwatch_processor.handler import handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, CONFIG_KEY, Env

CONFIG = {"monitored_events": ["StopLogging", "CreateUser"]}
OVERWRITTEN = "CloudTrail log object overwritten"
DELETED = "CloudTrail log object deleted"


@pytest.fixture
def deps(deps: Any, env: Env) -> Any:
    """The trail bucket versioned, as main.yaml makes it, with this module's config."""
    env.clients.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    env.put_config(CONFIG)
    return deps


def notification(
    key: str, version_id: str | None, *, event_name: str = "ObjectCreated:Put", sequencer: str = "0A1B2C"
) -> str:
    """An S3 notification as S3 sends it for a versioned bucket: versionId and sequencer on the object."""
    doc = json.loads(f.s3_notification(BUCKET, key, event_name=event_name))
    obj = doc["Records"][0]["s3"]["object"]
    obj["sequencer"] = sequencer
    if version_id is not None:
        obj["versionId"] = version_id
    if event_name.startswith("ObjectRemoved"):
        del obj["size"], obj["eTag"]  # S3 sends neither for a removal
    return json.dumps(doc)


def eventbridge_deleted(key: str, version_id: str, deletion_type: str) -> str:
    doc = json.loads(f.eventbridge_object_created(BUCKET, key, detail_type="Object Deleted"))
    doc["detail"]["object"] = {"key": key, "version-id": version_id, "sequencer": "0A1B2D"}
    doc["detail"]["reason"] = "DeleteObject"
    doc["detail"]["deletion-type"] = deletion_type
    return json.dumps(doc)


def put(env: Env, key: str, records: list[dict]) -> str:
    """Write a log object; its VersionId."""
    response = env.clients.s3.put_object(Bucket=BUCKET, Key=key, Body=f.log_bytes(records))
    return response["VersionId"]


def tamper_alerts(env: Env, title: str) -> list[dict]:
    return [a for a in env.alerts() if a["rule"] == "trailwatch-operational" and a["title"] == title]


def failed(response: dict) -> list[str]:
    return [entry["itemIdentifier"] for entry in response["batchItemFailures"]]


def hostile_and_benign() -> tuple[list[dict], list[dict]]:
    hostile = [
        f.record("StopLogging", eventSource="cloudtrail.amazonaws.com"),
        f.record("CreateUser", eventSource="iam.amazonaws.com"),
    ]
    return hostile, [f.record("DescribeInstances")]


def test_overwrite_before_processing_hides_nothing(env: Env, deps: Any) -> None:
    """Version A (StopLogging + CreateUser) overwritten by a benign B before either is processed: A's
    notification reads A, both events are stored and alerted, and one tamper alert names the key."""
    key = f.log_key()
    hostile, benign = hostile_and_benign()
    first = put(env, key, hostile)
    second = put(env, key, benign)
    assert first != second

    response = handle_batch(f.sqs_event(notification(key, first), notification(key, second)), deps)

    assert failed(response) == []
    stored = {item["event_name"]: item for item in env.items().values() if item.get("event_name")}
    assert {"StopLogging", "CreateUser"} <= set(stored)
    assert all(stored[name]["alert_status"] == "sent" for name in ("StopLogging", "CreateUser"))
    assert {"StopLogging", "CreateUser"} <= {a["rule"] for a in env.alerts()}
    [alert] = tamper_alerts(env, OVERWRITTEN)
    assert alert["severity"] == "high"
    assert alert["source"] == f"s3://{BUCKET}/{key}"
    assert first in alert["description"] and second in alert["description"]


def test_both_versions_are_processed_each_event_stored_once(env: Env, deps: Any) -> None:
    """Each notification reads its own version; an event in both versions is stored (and alerted) once."""
    key = f.log_key()
    shared = f.record("CreateUser", eventSource="iam.amazonaws.com")
    only_first = f.record("StopLogging", eventSource="cloudtrail.amazonaws.com")
    first = put(env, key, [only_first, shared])
    second = put(env, key, [shared, f.record("StopLogging", eventSource="cloudtrail.amazonaws.com")])

    handle_batch(f.sqs_event(notification(key, second)), deps)
    handle_batch(f.sqs_event(notification(key, first)), deps)

    names = sorted(item["event_name"] for item in env.items().values() if item.get("event_name"))
    assert names == ["CreateUser", "StopLogging", "StopLogging"]
    alerted = [event_id for a in env.alerts() for event_id in a["eventIDs"]]
    assert len(alerted) == len(set(alerted)) == 3
    assert len(tamper_alerts(env, OVERWRITTEN)) == 1


def test_redelivery_sends_the_tamper_alert_once(env: Env, deps: Any) -> None:
    key = f.log_key()
    hostile, benign = hostile_and_benign()
    first, second = put(env, key, hostile), put(env, key, benign)
    for body in (notification(key, first), notification(key, second), notification(key, first)):
        assert failed(handle_batch(f.sqs_event(body), deps)) == []
    assert len(tamper_alerts(env, OVERWRITTEN)) == 1


def test_a_single_version_is_no_alert(env: Env, deps: Any) -> None:
    key = f.log_key()
    hostile, _ = hostile_and_benign()
    version = put(env, key, hostile)
    # A longer key sharing the prefix is another object, not a version of this one.
    put(env, key + ".copy", hostile)
    assert failed(handle_batch(f.sqs_event(notification(key, version)), deps)) == []
    assert tamper_alerts(env, OVERWRITTEN) == []
    assert {"StopLogging", "CreateUser"} <= {a["rule"] for a in env.alerts()}


def test_deleted_before_processing_is_read_by_version_and_alerted(env: Env, deps: Any) -> None:
    """DeleteObject leaves a delete marker: the created notification still reads its version, and the
    removal notification is one tamper alert naming the key and the marker's version."""
    key = f.log_key()
    hostile, _ = hostile_and_benign()
    version = put(env, key, hostile)
    marker = env.clients.s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]

    removed = notification(key, marker, event_name="ObjectRemoved:DeleteMarkerCreated", sequencer="0A1B2D")
    response = handle_batch(f.sqs_event(notification(key, version), removed, removed), deps)

    assert failed(response) == []
    names = {item.get("event_name") for item in env.items().values()}
    assert {"StopLogging", "CreateUser"} <= names
    [alert] = tamper_alerts(env, DELETED)
    assert (alert["severity"], alert["source"], alert["version_id"]) == (
        "high",
        f"s3://{BUCKET}/{key}",
        marker,
    )
    assert key in alert["description"]


@pytest.mark.parametrize(
    ("make_body", "event_name"),
    [
        pytest.param(
            lambda key, v: notification(key, v, event_name="ObjectRemoved:Delete"),
            "ObjectRemoved:Delete",
            id="s3-version-deleted",
        ),
        pytest.param(
            lambda key, v: f.sns_envelope(
                notification(key, v, event_name="ObjectRemoved:DeleteMarkerCreated")
            ),
            "ObjectRemoved:DeleteMarkerCreated",
            id="sns-envelope-marker",
        ),
        pytest.param(
            lambda key, v: eventbridge_deleted(key, v, "Permanently Deleted"),
            "ObjectRemoved:Delete",
            id="eventbridge-permanently-deleted",
        ),
        pytest.param(
            lambda key, v: eventbridge_deleted(key, v, "Delete Marker Created"),
            "ObjectRemoved:DeleteMarkerCreated",
            id="eventbridge-marker",
        ),
    ],
)
def test_each_removal_shape_is_one_alert(env: Env, deps: Any, make_body: Any, event_name: str) -> None:
    key = f.log_key()
    version = put(env, key, [f.record("DescribeInstances")])
    env.clients.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version)
    body = make_body(key, version)
    assert failed(handle_batch(f.sqs_event(body, body), deps)) == []
    [alert] = tamper_alerts(env, DELETED)
    assert event_name in alert["description"] and version in alert["description"]


def test_digest_removal_is_an_alert_config_removal_is_not(env: Env, deps: Any) -> None:
    digest = "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/15/x_CloudTrail-Digest_y.json.gz"
    bodies = [
        notification(digest, "v1", event_name="ObjectRemoved:DeleteMarkerCreated"),
        notification(CONFIG_KEY, "v2", event_name="ObjectRemoved:DeleteMarkerCreated"),
    ]
    assert failed(handle_batch(f.sqs_event(*bodies), deps)) == []
    assert [a["source"] for a in tamper_alerts(env, DELETED)] == [f"s3://{BUCKET}/{digest}"]


def test_removal_claimed_by_a_live_invocation_fails_the_message(
    env: Env, deps: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Another invocation is sending this alert: the message comes back, and once that claim is stale the
    retry sends it (the alert is never lost with a dying invocation)."""
    key = f.log_key()
    body = notification(key, "v9", event_name="ObjectRemoved:DeleteMarkerCreated")
    marker = tamper.marker_id("removed", BUCKET, key, "ObjectRemoved:DeleteMarkerCreated", "version:v9")
    from trailwatch_processor import markers

    now = deps.now()
    markers.claim_marker(
        env.clients.dynamodb,
        env.settings.events_table,
        marker,
        token="other",
        now=now,
        stale_before=now,
        retention_days=30,
        details={},
    )
    assert len(failed(handle_batch(f.sqs_event(body), deps))) == 1
    assert tamper_alerts(env, DELETED) == []
    assert "retried later" in caplog.text and "unexpected error" not in caplog.text
    env.clock.advance(deps.claim_stale_seconds + 1)
    assert failed(handle_batch(f.sqs_event(body), deps)) == []
    assert len(tamper_alerts(env, DELETED)) == 1


def test_unversioned_notification_reads_the_latest(env: Env, deps: Any) -> None:
    """No versionId (an unversioned bucket): the latest is read and no overwrite check is made."""
    key = f.log_key()
    hostile, _ = hostile_and_benign()
    put(env, key, [f.record("DescribeInstances")])
    put(env, key, hostile)
    assert failed(handle_batch(f.sqs_event(notification(key, None)), deps)) == []
    assert {"StopLogging", "CreateUser"} <= {a["rule"] for a in env.alerts()}
    assert tamper_alerts(env, OVERWRITTEN) == []


def test_a_removal_redelivered_with_another_sequencer_is_one_alert(env: Env, deps: Any) -> None:
    """The version id names the removal: the same event delivered twice (e.g. by two paths) is one alert."""
    key = f.log_key()
    bodies = [
        notification(key, "m1", event_name="ObjectRemoved:DeleteMarkerCreated", sequencer=seq)
        for seq in ("0A", "0B")
    ]
    assert failed(handle_batch(f.sqs_event(*bodies), deps)) == []
    assert len(tamper_alerts(env, DELETED)) == 1


def test_unversioned_deletions_of_one_key_are_told_apart_by_sequencer(env: Env, deps: Any) -> None:
    key = f.log_key()
    bodies = [notification(key, None, event_name="ObjectRemoved:Delete", sequencer=s) for s in ("0A", "0B")]
    assert failed(handle_batch(f.sqs_event(*bodies), deps)) == []
    assert len(tamper_alerts(env, DELETED)) == 2


def test_removing_a_verify_probe_file_is_no_alert(env: Env, deps: Any) -> None:
    """`verify --probe` deletes the log file it wrote; its id part marks it. A CloudTrail-named key with
    the same stamp but CloudTrail's 16-character id is still an alert."""
    probe = synth.log_key(unique=tamper.probe_id())
    real = synth.log_key(unique="Aa1Bb2Cc3Dd4Ee5F")
    bodies = [notification(key, "v1", event_name="ObjectRemoved:Delete") for key in (probe, real)]
    assert failed(handle_batch(f.sqs_event(*bodies), deps)) == []
    assert [a["source"] for a in tamper_alerts(env, DELETED)] == [f"s3://{BUCKET}/{real}"]


def test_detections_do_not_wait_on_an_overwrite_alert_held_elsewhere(env: Env, deps: Any) -> None:
    """Another live invocation is sending the overwrite alert: this attempt still stores and alerts the
    file's detections, then fails so that it comes back; the retry sends the tamper alert once."""
    key = f.log_key()
    hostile, benign = hostile_and_benign()
    first, second = put(env, key, hostile), put(env, key, benign)
    from trailwatch_processor import markers

    now = deps.now()
    markers.claim_marker(
        env.clients.dynamodb,
        env.settings.events_table,
        tamper.marker_id("overwritten", BUCKET, key, second),
        token="other",
        now=now,
        stale_before=now,
        retention_days=30,
        details={},
    )
    body = notification(key, first)
    assert len(failed(handle_batch(f.sqs_event(body), deps))) == 1
    assert {"StopLogging", "CreateUser"} <= {a["rule"] for a in env.alerts()}
    assert tamper_alerts(env, OVERWRITTEN) == []
    env.clock.advance(deps.claim_stale_seconds + 1)
    assert failed(handle_batch(f.sqs_event(body), deps)) == []
    assert len(tamper_alerts(env, OVERWRITTEN)) == 1
    assert sum(1 for a in env.alerts() if a["rule"] in ("StopLogging", "CreateUser")) == 2
