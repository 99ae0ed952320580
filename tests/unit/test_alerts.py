"""alerts: subject limits, message structure and size, attributes."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from trailwatch_processor import alerts, records

from tests.functional import factories as f

ROOT_RULE = "cis-4.3-root-account-usage"


def _alert(n: int = 3, *, title: str = "Root account used", rule_id: str = ROOT_RULE, **kw) -> alerts.Alert:
    recs = [f.root_login() for _ in range(n)]
    return alerts.Alert(
        rule_id=rule_id,
        title=title,
        severity=kw.pop("severity", "critical"),
        event_ids=[records.event_id(r) for r in recs],
        events=[records.summary(r) for r in recs],
        log_bucket="trail-bucket",
        log_key="AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/f.json.gz",
        table="SecurityEvents",
        **kw,
    )


def _check_subject(subject: str) -> None:
    assert len(subject) <= alerts.SUBJECT_MAX
    assert subject.isascii()
    assert "\n" not in subject and "\r" not in subject and "\t" not in subject
    assert subject == subject.strip() and subject


def test_subject_example() -> None:
    subject = alerts.make_subject("critical", "cis-4.3-root-account-usage", "Root account used", 3)
    assert subject == "[trailwatch] CRITICAL cis-4.3-root-account-usage: Root account used (3)"


@pytest.mark.parametrize(
    ("rule_id", "title"),
    [
        ("r", "Ünïcödé ✓ title — with “quotes” and emoji 🚨 " * 10),
        ("r", "line one\nline two\r\n\ttabbed"),
        ("r", "日本語のタイトル"),
        ("r", ""),
        ("x" * 150, "title"),
        ("rule-" + "é" * 120, "t" * 300),
        ("cis-4.3-root-account-usage", "A" * 95),
    ],
)
def test_subject_limits_hold(rule_id: str, title: str) -> None:
    subject = alerts.make_subject("critical", rule_id, title, 12345)
    _check_subject(subject)


def test_long_title_is_cut_and_keeps_the_count() -> None:
    subject = alerts.make_subject("high", "rule", "word " * 50, 7)
    assert subject.endswith("... (7)") and subject.startswith("[trailwatch] HIGH rule: word")


def test_accents_are_folded_not_dropped() -> None:
    assert "Creee par Jose" in alerts.make_subject("low", "r", "Créée par José", 1)


def test_message_structure_and_bodies() -> None:
    alert = _alert(3)
    msg = alerts.build_alert(alert)
    doc = json.loads(msg.message)
    # one copy of the JSON body, SNS's default for every protocol without its own key (sqs, lambda, https...)
    assert set(doc) == {"default", "email"}
    assert all(isinstance(v, str) for v in doc.values())
    body = json.loads(doc["default"])
    assert body["rule"] == alert.rule_id and body["severity"] == "critical" and body["count"] == 3
    assert body["eventIDs"] == alert.event_ids and body["title"] == "Root account used"
    assert body["log_key"] == alert.log_key and len(body["events"]) == 3
    email = doc["email"]
    for needle in (
        "Root account used",
        "CRITICAL",
        "arn:aws:iam::123456789012:root",
        "198.51.100.7",
        "2024-01-15T10:00:00Z",
        "us-east-1",
        "123456789012",
        "3 matching event(s)",
        f"trailwatch events --rule {alert.rule_id}",
        "EventId",
        *alert.event_ids,
    ):
        assert needle in email, needle
    _check_subject(msg.subject)


def test_attributes() -> None:
    msg = alerts.build_alert(_alert(2))
    assert msg.attributes == {
        "severity": {"DataType": "String", "StringValue": "critical"},
        "rule": {"DataType": "String", "StringValue": "cis-4.3-root-account-usage"},
        "eventName": {"DataType": "String", "StringValue": "ConsoleLogin"},
        "account": {"DataType": "String", "StringValue": "123456789012"},
    }


def test_attributes_are_never_empty() -> None:
    alert = alerts.Alert(rule_id="r", title="t", severity="low", event_ids=["e"], events=[{"eventID": "e"}])
    attrs = alerts.build_alert(alert).attributes
    assert attrs["eventName"]["StringValue"] == "unknown" and attrs["account"]["StringValue"] == "unknown"


def _many(n: int) -> alerts.Alert:
    """An alert of ``n`` events (UUID IDs) with summaries of the first few, as the processor sends."""
    recs = [f.root_login() for _ in range(alerts.MAX_EVENTS)]
    ids = [records.event_id(r) for r in recs] + [str(uuid.uuid4()) for _ in range(n - len(recs))]
    return alerts.Alert(
        ROOT_RULE,
        "Root account used",
        "critical",
        ids,
        [records.summary(r) for r in recs],
        log_bucket="b",
        log_key="AWSLogs/k.json.gz",
        table="SecurityEvents",
    )


@pytest.mark.parametrize("n", [120, 500, 2_000])
def test_every_event_id_that_fits_is_listed(n: int) -> None:
    alert = _many(n)
    msg = alerts.build_alert(alert)
    assert alerts.sns_size(msg) <= alerts.MESSAGE_MAX_BYTES
    doc = json.loads(msg.message)
    body = json.loads(doc["default"])
    assert body["count"] == n and body["eventIDs"] == alert.event_ids
    assert body["eventIDs_truncated"] is False and "eventIDs_missing" not in body
    assert len(body["events"]) == alerts.MAX_EVENTS
    # the email stays readable: the first IDs, and where the rest are
    assert f"first 50 of {n}" in doc["email"] and alert.event_ids[50] not in doc["email"]


def test_ids_that_do_not_fit_are_counted_with_how_to_fetch_them() -> None:
    alert = _many(20_000)
    msg = alerts.build_alert(alert)
    assert alerts.sns_size(msg) <= alerts.MESSAGE_MAX_BYTES
    body = json.loads(json.loads(msg.message)["default"])
    listed = body["eventIDs"]
    assert 5_000 < len(listed) < 20_000 and listed == alert.event_ids[: len(listed)]
    assert body["eventIDs_truncated"] is True and body["eventIDs_missing"] == 20_000 - len(listed)
    assert f"trailwatch events --rule {ROOT_RULE}" in body["eventIDs_fetch"]
    # as many as fit: one more ID would break the limit
    assert alerts.sns_size(msg) + len(alert.event_ids[len(listed)]) + 3 > alerts.MESSAGE_BUDGET_BYTES - 64


def test_sns_size_counts_message_and_attributes() -> None:
    msg = alerts.SnsMessage("s", "é" * 10, {"rule": {"DataType": "String", "StringValue": "abc"}})
    assert alerts.sns_size(msg) == 20 + len("rule") + len("String") + 3


def test_huge_events_shrink_to_fit_256_kb() -> None:
    recs = [f.root_login(userAgent="ü" * 10_000, errorMessage="m" * 10_000) for _ in range(20)]
    events = [{**records.summary(r), "userAgent": "ü" * 40_000} for r in recs]  # uncapped on purpose
    alert = alerts.Alert("r", "t", "high", [records.event_id(r) for r in recs], events)
    msg = alerts.build_alert(alert)
    size = len(msg.message.encode()) + len(msg.subject) + len(json.dumps(msg.attributes))
    assert size <= alerts.MESSAGE_MAX_BYTES
    body = json.loads(json.loads(msg.message)["default"])
    assert body["count"] == 20 and len(body["eventIDs"]) == 20 and len(body["events"]) < 20


def test_operational_alert() -> None:
    msg = alerts.operational_alert("Invalid config", "rules[0].id: missing", source="s3://b/config/x.json")
    doc = json.loads(msg.message)
    body = json.loads(doc["default"])
    assert body["rule"] == alerts.OPERATIONAL_RULE and body["count"] == 0
    assert "rules[0].id: missing" in doc["email"] and "s3://b/config/x.json" in doc["email"]
    assert msg.attributes["rule"]["StringValue"] == alerts.OPERATIONAL_RULE
    # Every alert carries all four: the email filter policy (main.yaml) knows alarms by a missing account.
    assert set(msg.attributes) == {"severity", "rule", "eventName", "account"}
    assert msg.subject == "[trailwatch] HIGH trailwatch-operational: Invalid config"
    _check_subject(msg.subject)


def test_publish_passes_everything() -> None:
    calls = []

    class FakeSns:
        def publish(self, **kwargs):
            calls.append(kwargs)
            return {"MessageId": "m-1"}

    msg = alerts.build_alert(_alert(1))
    assert alerts.publish(FakeSns(), "arn:topic", msg) == "m-1"
    assert calls == [
        {
            "TopicArn": "arn:topic",
            "Subject": msg.subject,
            "Message": msg.message,
            "MessageStructure": "json",
            "MessageAttributes": msg.attributes,
        }
    ]


@pytest.mark.parametrize(
    "forged",
    [
        "aws-cli/2\n\nAPPROVED change window; no action needed",
        "ua\r\nSeverity: LOW",
        "ua\x1b[2K\x1b[1Aerased",
        "ua\u2028Severity: LOW",
        "ua\x85next line",
    ],
)
def test_record_fields_cannot_write_lines_into_the_email(forged: str) -> None:
    rec = f.root_login(userAgent=forged, errorCode="E\nFake: line", errorMessage="m\x00")
    alert = alerts.Alert(ROOT_RULE, "t", "critical", [records.event_id(rec)], [records.summary(rec)])
    email = json.loads(alerts.build_alert(alert).message)["email"]
    assert not any(ch in email for ch in "\r\x1b\x00\x85\u2028")
    [ua_line] = [line for line in email.splitlines() if "user agent:" in line]
    assert ua_line.endswith(forged.encode("unicode_escape").decode("ascii"))
    assert not any(line.startswith(("APPROVED", "Severity: LOW", "Fake:")) for line in email.splitlines())


@pytest.mark.parametrize("n", [500, 20_000])
def test_published_alert_reaches_an_sqs_subscriber_whole(n: int) -> None:
    """Through SNS (moto): the JSON body is what an SQS subscription receives, every listed ID with it."""
    from moto import mock_aws

    alert = _many(n)
    msg = alerts.build_alert(alert)
    with mock_aws():
        sns, sqs = (boto3.client(s, region_name="us-east-1") for s in ("sns", "sqs"))
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="machine")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        alerts.publish(sns, topic, msg)
        [received] = sqs.receive_message(QueueUrl=queue)["Messages"]
    body = json.loads(received["Body"])
    assert body["count"] == n and body["eventIDs"] == alert.event_ids[: len(body["eventIDs"])]
    assert len(body["eventIDs"]) == (n if n == 500 else n - body["eventIDs_missing"])


def test_a_rule_title_is_one_line_in_the_email() -> None:
    email = json.loads(alerts.build_alert(_alert(1, title="Root used\nSeverity: LOW")).message)["email"]
    assert email.splitlines()[0] == "trailwatch alert: Root used\\nSeverity: LOW"
