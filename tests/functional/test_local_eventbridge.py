"""The local AWS puts CloudTrail events on EventBridge as AWS does.

Functional tests: boto3 against a running `LocalAWS` (port 0, no Lambda runtime, an hour's log file interval
so nothing here depends on the trail's log files). Pattern semantics are checked against the processor's
matcher (`trailwatch_processor.patterns`), the reference for AWS's EventBridge semantics in this project.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from typing import Any

import boto3
import pytest
from moto.events.models import EventPattern
from trailwatch.local import eventbridge, moto_patches
from trailwatch.local.commands import create_dev_user, export_lines
from trailwatch.local.periodic import PeriodicThread
from trailwatch.local.server import LocalAWS
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.patterns import compile_config

from tests.local_up import local_up
from tests.polling import wait_until

ACCOUNT = "123456789012"
ENVELOPE_KEYS = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}


@pytest.fixture
def local_aws(fresh_local_aws: LocalAWS) -> LocalAWS:
    """This module's tests share one server, forgotten between tests (conftest's `fresh_local_aws`)."""
    return fresh_local_aws


def client(local_aws: LocalAWS, service: str, region: str = "us-east-1", **kwargs: Any) -> Any:
    return boto3.client(service, endpoint_url=local_aws.endpoint, region_name=region, **kwargs)


def rule_to_queue(
    local_aws: LocalAWS, pattern: dict, *, region: str = "us-east-1", state: str = "ENABLED", name: str = "ct"
) -> str:
    """A default-bus rule with an SQS target; the queue's URL."""
    sqs = client(local_aws, "sqs", region)
    url = sqs.create_queue(QueueName=f"{name}-{region}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = client(local_aws, "events", region)
    events.put_rule(Name=name, EventPattern=json.dumps(pattern), State=state)
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    return url


def drain(local_aws: LocalAWS, url: str, region: str = "us-east-1", wait: float = 2.0) -> list[dict]:
    """Every event in the queue after up to `wait` seconds (stops early once a receive comes back empty
    after something arrived)."""
    sqs = client(local_aws, "sqs", region)
    out: list[dict] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for message in got:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if out and not got:
            break
        if not got:
            time.sleep(0.1)
    return out


def names(events: list[dict]) -> list[str]:
    return [e["detail"]["eventName"] for e in events]


SENTINEL_SOURCE = "trailwatch.test.sentinel"


def sentinel_route(
    local_aws: LocalAWS, url: str, region: str = "us-east-1", *, via: str | None = None, role: str = ""
) -> None:
    """A rule that sends the sentinel event (`send_sentinel`) to the queue at `url` in `region`; with `via`
    (a region), the sentinel is put on that region's bus and forwarded from there by a rule with `role`."""
    pattern = json.dumps({"source": [SENTINEL_SOURCE]})
    sqs = client(local_aws, "sqs", region)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = client(local_aws, "events", region)
    events.put_rule(Name="sentinel", EventPattern=pattern)
    events.put_targets(Rule="sentinel", Targets=[{"Id": "q", "Arn": arn}])
    if via:
        bus = f"arn:aws:events:{region}:{ACCOUNT}:event-bus/default"
        forwarding = client(local_aws, "events", via)
        forwarding.put_rule(Name="sentinel-forward", EventPattern=pattern)
        forwarding.put_targets(Rule="sentinel-forward", Targets=[{"Id": "b", "Arn": bus, "RoleArn": role}])


def drain_to_sentinel(
    local_aws: LocalAWS, url: str, region: str = "us-east-1", *, via: str | None = None
) -> list[dict]:
    """Every event in the queue before the sentinel (set up by `sentinel_route`), without waiting for what
    must not come: the local AWS delivers an event to its targets before it answers the call that caused it
    (the recorder's middleware, S3's sender and PutEvents all call `eventbridge.put_on_bus` in the request),
    so once the sentinel, put after the calls under test, is in the queue, whatever they delivered is too."""
    client(local_aws, "events", via or region).put_events(
        Entries=[{"Source": SENTINEL_SOURCE, "DetailType": "sentinel", "Detail": "{}"}]
    )
    events = drain(local_aws, url, region)
    assert [e["source"] for e in events].count(SENTINEL_SOURCE) == 1, events
    return [e for e in events if e["source"] != SENTINEL_SOURCE]


# ------------------------------------------------------------------------------------------- delivery


def test_api_call_reaches_an_sqs_target_within_seconds_with_aws_envelope(local_aws: LocalAWS) -> None:
    """No trail exists: AWS delivers management events to the bus without one."""
    url = rule_to_queue(local_aws, {"source": ["aws.iam"], "detail": {"eventName": ["CreateUser"]}})
    called = time.monotonic()
    client(local_aws, "iam").create_user(UserName="alice")
    (event,) = drain(local_aws, url)
    assert time.monotonic() - called < 2.0
    assert set(event) == ENVELOPE_KEYS
    (record,) = [r for r in local_aws.recorder.recorded if r["eventName"] == "CreateUser"]
    assert event["detail"] == record
    assert event["version"] == "0"
    assert re.fullmatch(r"[0-9a-f-]{36}", event["id"])
    assert event["detail-type"] == "AWS API Call via CloudTrail"
    assert event["source"] == "aws.iam"
    assert event["account"] == ACCOUNT
    assert event["time"] == record["eventTime"]
    assert event["region"] == "us-east-1"
    assert event["resources"] == []


def rule_state_cases(read_only: str, write: str) -> list[tuple[str, list[str]]]:
    """(a rule's state, the events it delivers of a read-only call then a write call)."""
    return [
        ("ENABLED", [write]),
        ("ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS", [read_only, write]),
        ("DISABLED", []),
    ]


@pytest.mark.parametrize(("state", "expected"), rule_state_cases("ListUsers", "CreateUser"))
def test_read_only_management_events_only_for_the_special_state(
    local_aws: LocalAWS, state: str, expected: list[str]
) -> None:
    url = rule_to_queue(local_aws, {"source": ["aws.iam"]}, state=state)
    # A rule that takes both calls: once its queue has them, the rule under test has all it gets of them.
    both = rule_to_queue(
        local_aws, {"source": ["aws.iam"]}, state=eventbridge.ALL_MANAGEMENT_STATE, name="both"
    )
    assert client(local_aws, "events").describe_rule(Name="ct")["State"] == state  # PutRule accepts the state
    iam = client(local_aws, "iam")
    iam.list_users()
    iam.create_user(UserName="bob")
    assert names(drain(local_aws, both)) == ["ListUsers", "CreateUser"]
    sentinel_route(local_aws, url)
    assert names(drain_to_sentinel(local_aws, url)) == expected


def test_event_over_256_kb_is_not_delivered(local_aws: LocalAWS) -> None:
    url = rule_to_queue(local_aws, {"source": ["aws.ec2"]})
    record = {
        "eventSource": "ec2.amazonaws.com",
        "eventName": "RunInstances",
        "eventType": "AwsApiCall",
        "awsRegion": "us-east-1",
        "eventTime": "2026-12-03T08:00:00Z",
        "readOnly": False,
        "managementEvent": True,
    }
    size = len(json.dumps(eventbridge.envelope(record, ACCOUNT), separators=(",", ":")).encode())
    fits = dict(record, requestParameters={"userData": "x" * (eventbridge.MAX_EVENT_BYTES - size - 40)})
    too_big = dict(record, requestParameters={"userData": "x" * (eventbridge.MAX_EVENT_BYTES - size)})
    assert eventbridge.publish(too_big, ACCOUNT) == 0
    assert eventbridge.publish(fits, ACCOUNT) == 1
    (event,) = drain(local_aws, url)
    assert event["detail"] == fits


def test_global_service_events_arrive_in_us_east_1(local_aws: LocalAWS) -> None:
    """IAM called by an eu-west-1 client lands on us-east-1's bus; a regional service stays in its region."""
    pattern = {"source": ["aws.iam", "aws.sqs"], "detail": {"eventName": ["CreateUser", "CreateQueue"]}}
    east = rule_to_queue(local_aws, pattern, region="us-east-1")
    west = rule_to_queue(local_aws, pattern, region="eu-west-1")
    client(local_aws, "iam", "eu-west-1").create_user(UserName="carol")
    client(local_aws, "sqs", "eu-west-1").create_queue(QueueName="regional")
    assert names(drain(local_aws, east)) == ["CreateUser"]
    west_events = drain(local_aws, west, "eu-west-1")
    assert names(west_events) == ["CreateQueue"]
    assert west_events[0]["region"] == "eu-west-1"


def test_data_events_only_when_a_trail_logs_them(local_aws: LocalAWS) -> None:
    """Management events need no trail; a data event reaches the bus only when a trail logs it."""
    url = rule_to_queue(local_aws, {"source": ["aws.s3"], "detail": {"eventName": ["PutObject"]}})
    s3 = client(local_aws, "s3")
    s3.create_bucket(Bucket="data-bucket")
    s3.put_object(Bucket="data-bucket", Key="before-trail", Body=b"x")
    trails = client(local_aws, "cloudtrail")
    trails.create_trail(Name="data-trail", S3BucketName="data-bucket")
    trails.put_event_selectors(
        TrailName="data-trail",
        EventSelectors=[
            {
                "ReadWriteType": "All",
                "IncludeManagementEvents": True,
                "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}],
            }
        ],
    )
    trails.start_logging(Name="data-trail")
    s3.put_object(Bucket="data-bucket", Key="after-trail", Body=b"x")
    (event,) = drain(local_aws, url)
    assert event["detail"]["requestParameters"]["key"] == "after-trail"
    assert event["detail"]["eventCategory"] == "Data"


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("AwsApiCall", "AWS API Call via CloudTrail"),
        ("AwsConsoleSignIn", "AWS Console Sign In via CloudTrail"),
        ("AwsServiceEvent", "AWS Service Event via CloudTrail"),
    ],
)
def test_detail_type_follows_the_event_type(event_type: str, expected: str) -> None:
    record = {"eventType": event_type, "eventSource": "signin.amazonaws.com", "awsRegion": "us-east-1"}
    event = eventbridge.envelope(record, ACCOUNT)
    assert (event["detail-type"], event["source"]) == (expected, "aws.signin")


