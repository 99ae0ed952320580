"""The local AWS's S3 notifications carry what AWS's carry for a versioned bucket (s3_events.py): versionId
and sequencer on every event, and a DeleteObject that makes a delete marker announced as
ObjectRemoved:DeleteMarkerCreated. Without them the processor could not read the notified version locally."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from moto import mock_aws
from trailwatch.local import moto_patches, s3_events

BUCKET = "local-events-bucket"
KEY = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/f x.json.gz"


@pytest.fixture
def s3_and_events(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """A bucket (versioned or not) whose ObjectCreated/ObjectRemoved events go to a queue, and a reader."""
    ours = (s3_events.get_s3_event, s3_events.set_delete_marker)
    moto_patches.install(tuple(p for p in moto_patches.PATCHES if p.replacement in ours))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.create_bucket(Bucket=BUCKET)
        if request.param:
            s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]},
                    {"QueueArn": arn, "Events": ["s3:ObjectRemoved:*"]},
                ]
            },
        )

        def events() -> list[dict]:
            got = []
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                for m in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                    got += json.loads(m["Body"]).get("Records", [])
            return got

        yield s3, events


@pytest.mark.parametrize("s3_and_events", [True], indirect=True, ids=["versioned"])
def test_versioned_events_carry_version_and_sequencer(s3_and_events: tuple[Any, Any]) -> None:
    s3, events = s3_and_events
    first = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"1")["VersionId"]
    second = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"2")["VersionId"]
    marker = s3.delete_object(Bucket=BUCKET, Key=KEY)["VersionId"]
    got = events()
    assert [(r["eventName"], r["s3"]["object"].get("versionId")) for r in got] == [
        ("ObjectCreated:Put", first),
        ("ObjectCreated:Put", second),
        ("ObjectRemoved:DeleteMarkerCreated", marker),
    ]
    assert all(unquote_plus(r["s3"]["object"]["key"]) == KEY for r in got)
    sequencers = [r["s3"]["object"]["sequencer"] for r in got]
    assert sequencers == sorted(sequencers) and len(set(sequencers)) == 3
    assert "size" not in got[2]["s3"]["object"] and got[0]["s3"]["object"]["size"] == 1


@pytest.mark.parametrize("s3_and_events", [False], indirect=True, ids=["unversioned"])
def test_unversioned_events_have_no_version(s3_and_events: tuple[Any, Any]) -> None:
    s3, events = s3_and_events
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"1")
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    got = events()
    assert [r["eventName"] for r in got] == ["ObjectCreated:Put", "ObjectRemoved:Delete"]
    assert all("versionId" not in r["s3"]["object"] for r in got)


@pytest.mark.parametrize("s3_and_events", [True], indirect=True, ids=["versioned"])
def test_event_time_is_utc_with_milliseconds(s3_and_events: tuple[Any, Any]) -> None:
    s3, events = s3_and_events
    before = datetime.now(UTC)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"1")
    [record] = events()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["eventTime"])
    at = datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) < at < datetime.now(UTC) + timedelta(seconds=1)
