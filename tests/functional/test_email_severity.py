"""The alert mail's severity floor (main.yaml ``EmailMinimumSeverity``) and the alarms' own path: the
template's email subscriptions for each level, applied by SNS (moto) to the messages the processor itself
publishes (alert topic) and to an alarm notification as CloudWatch sends it, without message attributes,
to the topic named in the alarms' AlarmActions."""

from __future__ import annotations

import json

import boto3
import pytest
from trailwatch_processor import alerts, records
from trailwatch_processor.config import SEVERITIES, severity_rank

from tests.functional import factories as f
from tests.unit.template_helpers import load_template, props, resolve

TEMPLATE = load_template()


def subscription_attributes(logical_id: str, level: str) -> dict[str, str]:
    """An email subscription's filter attributes when deployed with EmailMinimumSeverity=level (none when
    it has no filter policy)."""
    subscription = props(TEMPLATE, logical_id)
    filters = {k: subscription[k] for k in ("FilterPolicy", "FilterPolicyScope") if k in subscription}
    resolved = resolve(TEMPLATE, filters, {"EmailMinimumSeverity": level})
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in resolved.items()}


def email_subscriptions() -> dict[str, str]:
    """logical id of each email subscription to AlertEmail -> logical id of its topic."""
    return {
        name: res["Properties"]["TopicArn"]["Ref"]
        for name, res in TEMPLATE["Resources"].items()
        if res["Type"] == "AWS::SNS::Subscription"
        and res["Properties"]["Protocol"] == "email"
        and res["Properties"]["Endpoint"] == {"Ref": "AlertEmail"}
        and res.get("Condition") in (None, "IsHome")  # in every home stack (IsHome: not in forwarders)
    }


def alarm_topics() -> set[str]:
    """The topics the stack's alarms notify (AlarmActions and OKActions)."""
    return {
        action["Ref"]
        for res in TEMPLATE["Resources"].values()
        if res["Type"] == "AWS::CloudWatch::Alarm"
        for key in ("AlarmActions", "OKActions")
        for action in res["Properties"].get(key, [])
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
    queue_url = sqs.create_queue(QueueName="mailbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    topics = {
        logical: sns.create_topic(Name=logical)["TopicArn"]
        for logical in {"AlertTopic", *email_subscriptions().values(), *alarm_topics()}
    }
    for subscription, topic in email_subscriptions().items():  # the mailbox, as each email subscription
        attributes = {"RawMessageDelivery": "true", **subscription_attributes(subscription, level)}
        sns.subscribe(
            TopicArn=topics[topic], Protocol="sqs", Endpoint=queue_arn["QueueArn"], Attributes=attributes
        )

    for severity in SEVERITIES:
        alerts.publish(sns, topics["AlertTopic"], detection_alert(severity))
    operational = alerts.operational_alert("Config invalid", "detail", source="s3://b/config", severity="low")
    alerts.publish(sns, topics["AlertTopic"], operational)
    for topic in alarm_topics():  # as CloudWatch does: no message attributes
        sns.publish(TopicArn=topics[topic], Subject="ALARM: dead-letter queue", Message=ALARM)

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


def test_alarms_do_not_depend_on_a_filter_policy() -> None:
    """AWS delivers an attribute-less message (every alarm notification) to no subscription with a filter
    policy: each alarm topic's email subscription has none, and no alarm notifies the alert topic."""
    assert alarm_topics() and "AlertTopic" not in alarm_topics()
    subscriptions = email_subscriptions()
    for topic in alarm_topics():
        mailed = [name for name, t in subscriptions.items() if t == topic]
        assert mailed and all(subscription_attributes(name, "critical") == {} for name in mailed), topic
