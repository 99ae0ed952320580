"""main.yaml attach mode: no trail/bucket/key of ours; the processor reads, decrypts and is notified from
an existing trail bucket (S3 EventBridge events or the trail's SNS topic). Created-trail mode unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from trailwatch import cfn_template

from tests.unit.template_helpers import created, deployment, load_template, props, statements

OWNER = "210987654321"
HERE = "123456789012"
KEY_ARN = f"arn:aws:kms:eu-west-1:{OWNER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TOPIC_ARN = f"arn:aws:sns:eu-west-1:{OWNER}:org-trail-topic"
ATTACH = {
    "ExistingBucketName": "org-trail-archive",
    "ExistingBucketAccount": OWNER,
    "ExistingBucketRegion": "eu-west-1",
    "LogKeyPrefix": "org/",
    "ExistingLogFileKmsKeyArn": KEY_ARN,
}
ATTACH_ONLY = {
    "ExistingBucketEventsRule",
    "ExistingBucketAccountPutsEvents",
    "ExistingTrailTopicSubscription",
    "ProcessorReadsExistingBucket",
    "ProcessorDecryptsExistingLogs",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _evaluator(template: dict[str, Any], given: dict[str, str]) -> cfn_template.Evaluator:
    return deployment(template, given, account=HERE, region="us-east-1")


def _created(template: dict[str, Any], given: dict[str, str]) -> set[str]:
    return created(template, _evaluator(template, given))


def test_created_trail_mode_is_the_default_and_has_no_attach_resources(template: dict[str, Any]) -> None:
    created = _created(template, {})
    assert {"Trail", "TrailBucket", "TrailBucketPolicy", "LogDeliveryQueueSubscription"} <= created
    assert not created & ATTACH_ONLY
    env = _evaluator(template, {}).resolve(props(template, "ProcessorFunction")["Environment"])
    assert "LOG_BUCKET_OWNER" not in env["Variables"]


@pytest.mark.parametrize("kms", ["true", "false"])
def test_attach_mode_creates_no_trail_and_no_log_key(template: dict[str, Any], kms: str) -> None:
    created = _created(template, {**ATTACH, "LogFileKmsEncryption": kms})
    assert "Trail" not in created and "LogFileKey" not in created and "LogFileKeyAlias" not in created
    # TrailBucket stays as the small config bucket of ours (we cannot write into the owner's bucket).
    assert "TrailBucket" in created


def test_eventbridge_attach_receives_the_bucket_events_under_the_prefix(template: dict[str, Any]) -> None:
    created = _created(template, ATTACH)
    assert {"ExistingBucketEventsRule", "ExistingBucketAccountPutsEvents"} <= created
    assert "ExistingTrailTopicSubscription" not in created
    ev = _evaluator(template, ATTACH)
    rule = ev.resolve(props(template, "ExistingBucketEventsRule"))
    assert rule["EventBusName"] == "default"
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created", "Object Deleted"],
        "detail": {
            "bucket": {"name": ["org-trail-archive"]},
            "object": {"key": [{"prefix": "org/AWSLogs/"}]},
        },
    }
    assert rule["Targets"] == [{"Id": "LogProcessingQueue", "Arn": "LogProcessingQueue.Arn"}]
    bus = ev.resolve(props(template, "ExistingBucketAccountPutsEvents"))
    assert bus["Statement"]["Principal"] == {"AWS": f"arn:aws:iam::{OWNER}:root"}
    assert bus["Statement"]["Action"] == "events:PutEvents"
    [stmt] = [s for s in statements(ev.resolve(props(template, "LogProcessingQueuePolicy")["PolicyDocument"]))
              if s["Sid"] == "ExistingBucketEventsSend"]  # fmt: skip
    assert stmt["Principal"] == {"Service": "events.amazonaws.com"}
    assert stmt["Condition"] == {"ArnEquals": {"aws:SourceArn": "ExistingBucketEventsRule.Arn"}}


def test_same_account_bucket_needs_no_bus_policy(template: dict[str, Any]) -> None:
    for account in ("", HERE):
        created = _created(template, {**ATTACH, "ExistingBucketAccount": account})
        assert "ExistingBucketEventsRule" in created and "ExistingBucketAccountPutsEvents" not in created


def test_trail_sns_attach_subscribes_the_queue_to_the_trail_topic(template: dict[str, Any]) -> None:
    given = {**ATTACH, "NotificationSource": "trail-sns", "TrailTopicArn": TOPIC_ARN}
    created = _created(template, given)
    assert "ExistingTrailTopicSubscription" in created and "ExistingBucketEventsRule" not in created
    ev = _evaluator(template, given)
    raw = dict(props(template, "ExistingTrailTopicSubscription"))
    # The topic's region (index 3 of its ARN); the evaluator has no Fn::Select, so checked as written.
    assert raw.pop("Region") == {"Fn::Select": [3, {"Fn::Split": [":", {"Ref": "TrailTopicArn"}]}]}
    assert TOPIC_ARN.split(":")[3] == "eu-west-1"
    sub = ev.resolve(raw)
    assert sub == {
        "TopicArn": TOPIC_ARN,
        "Protocol": "sqs",
        "Endpoint": "LogProcessingQueue.Arn",
        "RawMessageDelivery": True,
    }
    sids = {
        s["Sid"]: s
        for s in statements(ev.resolve(props(template, "LogProcessingQueuePolicy")["PolicyDocument"]))
    }
    assert set(sids) == {"LogDeliveryTopicSends", "ExistingTrailTopicSends"}
    assert sids["ExistingTrailTopicSends"]["Condition"] == {"ArnEquals": {"aws:SourceArn": TOPIC_ARN}}


def test_processor_reads_and_decrypts_the_existing_bucket_only(template: dict[str, Any]) -> None:
    ev = _evaluator(template, ATTACH)
    read = {
        s["Sid"]: s
        for s in statements(ev.resolve(props(template, "ProcessorReadsExistingBucket")["PolicyDocument"]))
    }
    assert read["ReadExistingTrailLogs"]["Resource"] == "arn:aws:s3:::org-trail-archive/org/AWSLogs/*"
    assert read["ListExistingTrailLogVersions"]["Condition"] == {"StringLike": {"s3:prefix": "org/AWSLogs/*"}}
    [dec] = statements(ev.resolve(props(template, "ProcessorDecryptsExistingLogs")["PolicyDocument"]))
    assert (dec["Action"], dec["Resource"]) == ("kms:Decrypt", KEY_ARN)
    assert dec["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
    env = ev.resolve(props(template, "ProcessorFunction")["Environment"])["Variables"]
    assert env["LOG_BUCKET_OWNER"] == OWNER
    assert "ProcessorDecryptsExistingLogs" not in _created(
        template, {**ATTACH, "ExistingLogFileKmsKeyArn": ""}
    )


def test_bucket_region_defaults_to_the_stack_region(template: dict[str, Any]) -> None:
    ev = _evaluator(template, {**ATTACH, "ExistingBucketRegion": ""})
    [dec] = statements(ev.resolve(props(template, "ProcessorDecryptsExistingLogs")["PolicyDocument"]))
    assert dec["Condition"]["StringEquals"]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"


def test_trail_sns_without_topic_is_refused_by_a_rule(template: dict[str, Any]) -> None:
    rule = template["Rules"]["TrailSnsNeedsTopic"]
    given = {**ATTACH, "NotificationSource": "trail-sns", "TrailTopicArn": ""}
    ev = _evaluator(template, given)
    assert ev.holds(rule["RuleCondition"])
    assert not ev.holds(rule["Assertions"][0]["Assert"])
