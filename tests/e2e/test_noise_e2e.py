"""Noise control end to end on the local AWS: main.yaml with the real processor zip, a Slack and a
signed webhook output pointing at loopback receivers, and a config with a dedup window (0.3 min), a threshold
and a suppression. One stack for the module; every log file is written at once so the waits overlap.

- a burst of 50 identical denied calls by one role -> one alert, then one summary with count 49;
- a threshold rule (3 failed sign-ins from one IP) alerts exactly once when crossed, counted across two files;
  another IP with 2 failures never alerts;
- a suppressed event is stored and marked, not alerted (an unsuppressed one of the same rule is);
- every alert reaches the webhook receiver with a valid signature and the Slack-format receiver with severity,
  rule, who, what, where (account, region, source IP), when, the console link, and the count when grouped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from trailwatch import synth
from trailwatch.package import build_package
from trailwatch_processor.outputs import webhook

from tests.e2e.conftest import (
    ACCOUNT,
    REGION,
    ClientFactory,
    Receiver,
    create_output_secrets,
    scan_table,
    subscribe_alert_queue,
    take_messages,
)

pytestmark = pytest.mark.e2e

STACK = "tw-noise"
BUCKET = "tw-noise-trail-bucket"
WAIT_SECONDS = 120.0

ROLE = synth.assumed_role("scanner")
PROVISIONER = synth.iam_user("provisioner")
MALLORY = synth.iam_user("mallory")
GUESSER_IP, OTHER_IP = "203.0.113.50", "198.51.100.77"

CONFIG: dict[str, Any] = {
    "rules": [
        {
            "id": "denied-burst",
            "title": "Denied API call",
            "severity": "medium",
            "pattern": {"errorCode": [{"prefix": "AccessDenied"}]},
            "dedup": {"group_by": ["userIdentity.arn", "eventName"], "window_minutes": 0.3},
        },
        {
            "id": "password-guessing",
            "title": "Failed console sign-ins from one address",
            "severity": "high",
            "pattern": {"eventName": ["ConsoleLogin"], "errorMessage": ["Failed authentication"]},
            "threshold": {"count": 3, "window_minutes": 5, "group_by": ["sourceIPAddress"]},
        },
        {
            "id": "new-user",
            "title": "IAM user created",
            "severity": "high",
            "pattern": {"eventName": ["CreateUser"]},
        },
    ],
    "suppressions": [
        {
            "id": "provisioner",
            "pattern": {"userIdentity": {"arn": [PROVISIONER["arn"]]}},
            "reason": "the infrastructure pipeline creates users",
            "owner": "platform@example.com",
            "expires": "2099-01-01",
            "rules": ["new-user"],
        }
    ],
}


@dataclass
class Noise:
    client: ClientFactory
    outputs: dict[str, str]
    alert_queue: str
    receivers: dict[str, Receiver]
    alerts: list[dict[str, Any]] = field(default_factory=list)  # detections from the alert topic
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # story -> records written

    def drain(self) -> None:
        for message in take_messages(self.client("sqs"), self.alert_queue, wait_seconds=0):
            alert = json.loads(message["Body"])
            if alert.get("rule") != "trailwatch-operational":
                self.alerts.append(alert)

    def of_rule(self, rule: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["rule"] == rule]

    def items(self) -> dict[str, dict[str, Any]]:
        table = self.outputs["EventsTableName"]
        out: dict[str, dict[str, Any]] = {}
        for item in scan_table(self.client, table):
            if "kind" not in item:  # operational markers and noise state are not events
                out[item["EventId"]["S"]] = {k: next(iter(v.values())) for k, v in item.items()}
        return out

    def wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            self.drain()
            if done():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {len(self.alerts)} alerts")
            time.sleep(0.5)


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["eventID"] for r in records]


@pytest.fixture(scope="module")
def noise(
    aws_client: ClientFactory, deploy_stack: Callable[..., dict[str, str]], receivers: dict[str, Receiver]
) -> Noise:
    parameters = {
        "TrailBucketName": BUCKET,
        "AlertEmail": "e2e@example.com",
        "FunctionTimeout": "30",
        **create_output_secrets(aws_client, STACK, receivers),
    }
    outputs = deploy_stack(STACK, parameters, code=build_package().data)
    aws_client("s3").put_object(Bucket=BUCKET, Key="config/monitored_events.json", Body=json.dumps(CONFIG))
    queue = subscribe_alert_queue(aws_client, outputs["AlertTopicArn"], "tw-noise-alerts")
    return Noise(aws_client, outputs, queue, receivers)


@pytest.fixture(scope="module")
def delivered(noise: Noise) -> Noise:
    """Every story's log files, written at once; then wait until each story's alerts are in."""
    now = datetime.now(UTC)  # windows and thresholds count recent events
    rec = synth.make_record
    burst = [
        rec("GetSecretValue", identity=ROLE, error_code="AccessDenied", source_ip="10.1.2.3", time=now)
        for _ in range(50)
    ]
    guessing = [synth.console_login("alice", success=False, source_ip=GUESSER_IP, time=now) for _ in range(4)]
    other = [synth.console_login("bob", success=False, source_ip=OTHER_IP, time=now) for _ in range(2)]
    suppressed = [
        rec("CreateUser", identity=PROVISIONER, request_parameters={"userName": "svc-app"}, time=now)
    ]
    alerted = [rec("CreateUser", identity=MALLORY, request_parameters={"userName": "backdoor"}, time=now)]
    noise.records = {
        "burst": burst,
        "guessing": guessing,
        "other": other,
        "suppressed": suppressed,
        "alerted": alerted,
    }
    files = [burst, guessing[:2] + other[:1], guessing[2:] + other[1:], suppressed + alerted]
    s3 = noise.client("s3")
    for i, records in enumerate(files):
        key = synth.log_key(ACCOUNT, REGION, unique=f"NOISE{i}")
        s3.put_object(Bucket=BUCKET, Key=key, Body=synth.gzip_log(records))
    noise.wait(
        lambda: (
            sum(a["count"] for a in noise.of_rule("denied-burst")) >= 50
            and noise.of_rule("password-guessing")
            and noise.of_rule("new-user")
        ),
        "the first alert and the summary of the burst, the threshold's alert, the unsuppressed CreateUser",
    )
    time.sleep(2)  # a duplicate would show now
    noise.drain()
    return noise


def test_a_burst_of_50_is_one_alert_and_one_summary_with_count_49(delivered: Noise) -> None:
    burst = _ids(delivered.records["burst"])
    alerts = sorted(delivered.of_rule("denied-burst"), key=lambda a: a["count"])
    assert [a["count"] for a in alerts] == [1, 49]
    first, summary = alerts
    assert first["eventIDs"] == [burst[0]]
    assert set(first["eventIDs"]) | set(summary["eventIDs"]) == set(burst)
    items = delivered.items()
    assert {e for e in burst if e in items} == set(burst), "every event of the burst is stored"
    statuses = sorted(items[e]["alert_status"] for e in burst)
    assert statuses == ["grouped"] * 49 + ["sent"]
    [head] = first["eventIDs"]
    assert {items[e].get("grouped_into") for e in burst if e != head} == {head}


def test_a_threshold_alerts_exactly_once_when_crossed(delivered: Noise) -> None:
    [alert] = delivered.of_rule("password-guessing")
    guessing, other = _ids(delivered.records["guessing"]), _ids(delivered.records["other"])
    assert set(alert["eventIDs"]) <= set(guessing) and alert["eventIDs"]
    assert {e["sourceIPAddress"] for e in alert["events"]} == {GUESSER_IP}
    items = delivered.items()
    assert set(guessing + other) <= set(items), "every failure is stored"
    assert {items[e]["alert_status"] for e in other} == {"below-threshold"}


def test_a_suppressed_event_is_stored_and_marked_but_not_alerted(delivered: Noise) -> None:
    [hidden] = _ids(delivered.records["suppressed"])
    [shown] = _ids(delivered.records["alerted"])
    item = delivered.items()[hidden]
    assert (item["suppressed_by"], item["alert_status"]) == ("provisioner", "suppressed")
    alerted = {e for a in delivered.alerts for e in a["eventIDs"]}
    assert hidden not in alerted and shown in alerted
    assert all(hidden.encode() not in body for r in delivered.receivers.values() for _, body in r.posts)


def test_every_alert_reaches_the_signed_webhook_and_slack_with_the_fields(delivered: Noise) -> None:
    hook, slack = delivered.receivers["webhook"], delivered.receivers["slack"]
    expected = len(delivered.alerts)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        len(_detections(hook)) >= expected and len(_detections(slack)) >= expected
    ):
        time.sleep(0.5)
    for headers, body in hook.posts:  # every post is signed, operational ones too
        assert webhook.verify_signature(hook.signing_key, body, headers[webhook.SIGNATURE_HEADER])
    posted = sorted(json.dumps(json.loads(body), sort_keys=True) for body in _detections(hook))
    assert posted == sorted(json.dumps(a, sort_keys=True) for a in delivered.alerts)
    slack_texts = [json.dumps(json.loads(body)["blocks"]) for body in _detections(slack)]
    assert len(slack_texts) == expected
    written = {r["eventID"]: r for records in delivered.records.values() for r in records}
    for alert in delivered.alerts:
        # a window's summary carries no event fields: Slack shows the group's first event (outputs/summary.py)
        first_id = alert["events"][0]["eventID"] if alert["events"] else alert["first_event_id"]
        record = written[first_id]
        is_summary = alert.get("kind") == "summary"
        [text] = [
            t
            for t in slack_texts
            if alert["rule"] in t
            and f"#/events/{first_id}" in t
            and ("grouped in this window" in t) == is_summary
        ]
        if alert["count"] > 1:
            assert f"*{alert['count']} events*" in text
        for value in (
            alert["severity"].upper(),
            record["userIdentity"]["arn"],
            record["eventName"],
            record["recipientAccountId"],
            record["awsRegion"],
            record["sourceIPAddress"],
            record["eventTime"],
            f"https://{record['awsRegion']}.console.aws.amazon.com/cloudtrailv2/home",
        ):
            assert value in text, (alert["rule"], value)


def _detections(receiver: Receiver) -> list[bytes]:
    """The posts about detections (not trailwatch's operational alerts, e.g. the config-loaded one)."""
    return [body for _, body in receiver.posts if b"trailwatch-operational" not in body]
