"""The alert mail's severity floor (main.yaml ``EmailMinimumSeverity``): the template's filter policy for
each level, applied by SNS (moto) to the messages the processor itself publishes and to an alarm
notification as CloudWatch sends it (no message attributes)."""

from __future__ import annotations

import json

import boto3
import pytest
from trailwatch_processor import alerts, records
from trailwatch_processor.config import SEVERITIES, severity_rank

from tests.functional import factories as f
from tests.unit.template_helpers import load_template, props, resolve

TEMPLATE = load_template()


def email_subscription_attributes(level: str) -> dict[str, str]:
    """AlertEmailSubscription's filter attributes when deployed with EmailMinimumSeverity=level."""
    subscription = props(TEMPLATE, "AlertEmailSubscription")
    filters = {k: subscription[k] for k in ("FilterPolicy", "FilterPolicyScope")}
    resolved = resolve(TEMPLATE, filters, {"EmailMinimumSeverity": level})
    return {
        "FilterPolicy": json.dumps(resolved["FilterPolicy"]),
        "FilterPolicyScope": resolved["FilterPolicyScope"],
    }


ALARM = json.dumps({"AlarmName": "trailwatch-dead-letter-queue-not-empty", "NewStateValue": "ALARM"})


def detection_alert(severity: str) -> alerts.SnsMessage:
    recs = [f.root_login(), f.record("CreateUser")]
    return alerts.build_alert(
        alerts.Alert(
            rule_id=f"rule-{severity}",
            title=f"a {severity} detection",
            severity=severity,
            event_ids=[records.event_id(r) for r in recs],
            events=[records.summary(r) for r in recs],
            log_bucket="trail-bucket",
            log_key=f.log_key(),
            table="SecurityEvents",
        )
    )


@pytest.mark.parametrize("level", SEVERITIES)
def test_mail_gets_alerts_at_or_above_the_minimum_and_every_operational_alert_and_alarm(
    aws: None, boto_session: boto3.session.Session, level: str
) -> None:
    sns, sqs = boto_session.client("sns"), boto_session.client("sqs")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="mailbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    attributes = {"RawMessageDelivery": "true", **email_subscription_attributes(level)}
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["QueueArn"], Attributes=attributes)

    for severity in SEVERITIES:
        alerts.publish(sns, topic, detection_alert(severity))
    operational = alerts.operational_alert("Config invalid", "detail", source="s3://b/config", severity="low")
    alerts.publish(sns, topic, operational)
    sns.publish(TopicArn=topic, Subject="ALARM: dead-letter queue", Message=ALARM)  # as CloudWatch does

    got = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            body = json.loads(message["Body"])
            got.append((body["rule"], body["severity"]) if "rule" in body else (body["AlarmName"], "alarm"))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    mailed = [s for s in SEVERITIES if severity_rank(s) >= severity_rank(level)]
    expected = [(f"rule-{s}", s) for s in mailed] + [
        (alerts.OPERATIONAL_RULE, "low"),
        ("trailwatch-dead-letter-queue-not-empty", "alarm"),
    ]
    assert sorted(got) == sorted(expected)
