"""The whole pipeline: CloudTrail files written under `AWSLogs/` become items in the table and alerts on a
subscribed queue, a corrupt file ends in the DLQ, and nothing else is lost or duplicated.

The stack is the real main.yaml with the real processor zip on the local AWS. The recorder is off: every
object in the trail bucket is one this module wrote, so the expected items and alerts are exactly those of
the hand-written expectation table below (rule ids from events.json's semantics, not from the matcher).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import pytest
from trailwatch import synth
from trailwatch.local.lambda_runtime import POLL_WAIT_SECONDS
from trailwatch_processor.config_load import parse_config

from tests.e2e.conftest import (
    ACCOUNT,
    REGION,
    ROOT,
    ClientFactory,
    Watch,
    drain_until,
    scan_table,
    take_messages,
)

pytestmark = pytest.mark.e2e

STACK = "tw-pipeline"
BUCKET = "tw-pipeline-trail-bucket"
WAIT_SECONDS = 40.0

LOGIN = "ConsoleLogin"
CREATE_USER = "CreateUser"
UNAUTHORIZED = "cis-4.1-unauthorized-api-calls"
NO_MFA = "cis-4.2-console-signin-without-mfa"
ROOT_USE = "cis-4.3-root-account-usage"
IAM_POLICY = "cis-4.4-iam-policy-changes"
TRAIL = "cis-4.5-cloudtrail-config-changes"
AUTH_FAIL = "cis-4.6-console-auth-failures"
KMS = "cis-4.7-cmk-disabled-or-scheduled-deletion"
BUCKET_POLICY = "cis-4.8-s3-bucket-policy-changes"
SG = "cis-4.10-security-group-changes"
VPC = "cis-4.14-vpc-changes"


@dataclass(frozen=True)
class Case:
    """A record and what events.json says about it: every matching rule (config order), the primary."""

    name: str
    record: dict
    rule_ids: tuple[str, ...]
    primary: str | None


def _cases() -> list[Case]:
    user, root = synth.iam_user("mallory"), synth.root()
    rec = synth.make_record
    return [
        Case("create user", rec(CREATE_USER, identity=user), (CREATE_USER,), CREATE_USER),
        Case("login without MFA", synth.console_login("bob", mfa=False), (LOGIN, NO_MFA), NO_MFA),
        Case("login with MFA", synth.console_login("bob", mfa=True), (LOGIN,), LOGIN),
        Case("failed login", synth.console_login("bob", success=False), (LOGIN, AUTH_FAIL), AUTH_FAIL),
        Case("root login", synth.console_login(root_login=True), (LOGIN, NO_MFA, ROOT_USE), ROOT_USE),
        Case("root read", rec("ListUsers", identity=root), (ROOT_USE,), ROOT_USE),
        Case(
            "root via a service",
            rec("ListUsers", identity=synth.root(invoked_by="x.amazonaws.com")),
            (),
            None,
        ),
        Case(
            "root attaches a policy", rec("AttachUserPolicy", identity=root), (ROOT_USE, IAM_POLICY), ROOT_USE
        ),
        Case(
            "access denied",
            rec("GetSecretValue", identity=user, error_code="AccessDenied"),
            (UNAUTHORIZED,),
            UNAUTHORIZED,
        ),
        Case("other error", rec("GetObject", identity=user, error_code="NoSuchKey"), (), None),
        Case("attach policy", rec("AttachUserPolicy", identity=user), (IAM_POLICY,), IAM_POLICY),
        Case("create access key", rec("CreateAccessKey", identity=user), (), None),
        Case("stop logging", rec("StopLogging", identity=user), (TRAIL,), TRAIL),
        Case("schedule key deletion", rec("ScheduleKeyDeletion", identity=user), (KMS,), KMS),
        Case("bucket policy", rec("PutBucketPolicy", identity=user), (BUCKET_POLICY,), BUCKET_POLICY),
        Case("open security group", rec("AuthorizeSecurityGroupIngress", identity=user), (SG,), SG),
        Case("create vpc", rec("CreateVpc", identity=user), (VPC,), VPC),
        Case("create user again", rec(CREATE_USER, identity=user), (CREATE_USER,), CREATE_USER),
    ]


# Background traffic must be silent under events.json: none of these names is monitored, no root caller,
# no error code but NoSuchKey. Checked on the generated records so a change in synth cannot slip by.
QUIET_NAMES = {name for name, _ in synth.BACKGROUND_MIX}


def _background(n: int, rng: random.Random) -> list[dict]:
    records = synth.background_records(n, rng, monitored_fraction=0.0)
    for r in records:
        assert r["eventName"] in QUIET_NAMES and r["userIdentity"].get("type") != "Root", r
        assert r.get("errorCode") in (None, "NoSuchKey"), r
    return records


@dataclass
class Seen:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)  # CloudWatch alarm notifications (the DLQ's)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    dlq: list[str] = field(default_factory=list)
    operational: list[dict[str, Any]] = field(default_factory=list)  # alerts about trailwatch itself


@dataclass
class Pipeline:
    client: ClientFactory
    outputs: dict[str, str]
    alert_queue: str
    seen: Seen = field(default_factory=Seen)

    def drain(self, wait: int = 1) -> None:
        """Alerts and DLQ messages received so far (deleted from their queues), the table's items."""
        sqs = self.client("sqs")
        for m in take_messages(sqs, self.alert_queue, wait_seconds=wait):
            self._alert(m["Body"])
        for m in take_messages(sqs, self.outputs["DeadLetterQueueUrl"], wait_seconds=0):
            self.seen.dlq.append(m["Body"])
        for item in scan_table(self.client, self.outputs["EventsTableName"]):
            if not item["EventId"]["S"].startswith("trailwatch#"):  # config markers are not events
                self.seen.items[item["EventId"]["S"]] = item

    def _alert(self, body: str) -> None:
        alert = json.loads(body)
        if "AlarmName" in alert:  # a CloudWatch alarm notification (no rule)
            self.seen.alarms.append(alert)
        elif alert["rule"] == "trailwatch-operational":
            self.seen.operational.append(alert)
        else:
            self.seen.alerts.append(alert)

    def wait_until(self, done: Callable[[Seen], bool], what: str) -> None:
        drain_until(self.drain, lambda: done(self.seen), what, self.progress, WAIT_SECONDS)

    def progress(self) -> str:
        seen = self.seen
        return f"{len(seen.items)} items, {len(seen.alerts)} alerts, {len(seen.dlq)} DLQ messages"


