"""A live trail: `create_user` through boto3 against the emulator yields, within 15 s, a
CloudTrail file in the trail bucket holding a CreateUser record with the caller's identity, an item in the
table and an alert on a subscribed queue. Nothing is staged: the record comes from the emulator's recorder.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from trailwatch.local.server import LocalAWS

from tests.e2e.conftest import ClientFactory, Watch

pytestmark = pytest.mark.e2e

LOCAL_AWS_OPTIONS = {"cloudtrail": True}  # delivery every second
BUCKET = "tw-live-trail-bucket"
DEADLINE_SECONDS = 15.0


@pytest.fixture(scope="module")
def stack(deploy_watched: Callable[..., Watch]) -> dict[str, str]:
    """main.yaml with the real processor, the bundled config and a queue subscribed to the alert topic."""
    watch = deploy_watched("tw-live", BUCKET)
    return {**watch.outputs, "AlertQueueUrl": watch.alert_queue}


def _caller(local_aws: LocalAWS, aws_client: ClientFactory, name: str) -> tuple[Any, dict[str, str]]:
    """An IAM user with its own access keys (created as root) and an IAM client using those keys."""
    iam = aws_client("iam")
    user = iam.create_user(UserName=name)["User"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    client = boto3.client(
        "iam",
        endpoint_url=local_aws.endpoint,
        region_name=local_aws.region,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        config=Config(retries={"max_attempts": 1}),
    )
    return client, {"arn": user["Arn"], "accessKeyId": key["AccessKeyId"], "userName": name}


def _trail_records(s3: Any) -> list[tuple[str, dict[str, Any]]]:
    """(key, record) of every delivered CloudTrail log file in the trail bucket."""
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="AWSLogs/"):
        for obj in page.get("Contents", []):
            if "/CloudTrail/" not in obj["Key"]:
                continue
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            out += [(obj["Key"], r) for r in json.loads(gzip.decompress(body))["Records"]]
    return out


def _poll(what: str, started: float, find: Callable[[], Any]) -> Any:
    while True:
        found = find()
        if found:
            return found
        if time.monotonic() - started > DEADLINE_SECONDS:
            raise AssertionError(f"no {what} within {DEADLINE_SECONDS:.0f} s of the create_user call")
        time.sleep(0.2)


def test_create_user_reaches_trail_table_and_alert_within_15_s(
    local_aws: LocalAWS, aws_client: ClientFactory, stack: dict[str, str]
) -> None:
    iam, identity = _caller(local_aws, aws_client, "ops-engineer")
    s3, sqs = aws_client("s3"), aws_client("sqs")

    started = time.monotonic()
    response = iam.create_user(UserName="mallory")
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    request_id = headers.get("x-amzn-requestid") or response["ResponseMetadata"]["RequestId"]

    def record() -> tuple[str, dict[str, Any]] | None:
        return next(
            (
                (key, r)
                for key, r in _trail_records(s3)
                if r["eventName"] == "CreateUser"
                and (r.get("requestParameters") or {}).get("userName") == "mallory"
            ),
            None,
        )

    key, logged = _poll("CloudTrail file with the CreateUser record", started, record)
    assert key.startswith(f"AWSLogs/{local_aws.account_id}/CloudTrail/{local_aws.region}/") and key.endswith(
        ".json.gz"
    )
    assert logged["eventSource"] == "iam.amazonaws.com" and logged["requestID"] == request_id
    who = logged["userIdentity"]
    assert (who["type"], who["arn"], who["accessKeyId"], who["userName"], who["accountId"]) == (
        "IAMUser",
        identity["arn"],
        identity["accessKeyId"],
        identity["userName"],
        local_aws.account_id,
    )
    event_id = logged["eventID"]

    def item() -> dict[str, Any] | None:
        got = aws_client("dynamodb").get_item(
            TableName=stack["EventsTableName"], Key={"EventId": {"S": event_id}}
        )
        found = got.get("Item")
        # The fast path may store it before its file: the file then names itself on the item.
        return found if found and "log_key" in found else None

    stored = _poll("item in the table, named with its log file", started, item)
    assert stored["event_name"]["S"] == "CreateUser" and stored["principal_arn"]["S"] == identity["arn"]
    assert stored["log_key"]["S"] == key and stored["rule_id"]["S"] == "CreateUser"

    alerts: list[dict[str, Any]] = []

    def alert() -> dict[str, Any] | None:
        messages = sqs.receive_message(
            QueueUrl=stack["AlertQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        alerts.extend(json.loads(m["Body"]) for m in messages.get("Messages", []))
        return next((a for a in alerts if event_id in a["eventIDs"]), None)

    received = _poll("alert on the subscribed queue", started, alert)
    assert received["rule"] == "CreateUser"
    if received.get("path") == "eventbridge":  # alerted by the fast path, before the file existed
        assert stored["path"]["S"] == "eventbridge"
    else:
        assert received["log_key"] == key
    assert time.monotonic() - started <= DEADLINE_SECONDS
