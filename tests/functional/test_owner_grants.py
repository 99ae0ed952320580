"""owner-grants: the owner's side is generated, and applying it merges (never drops) what is there."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws
from trailwatch import owner_grants as og

OWNER_REGION = "eu-west-1"
BUCKET = "org-trail-archive"
ROLE = "arn:aws:iam::123456789012:role/trailwatch-ProcessorRole-X"


def cloudtrail_write_statement(resource: str) -> dict[str, Any]:
    """The statement a trail bucket's policy has (CloudTrail may write the log files): the owner's own."""
    return {
        "Sid": "AWSCloudTrailWrite",
        "Effect": "Allow",
        "Principal": {"Service": "cloudtrail.amazonaws.com"},
        "Action": "s3:PutObject",
        "Resource": resource,
    }


EXISTING_POLICY = {
    "Version": "2012-10-17",
    "Statement": [cloudtrail_write_statement(f"arn:aws:s3:::{BUCKET}/AWSLogs/*")],
}


def _attachment(**kw: Any) -> og.Attachment:
    base = {"bucket": BUCKET, "prefix": "org/", "role_arn": ROLE, "monitoring_account": "123456789012",
            "monitoring_region": "us-east-1"}  # fmt: skip
    return og.Attachment(**{**base, **kw})


@pytest.fixture
def owner() -> Any:
    with mock_aws():
        s3 = boto3.client("s3", region_name=OWNER_REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": OWNER_REGION})
        sqs = boto3.client("sqs", region_name=OWNER_REGION)
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=sqs.create_queue(QueueName="their-queue")["QueueUrl"], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(EXISTING_POLICY))
        their = {
            "QueueConfigurations": [
                {"Id": "theirs", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]},
            ]
        }
        s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=their)
        yield s3


def _notifications(s3: Any) -> dict[str, Any]:
    return {
        k: v
        for k, v in s3.get_bucket_notification_configuration(Bucket=BUCKET).items()
        if k in og.NOTIFICATION_KEYS
    }


class _Recording:
    """The owner's S3 client, recording every notification configuration written."""

    def __init__(self, s3: Any) -> None:
        self.s3, self.written = s3, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)

    def put_bucket_notification_configuration(self, **kw: Any) -> Any:
        self.written.append(kw["NotificationConfiguration"])
        return self.s3.put_bucket_notification_configuration(**kw)


def test_apply_never_removes_an_existing_notification(owner: Any) -> None:
    before = _notifications(owner)
    s3 = _Recording(owner)
    done = og.apply(s3, None, None, _attachment(), OWNER_REGION)
    # What was written: everything that was there, plus EventBridge (moto does not echo it back on GET).
    assert s3.written == [{**before, "EventBridgeConfiguration": {}}]
    assert _notifications(owner)["QueueConfigurations"] == before["QueueConfigurations"]
    assert any("EventBridge added" in line for line in done)
    og.apply(s3, None, None, _attachment(), OWNER_REGION)  # again: nothing lost
    assert _notifications(owner)["QueueConfigurations"] == before["QueueConfigurations"]


def test_apply_merges_the_bucket_policy_by_sid(owner: Any) -> None:
    og.apply(owner, None, None, _attachment(), OWNER_REGION)
    og.apply(owner, None, None, _attachment(), OWNER_REGION)
    policy = json.loads(owner.get_bucket_policy(Bucket=BUCKET)["Policy"])
    sids = [s["Sid"] for s in policy["Statement"]]
    assert sids == ["AWSCloudTrailWrite", "TrailwatchReadLogs", "TrailwatchReadVersions"]
    logs = policy["Statement"][1]
    assert logs["Principal"] == {"AWS": ROLE}
    assert logs["Resource"] == f"arn:aws:s3:::{BUCKET}/org/AWSLogs/*"


def test_trail_sns_mode_leaves_notifications_alone(owner: Any) -> None:
    before = _notifications(owner)
    topic = f"arn:aws:sns:{OWNER_REGION}:210987654321:trail"
    og.apply(owner, None, None, _attachment(notification="trail-sns", trail_topic_arn=topic), OWNER_REGION)
    assert _notifications(owner) == before


def test_kms_statement_merged_into_the_key_policy(owner: Any) -> None:
    kms = boto3.client("kms", region_name=OWNER_REGION)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    original = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])["Statement"]
    og.apply(owner, kms, None, _attachment(kms_key_arn=key), OWNER_REGION)
    merged = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])["Statement"]
    assert merged[: len(original)] == original
    assert merged[-1]["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{OWNER_REGION}.amazonaws.com"}}


def test_forwarding_rule_targets_the_monitoring_default_bus() -> None:
    rule = og.forwarding_rule(_attachment())
    assert rule is not None
    assert rule["Target"] == "arn:aws:events:us-east-1:123456789012:event-bus/default"
    assert rule["EventPattern"]["detail"]["object"]["key"] == [{"prefix": "org/AWSLogs/"}]
    assert og.forwarding_rule(_attachment(notification="trail-sns")) is None


def test_with_eventbridge_keeps_every_destination() -> None:
    config = {
        "TopicConfigurations": [{"TopicArn": "t", "Events": ["s3:ObjectCreated:*"]}],
        "QueueConfigurations": [{"QueueArn": "q", "Events": ["s3:ObjectRemoved:*"]}],
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": "l", "Events": ["s3:ObjectCreated:Put"]}],
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }
    merged = og.with_eventbridge(config)
    assert merged == {
        **{k: config[k] for k in og.NOTIFICATION_KEYS if k in config},
        "EventBridgeConfiguration": {},
    }


def test_apply_creates_the_forwarding_rule_with_its_role_idempotently(owner: Any) -> None:
    events = boto3.client("events", region_name=OWNER_REGION)
    iam = boto3.client("iam", region_name=OWNER_REGION)
    for _ in range(2):
        done = og.apply(owner, None, None, _attachment(), OWNER_REGION, events=events,
                        owner_account="210987654321", iam=iam)  # fmt: skip
    assert any("forwards" in line for line in done)
    (rule,) = events.list_rules(NamePrefix="trailwatch-forward-")["Rules"]
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == "arn:aws:events:us-east-1:123456789012:event-bus/default"
    policy = iam.get_role_policy(RoleName=target["RoleArn"].rsplit("/", 1)[-1], PolicyName="put-events")
    assert policy["PolicyDocument"]["Statement"][0]["Resource"] == target["Arn"]


def test_no_forwarding_rule_when_the_bucket_is_on_the_stack_bus(owner: Any) -> None:
    events = boto3.client("events", region_name=OWNER_REGION)
    same = _attachment(monitoring_region=OWNER_REGION)
    og.apply(owner, None, None, same, OWNER_REGION, events=events, owner_account="123456789012")
    assert events.list_rules(NamePrefix="trailwatch-forward-")["Rules"] == []