@pytest.fixture(scope="module")
def pipeline(deploy_watched: Callable[..., Watch]) -> Pipeline:
    watch = deploy_watched(STACK, BUCKET, FunctionTimeout="30", MaxReceiveCount="1")
    return Pipeline(watch.client, watch.outputs, watch.alert_queue)


@pytest.fixture(scope="module")
def delivered(pipeline: Pipeline) -> dict[str, list[Case]]:
    """Three log files (background traffic with the cases mixed in) and a digest file: cases by log key."""
    rng = random.Random(5)
    cases = _cases()
    s3 = pipeline.client("s3")
    by_key: dict[str, list[Case]] = {}
    for i in range(3):
        chunk = cases[i::3]
        records = _background(60, rng)
        for case in chunk:
            records.insert(rng.randrange(len(records) + 1), case.record)
        key = synth.log_key(ACCOUNT, REGION, unique=f"PIPELINE{i}")
        s3.put_object(Bucket=BUCKET, Key=key, Body=synth.gzip_log(records))
        by_key[key] = chunk
    s3.put_object(Bucket=BUCKET, Key=synth.digest_key(ACCOUNT, REGION), Body=synth.digest_body())
    want = {c.record["eventID"] for c in cases if c.primary}
    pipeline.wait_until(
        lambda s: want <= set(s.items) and want <= {i for a in s.alerts for i in a["eventIDs"]},
        "items and alerts",
    )
    return by_key


def _s(item: dict[str, Any], name: str) -> Any:
    value = item[name]
    return value.get("S") or [v["S"] for v in value.get("L", [])]


def test_log_files_become_items_with_their_rules(
    pipeline: Pipeline, delivered: dict[str, list[Case]]
) -> None:
    expected = {c.record["eventID"]: (key, c) for key, chunk in delivered.items() for c in chunk if c.primary}
    assert set(pipeline.seen.items) == set(expected), "exactly the matching records are stored"
    for event_id, (key, case) in expected.items():
        item = pipeline.seen.items[event_id]
        got = (tuple(_s(item, "rule_ids")), _s(item, "rule_id"), _s(item, "log_key"), _s(item, "event_name"))
        assert got == (case.rule_ids, case.primary, key, case.record["eventName"]), case.name


def test_each_event_is_alerted_exactly_once_under_its_primary_rule(
    pipeline: Pipeline, delivered: dict[str, list[Case]]
) -> None:
    expected_alerts = Counter(
        (key, c.primary) for key, chunk in delivered.items() for c in chunk if c.primary
    )  # one alert per primary rule per log file, its count the events it covers
    got_alerts = Counter()
    for alert in pipeline.seen.alerts:
        got_alerts[(alert["log_key"], alert["rule"])] += alert["count"]
    assert got_alerts == expected_alerts
    assert len(pipeline.seen.alerts) == len(expected_alerts), "one alert per (log file, primary rule)"
    rules = len(parse_config((ROOT / "events.json").read_bytes()).rules)
    assert [a["title"] for a in pipeline.seen.operational] == [f"trailwatch config in force: {rules} rule(s)"]
    alerted = Counter((i, a["rule"]) for a in pipeline.seen.alerts for i in a["eventIDs"])
    want = Counter(
        (c.record["eventID"], c.primary) for chunk in delivered.values() for c in chunk if c.primary
    )
    assert alerted == want
    assert all(_s(i, "alert_status") == "sent" for i in pipeline.seen.items.values())


def test_corrupt_file_ends_in_the_dlq_and_nothing_else_changes(
    pipeline: Pipeline, delivered: dict[str, list[Case]]
) -> None:
    sqs = pipeline.client("sqs")
    queue = pipeline.outputs["LogQueueUrl"]
    # A failed message comes back after the visibility timeout (180 s for FunctionTimeout 30); shorten it so
    # the receive after maxReceiveCount (1) redrives it now. Set only here: the good files are done.
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "2"})
    # SQS takes the queue's timeout when a ReceiveMessage starts: let the runtime's current long poll end.
    time.sleep(POLL_WAIT_SECONDS + 0.5)
    items_before, alerts_before = dict(pipeline.seen.items), len(pipeline.seen.alerts)
    key = synth.log_key(ACCOUNT, REGION, unique="CORRUPT")
    pipeline.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"\x1f\x8b\x08\x00 this is not a log")
    pipeline.wait_until(lambda s: bool(s.dlq), "the DLQ")
    (body,) = pipeline.seen.dlq
    keys = [unquote_plus(r["s3"]["object"]["key"]) for r in json.loads(body)["Records"]]
    assert keys == [key]
    assert pipeline.seen.items == items_before and len(pipeline.seen.alerts) == alerts_before
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    in_queue = int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )
    assert in_queue == 0, "every other notification was consumed"