def test_delivery_region_of_a_global_record_signed_elsewhere() -> None:
    record = {"eventSource": "iam.amazonaws.com", "awsRegion": "eu-west-1"}
    assert eventbridge.delivery_region(record) == "us-east-1"
    assert eventbridge.delivery_region({"eventSource": "sts.amazonaws.com", "awsRegion": "eu-west-1"}) == (
        "eu-west-1"  # STS on a regional endpoint stays in its region
    )


# --------------------------------------------------------------------------- patterns: moto vs AWS

DETAIL = {
    "eventName": "PutObject",
    "eventSource": "s3.amazonaws.com",
    "sourceIPAddress": "10.1.2.3",
    "userIdentity": {"type": "IAMUser", "userName": "Alice"},
    "requestParameters": {"bucketName": "logs-bucket", "maxKeys": 5, "tags": ["a", "b"]},
    "responseElements": None,
    "resources": [
        {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::logs-bucket"},
        {"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::logs-bucket/k"},
    ],
}
ENVELOPE = {
    "version": "0",
    "id": "00000000-0000-0000-0000-000000000000",
    "detail-type": "AWS API Call via CloudTrail",
    "source": "aws.s3",
    "account": ACCOUNT,
    "time": "2026-12-03T08:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": DETAIL,
}

PATTERN_CASES = {
    "array of objects, one element": {"detail": {"resources": {"type": ["AWS::S3::Object"]}}},
    "array of objects, prefix": {"detail": {"resources": {"ARN": [{"prefix": "arn:aws:s3:::logs-bucket/"}]}}},
    "array of objects, per element": {
        "detail": {"resources": {"type": ["AWS::S3::Bucket"], "ARN": [{"suffix": "/k"}]}}
    },
    "anything-but on a missing field": {"detail": {"errorCode": [{"anything-but": "AccessDenied"}]}},
    "anything-but on null": {"detail": {"responseElements": [{"anything-but": "x"}]}},
    "prefix": {"detail": {"eventSource": [{"prefix": "s3."}]}},
    "prefix on a number": {"detail": {"requestParameters": {"maxKeys": [{"prefix": "5"}]}}},
    "exists true on an object": {"detail": {"userIdentity": [{"exists": True}]}},
    "exists false on a missing field": {"detail": {"errorCode": [{"exists": False}]}},
    "numeric": {"detail": {"requestParameters": {"maxKeys": [{"numeric": [">", 1, "<=", 5]}]}}},
    "numeric on a string": {"detail": {"requestParameters": {"bucketName": [{"numeric": [">", 0]}]}}},
    "string vs number": {"detail": {"requestParameters": {"maxKeys": ["5"]}}},
    "cidr": {"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/8"}]}},
    "$or": {"detail": {"$or": [{"eventName": ["Nope"]}, {"userIdentity": {"type": ["IAMUser"]}}]}},
    "wildcard": {"detail": {"requestParameters": {"bucketName": [{"wildcard": "logs-*"}]}}},
    "equals-ignore-case": {"detail": {"userIdentity": {"userName": [{"equals-ignore-case": "alice"}]}}},
    "array of scalars": {"detail": {"requestParameters": {"tags": ["b"]}}},
    "null literal": {"detail": {"responseElements": [None]}},
    "envelope field": {"detail-type": ["AWS API Call via CloudTrail"], "source": ["aws.s3"]},
}


