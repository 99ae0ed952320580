"""On the local AWS: a log file overwritten before it is processed hides nothing (the
processor reads the version each notification names), and the overwrite, then a delete, of the log object
are each one operational ``high`` alert naming the key.

The stack is the real main.yaml (versioned trail bucket, ObjectCreated and ObjectRemoved notifications)
with the real processor zip. The recorder is off: every object in the trail bucket is written here.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from trailwatch import synth

from tests.e2e.conftest import (
    ACCOUNT,
    REGION,
    ClientFactory,
    subscribe_alert_queue,
    upload_bundled_config,
)

pytestmark = pytest.mark.e2e

LOCAL_AWS_OPTIONS = {"cloudtrail": False}
STACK = "tw-tamper"
BUCKET = "tw-tamper-trail-bucket"
WAIT_SECONDS = 40.0
OVERWRITTEN = "CloudTrail log object overwritten"
DELETED = "CloudTrail log object deleted"


@dataclass
class Watch:
    client: ClientFactory
    outputs: dict[str, str]
    alert_queue: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def drain(self) -> None:
        sqs = self.client("sqs")
        while messages := sqs.receive_message(
            QueueUrl=self.alert_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            for m in messages:
                self.alerts.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.alert_queue, ReceiptHandle=m["ReceiptHandle"])
        table = self.outputs["EventsTableName"]
        for page in self.client("dynamodb").get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                self.items[item["EventId"]["S"]] = item

    def tamper(self, title: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a.get("rule") == "trailwatch-operational" and a["title"] == title]

    def wait_until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {len(self.items)} items, {self.alerts}")
            self.drain()
        self.drain()  # a late duplicate shows now


@pytest.fixture(scope="module")
def watch(aws_client: ClientFactory, deploy_processor: Callable[..., dict[str, str]]) -> Watch:
    outputs = deploy_processor(STACK, BUCKET, FunctionTimeout="30")
    upload_bundled_config(aws_client, BUCKET)
    url = subscribe_alert_queue(aws_client, outputs["AlertTopicArn"], "tw-tamper-alerts")
    return Watch(aws_client, outputs, url)


def test_overwritten_log_file_is_processed_and_alerted(watch: Watch) -> None:
    """Write A (StopLogging + CreateUser among background calls), overwrite it at once with a benign B:
    both events are stored and alerted, and one tamper alert names the key and both versions."""
    user = synth.iam_user("mallory")
    stop = synth.make_record("StopLogging", identity=user)
    create = synth.make_record("CreateUser", identity=user)
    rng = random.Random(15)
    hostile = [*synth.background_records(20, rng, monitored_fraction=0.0), stop, create]
    benign = synth.background_records(20, rng, monitored_fraction=0.0)
    key = synth.log_key(ACCOUNT, REGION, unique="OVERWRITE")
    s3 = watch.client("s3")
    first = s3.put_object(Bucket=BUCKET, Key=key, Body=synth.gzip_log(hostile))["VersionId"]
    second = s3.put_object(Bucket=BUCKET, Key=key, Body=synth.gzip_log(benign))["VersionId"]

    wanted = {stop["eventID"], create["eventID"]}
    watch.wait_until(
        lambda: (
            wanted <= set(watch.items)
            and wanted <= {i for a in watch.alerts for i in a.get("eventIDs", [])}
            and bool(watch.tamper(OVERWRITTEN))
        ),
        "StopLogging and CreateUser stored and alerted, and the overwrite alert",
    )
    assert {watch.items[i]["event_name"]["S"] for i in wanted} == {"StopLogging", "CreateUser"}
    assert {watch.items[i]["alert_status"]["S"] for i in wanted} == {"sent"}
    [alert] = watch.tamper(OVERWRITTEN)
    assert (alert["severity"], alert["source"]) == ("high", f"s3://{BUCKET}/{key}")
    assert first in alert["description"] and second in alert["description"]


def test_deleted_log_file_is_alerted(watch: Watch) -> None:
    key = synth.log_key(ACCOUNT, REGION, unique="DELETED")
    s3 = watch.client("s3")
    s3.put_object(Bucket=BUCKET, Key=key, Body=synth.gzip_log(synth.background_records(5, random.Random(4))))
    marker = s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
    watch.wait_until(
        lambda: any(a["source"] == f"s3://{BUCKET}/{key}" for a in watch.tamper(DELETED)), "the delete alert"
    )
    [alert] = [a for a in watch.tamper(DELETED) if a["source"] == f"s3://{BUCKET}/{key}"]
    assert (alert["severity"], alert["version_id"]) == ("high", marker)
    assert "ObjectRemoved:DeleteMarkerCreated" in alert["description"]
