"""notifications.parse_body (every input shape) and classify_key (every key layout)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from trailwatch_processor import handler
from trailwatch_processor.notifications import KeyKind, NotificationError, ObjectRef, classify_key, parse_body

from tests.functional import factories as f

BUCKET = "trail-bucket"
KEY = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/123456789012_CloudTrail_us-east-1_x.json.gz"
ODD_KEY = "my prefix/a+b=c:d/AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/f ü.json.gz"


def each_shape(key: str) -> list[Any]:
    """The bodies notifying one object `key`: S3's own (raw), in an SNS envelope, and EventBridge's (whose
    key is not URL-encoded)."""
    return [
        pytest.param(f.s3_notification(BUCKET, key), id="s3-raw"),
        pytest.param(f.sns_envelope(f.s3_notification(BUCKET, key)), id="sns-envelope"),
        pytest.param(f.eventbridge_object_created(BUCKET, key), id="eventbridge"),
    ]


@pytest.mark.parametrize("body", each_shape(KEY))
def test_each_shape_gives_the_object(body: str) -> None:
    [ref] = parse_body(body)
    assert (ref.bucket, ref.key) == (BUCKET, KEY)
    assert isinstance(ref.size, int)


@pytest.mark.parametrize("body", each_shape(ODD_KEY))
def test_keys_are_decoded_exactly_once(body: str) -> None:
    [ref] = parse_body(body)
    assert ref.key == ODD_KEY


def test_s3_key_is_url_encoded_in_the_factory() -> None:
    """Guard: the factory must encode like S3 does, or the decoding test proves nothing."""
    raw = json.loads(f.s3_notification(BUCKET, ODD_KEY))["Records"][0]["s3"]["object"]["key"]
    assert " " not in raw and "+" in raw and "%2B" in raw


def test_s3_notification_fields() -> None:
    [ref] = parse_body(f.s3_notification(BUCKET, KEY, size=99))
    assert ref == ObjectRef(
        BUCKET,
        KEY,
        size=99,
        etag="0123abcd",
        event_time="2024-01-15T10:05:00.000Z",
        event_name="ObjectCreated:Put",
    )


def test_several_records_in_one_notification() -> None:
    one = json.loads(f.s3_notification(BUCKET, "a/1.json.gz"))
    two = json.loads(f.s3_notification(BUCKET, "a/2.json.gz"))
    one["Records"] += two["Records"]
    assert [r.key for r in parse_body(json.dumps(one))] == ["a/1.json.gz", "a/2.json.gz"]


def _eventbridge_deleted(reason: str, deletion_type: str) -> str:
    doc = json.loads(f.eventbridge_object_created(BUCKET, KEY, detail_type="Object Deleted"))
    doc["detail"].update({"reason": reason, "deletion-type": deletion_type})
    doc["detail"]["object"] = {"key": KEY, "version-id": "v7", "sequencer": "617f08299329d18a"}
    return json.dumps(doc)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(f.s3_test_event(BUCKET), id="raw"),
        pytest.param(f.sns_envelope(f.s3_test_event(BUCKET)), id="in-sns-envelope"),
        pytest.param(f.s3_notification(BUCKET, KEY, event_name="ObjectRestore:Post"), id="object-restore"),
        pytest.param(
            f.eventbridge_object_created(BUCKET, KEY, detail_type="Object Tags Added"), id="eventbridge-tags"
        ),
        pytest.param(
            _eventbridge_deleted("Lifecycle Expiration", "Delete Marker Created"), id="eb-lifecycle"
        ),
    ],
)
def test_acknowledged_without_objects(body: str) -> None:
    assert parse_body(body) == []


def _versioned(event_name: str = "ObjectCreated:Put", **object_fields: str) -> str:
    doc = json.loads(f.s3_notification(BUCKET, KEY, event_name=event_name))
    doc["Records"][0]["s3"]["object"].update(object_fields)
    return json.dumps(doc)


def test_version_sequencer_and_event_name_are_carried() -> None:
    [ref] = parse_body(_versioned(versionId="3HL4kqtJvjVBH40Nrjfkd", sequencer="0055AED6DCD90281E5"))
    assert (ref.version_id, ref.sequencer, ref.event_name) == (
        "3HL4kqtJvjVBH40Nrjfkd",
        "0055AED6DCD90281E5",
        "ObjectCreated:Put",
    )
    assert not ref.removed


def test_unversioned_bucket_has_no_version() -> None:
    """S3 omits versionId for an unversioned bucket: the processor then reads the latest."""
    [ref] = parse_body(_versioned())
    assert ref.version_id is None


@pytest.mark.parametrize(
    ("body", "event_name", "version"),
    [
        pytest.param(
            _versioned("ObjectRemoved:DeleteMarkerCreated", versionId="m1"),
            "ObjectRemoved:DeleteMarkerCreated",
            "m1",
            id="s3-marker",
        ),
        pytest.param(
            f.sns_envelope(_versioned("ObjectRemoved:Delete", versionId="v1")),
            "ObjectRemoved:Delete",
            "v1",
            id="sns-version-deleted",
        ),
        pytest.param(
            _eventbridge_deleted("DeleteObject", "Delete Marker Created"),
            "ObjectRemoved:DeleteMarkerCreated",
            "v7",
            id="eventbridge-marker",
        ),
        pytest.param(
            _eventbridge_deleted("DeleteObject", "Permanently Deleted"),
            "ObjectRemoved:Delete",
            "v7",
            id="eventbridge-permanent",
        ),
    ],
)
def test_removals_are_returned_as_removed(body: str, event_name: str, version: str) -> None:
    """A removal under AWSLogs/ is tampering: parse_body hands it on rather than dropping it."""
    [ref] = parse_body(body)
    assert (ref.key, ref.event_name, ref.version_id, ref.removed) == (KEY, event_name, version, True)


def test_eventbridge_created_carries_the_version() -> None:
    doc = json.loads(f.eventbridge_object_created(BUCKET, KEY))
    doc["detail"]["object"]["version-id"] = "v2"
    [ref] = parse_body(json.dumps(doc))
    assert (ref.version_id, ref.sequencer, ref.removed) == ("v2", "617f08299329d189", False)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("not json", "message body: not JSON"),
        ("", "message body: not JSON"),
        ("[1, 2]", "found list"),
        ('{"hello": 1}', "keys hello"),
        (json.dumps({"Type": "Notification", "Message": "{oops"}), "SNS envelope Message: not JSON"),
        (json.dumps({"Type": "Notification", "Message": {"a": 1}}), "Message is dict"),
        (json.dumps({"Type": "SubscriptionConfirmation", "TopicArn": "t"}), "SubscriptionConfirmation"),
        (json.dumps({"Records": "x"}), "Records is str"),
        (json.dumps({"Records": [5]}), "Records[0]: expected an object"),
        (json.dumps({"Records": [{"eventSource": "aws:sqs"}]}), "Records[0]: eventSource 'aws:sqs'"),
        (
            json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]}),
            "Records[0]: s3.bucket.name",
        ),
        (
            json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {}}}),
            "detail.bucket.name",
        ),
    ],
)
def test_bad_bodies_name_what_was_found(body: str, named: str) -> None:
    with pytest.raises(NotificationError) as err:
        parse_body(body)
    assert named in str(err.value)


DEEP = "[" * 100_000 + "]" * 100_000  # too deep for json on every supported Python


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (DEEP, "message body: JSON nested too deeply"),
        ('{"Records": ' + DEEP + "}", "message body: JSON nested too deeply"),
        (
            json.dumps({"Type": "Notification", "Message": DEEP}),
            "SNS envelope Message: JSON nested too deeply",
        ),
        ('{"Records": [' + "9" * 5_000 + "]}", "message body: JSON not loadable"),
        # Deep bodies carrying the marks of the other message kinds (window close, hunt, fast path).
        ('{"trailwatch": "window-close", "x": ' + DEEP + "}", "nested too deeply"),
        ('{"trailwatch": "hunt", "x": ' + DEEP + "}", "nested too deeply"),
        ('{"detail-type": "AWS API Call via CloudTrail", "x": ' + DEEP + "}", "nested too deeply"),
    ],
)
def test_hostile_bodies_are_bad_messages_not_unexpected_errors(body: str, named: str) -> None:
    """The handler logs a NotificationError as an unparseable message (DLQ), anything else as unexpected."""
    with pytest.raises(NotificationError) as err:
        no_aws = SimpleNamespace(settings=SimpleNamespace(hunt_queue_arn=None))  # no client: no AWS call
        handler.process_message({"messageId": "m", "body": body}, deps=no_aws)  # type: ignore[arg-type]
    assert named in str(err.value) and len(str(err.value)) < 300


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        (KEY, KeyKind.LOG),
        (KEY.removesuffix(".gz"), KeyKind.LOG),
        ("my/prefix/" + KEY, KeyKind.LOG),
        ("AWSLogs/o-abc123def4/123456789012/CloudTrail/eu-west-1/2024/01/15/x_y.json.gz", KeyKind.LOG),
        ("pre/AWSLogs/o-abc123def4/123456789012/CloudTrail/eu-west-1/2024/01/15/x.json.gz", KeyKind.LOG),
        (
            "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/15/"
            "123456789012_CloudTrail-Digest_us-east-1_trail_us-east-1_20240115T100000Z.json.gz",
            KeyKind.DIGEST,
        ),
        ("AWSLogs/o-abc123def4/123456789012/CloudTrail-Digest/us-east-1/2024/01/15/d.json", KeyKind.DIGEST),
        ("AWSLogs/123456789012/CloudTrail-Insight/us-east-1/2024/01/15/i.json.gz", KeyKind.INSIGHT),
        ("config/monitored_events.json", KeyKind.CONFIG),
        ("config/other.json.gz", KeyKind.CONFIG),
        ("config/" + KEY, KeyKind.LOG),  # a trail whose S3KeyPrefix is "config"
        ("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/notes.txt", KeyKind.OTHER),
        ("AWSLogs/12345/CloudTrail/us-east-1/2024/01/15/x.json.gz", KeyKind.OTHER),
        ("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/x.json.gz", KeyKind.OTHER),
        ("AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/01/15/x.log.gz", KeyKind.OTHER),
        ("xAWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/x.json.gz", KeyKind.OTHER),
        ("random.json.gz", KeyKind.OTHER),
        ("", KeyKind.OTHER),
    ],
)
def test_classify_key(key: str, kind: KeyKind) -> None:
    assert classify_key(key) is kind


def test_factory_keys_are_logs() -> None:
    keys = [f.log_key(), f.log_key(prefix="a/b"), f.log_key(org="o-abcdefghij"), f.log_key(suffix=".json")]
    for key in keys:
        assert classify_key(key) is KeyKind.LOG, key