def reference(pattern: dict, event: dict) -> bool:
    """The processor's matcher: AWS's semantics as this project implements them."""
    config = validate_config({"rules": [{"id": "p", "pattern": pattern}]})
    return bool(compile_config(config).match(event))


def moto_original(pattern: dict, event: dict) -> bool:
    original = moto_patches.original("moto.events.models:EventPattern.matches_event")
    return bool(original(EventPattern.load(json.dumps(pattern)), event))


@pytest.mark.parametrize("case", sorted(PATTERN_CASES))
def test_local_eventbridge_matches_like_the_processor(case: str) -> None:
    moto_patches.install()
    pattern = PATTERN_CASES[case]
    assert EventPattern.load(json.dumps(pattern)).matches_event(ENVELOPE) is reference(pattern, ENVELOPE)


def test_moto_alone_differs_from_aws_on_these_cases() -> None:
    """Why the row exists: moto's own matching disagrees with the reference on some of the cases."""
    differ = {c for c, p in PATTERN_CASES.items() if moto_original(p, ENVELOPE) != reference(p, ENVELOPE)}
    assert {"array of objects, one element", "array of objects, prefix"} <= differ


def test_array_of_objects_pattern_delivers_through_sqs(local_aws: LocalAWS) -> None:
    """End to end: a pattern on `detail.resources` (an array of objects) matches a recorded S3 call."""
    url = rule_to_queue(
        local_aws, {"source": ["aws.s3"], "detail": {"resources": {"type": ["AWS::S3::Bucket"]}}}
    )
    client(local_aws, "s3").create_bucket(Bucket="matched-bucket")
    (event,) = drain(local_aws, url)
    assert event["detail"]["eventName"] == "CreateBucket"
    assert [r["ARN"] for r in event["detail"]["resources"]] == ["arn:aws:s3:::matched-bucket"]


# ----------------------------------------------------------------------- newcomer identity, interval


def test_dev_user_calls_are_recorded_as_iam_user(local_aws: LocalAWS) -> None:
    key_id, secret = create_dev_user(local_aws)
    assert not [
        r for r in local_aws.recorder.recorded if r["eventSource"] == "iam.amazonaws.com"
    ]  # set-up unseen
    iam = client(local_aws, "iam", aws_access_key_id=key_id, aws_secret_access_key=secret)
    iam.create_user(UserName="dave")
    (record,) = [r for r in local_aws.recorder.recorded if r["eventName"] == "CreateUser"]
    assert record["userIdentity"]["type"] == "IAMUser"
    assert record["userIdentity"]["userName"] == "trailwatch-dev"


def test_export_lines_carry_the_given_keys() -> None:
    assert export_lines("http://127.0.0.1:1", "us-east-1", "AKIADEV", "s3cret")[1:3] == [
        "export AWS_ACCESS_KEY_ID=AKIADEV",
        "export AWS_SECRET_ACCESS_KEY=s3cret",
    ]


@pytest.mark.e2e  # the real `trailwatch local up` program, talked to as a server
def test_local_up_prints_iam_user_keys_and_root_as_a_comment() -> None:
    """`trailwatch local up` in a child process: the exported keys are an IAM user's, recorded as IAMUser."""
    with local_up("--port", "0", "--no-lambda-runtime") as (child, lines):
        exports = dict(
            ln.strip().removeprefix("export ").split("=", 1)
            for ln in lines
            if ln.strip().startswith("export ")
        )
        assert exports["AWS_ACCESS_KEY_ID"] != "test"
        assert "  # export AWS_ACCESS_KEY_ID=test\n" in lines
        assert "  # export AWS_SECRET_ACCESS_KEY=test\n" in lines
        sts = boto3.client(
            "sts",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        )
        assert sts.get_caller_identity()["Arn"].endswith(":user/trailwatch-dev")
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 0


def test_local_up_delivery_interval_defaults_to_300_and_reaches_local_aws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner
    from trailwatch.local import commands

    seen: list[float] = []

    class Stop(Exception):
        pass

    def fake(*args: Any, delivery_interval: float, **kwargs: Any) -> Any:
        seen.append(delivery_interval)
        raise Stop

    monkeypatch.setattr(commands, "LocalAWS", fake)
    runner = CliRunner()
    assert "default 300" in runner.invoke(commands.local_group, ["up", "--help"]).output
    runner.invoke(commands.local_group, ["up"])
    runner.invoke(commands.local_group, ["up", "--delivery-interval", "120"])
    assert seen == [300.0, 120.0]


DELIVERY_INTERVAL = 2.0  # seconds: the trail's log file interval, gated by the test rather than waited out


class IntervalGate(threading.Event):
    """The delivery loop's stop event: records each interval the loop waits, and ends the wait when the
    test opens the gate (as if the interval had passed) or the loop is stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.intervals: list[float | None] = []
        self.waiting = threading.Event()
        self._open = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.intervals.append(timeout)
        self.waiting.set()
        self._open.wait()
        self._open.clear()
        return self.is_set()

    def set(self) -> None:
        super().set()
        self._open.set()

    def pass_interval(self) -> None:
        self._open.set()


def test_log_files_follow_the_delivery_interval(
    monkeypatch: pytest.MonkeyPatch, module_local_aws: LocalAWS
) -> None:
    """A trail's log file is written after `delivery_interval`, not before; EventBridge does not wait.

    The recorder's loop waits on a gate: it must wait `delivery_interval` before its first pass, no file
    exists while it waits (the event is on the bus already), and the file comes once the interval ends."""
    from moto.s3.models import s3_backends
    from trailwatch.local import recorder

    module_local_aws.stop()  # this test's LocalAWS has its own interval (one LocalAWS per process)
    gate = IntervalGate()

    class GatedLoop(PeriodicThread):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._stop = gate

    monkeypatch.setattr(recorder, "PeriodicThread", GatedLoop)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with LocalAWS(
        port=0, lambda_runtime=False, delivery_interval=DELIVERY_INTERVAL, log=lambda m: None
    ) as local:
        client(local, "s3").create_bucket(Bucket="trail-bucket")
        trails = client(local, "cloudtrail")
        trails.create_trail(Name="main-trail", S3BucketName="trail-bucket")
        trails.start_logging(Name="main-trail")
        url = rule_to_queue(local, {"source": ["aws.iam"]})
        client(local, "iam").create_user(UserName="erin")
        assert names(drain(local, url, wait=1.0)) == ["CreateUser"]

        def logs() -> list[str]:
            return [
                k for k in s3_backends[ACCOUNT]["aws"].get_bucket("trail-bucket").keys if "/CloudTrail/" in k
            ]

        assert gate.waiting.wait(5)
        assert gate.intervals == [DELIVERY_INTERVAL]  # the first pass comes an interval after the start
        assert logs() == []  # within the interval: the event is on the bus, not yet in a file
        gate.pass_interval()
        assert wait_until(logs, timeout=10, what="the log file after the interval", interval=0.02)
