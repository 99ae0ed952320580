"""CloudWatch alarms evaluated on the local AWS: `AlarmEvaluator` on moto's backends.

Without the evaluator moto never changes an alarm's state nor notifies: every test here that expects a
transition or a notification fails on moto alone."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import moto.sqs.models
import pytest
from moto import mock_aws
from trailwatch.local import moto_patches
from trailwatch.local.alarms import AlarmEvaluator, record_invocation, sqs_gauges

from tests.functional.factories import dlq_depth_alarm

ACCOUNT = "123456789012"
REGION = "us-east-1"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tw-processor"
EMAIL_POLICY = {"$or": [{"severity": ["high", "critical"]}, {"account": [{"exists": False}]}]}


@dataclass
class World:
    sqs: Any
    cloudwatch: Any
    dlq_url: str
    topic_arn: str
    unfiltered_url: str
    filtered_url: str
    evaluator: AlarmEvaluator

    def received(self, url: str) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def state(self, name: str) -> str:
        return self.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        moto_patches.install()
        session = boto3.session.Session(region_name=REGION)
        sqs, sns, cloudwatch = session.client("sqs"), session.client("sns"), session.client("cloudwatch")
        dlq_url, _ = _queue(sqs, "tw-dlq")
        topic_arn = sns.create_topic(Name="tw-alerts")["TopicArn"]
        unfiltered_url, unfiltered_arn = _queue(sqs, "unfiltered")
        filtered_url, filtered_arn = _queue(sqs, "filtered")
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=unfiltered_arn)
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=filtered_arn,
            Attributes={"FilterPolicy": json.dumps(EMAIL_POLICY), "FilterPolicyScope": "MessageAttributes"},
        )
        yield World(
            sqs,
            cloudwatch,
            dlq_url,
            topic_arn,
            unfiltered_url,
            filtered_url,
            AlarmEvaluator(ACCOUNT, REGION, interval=1.0, period_scale=0.01),
        )


def put_alarm(world: World, name: str, **overrides: Any) -> None:
    spec = {**dlq_depth_alarm(name, "tw-dlq", [world.topic_arn]), **overrides}
    world.cloudwatch.put_metric_alarm(**spec)


def test_dlq_alarm_fires_and_notifies_like_cloudwatch(world: World) -> None:
    put_alarm(world, "tw-dead-letter-queue-not-empty")
    now = time.time()
    (first,) = world.evaluator.evaluate_once(now)
    assert (first.old_state, first.new_state) == ("INSUFFICIENT_DATA", "OK")
    assert world.received(world.unfiltered_url) == [], "no OKActions: nothing published"

    world.sqs.send_message(QueueUrl=world.dlq_url, MessageBody="poison")
    (change,) = world.evaluator.evaluate_once(now + 1)
    assert (change.old_state, change.new_state, change.topics) == ("OK", "ALARM", (world.topic_arn,))
    assert world.state("tw-dead-letter-queue-not-empty") == "ALARM"
    assert world.evaluator.evaluate_once(now + 2) == [], "no second notification while it stays in ALARM"

    (envelope,) = world.received(world.unfiltered_url)
    assert envelope["Subject"] == 'ALARM: "tw-dead-letter-queue-not-empty" in US East (N. Virginia)'
    assert "MessageAttributes" not in envelope, "CloudWatch publishes no message attributes"
    message = json.loads(envelope["Message"])
    assert message["AlarmName"] == "tw-dead-letter-queue-not-empty"
    assert (message["OldStateValue"], message["NewStateValue"]) == ("OK", "ALARM")
    assert message["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [1.0]")
    assert message["Region"] == "US East (N. Virginia)"
    assert message["AlarmArn"].endswith(":alarm:tw-dead-letter-queue-not-empty")
    assert message["Trigger"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert message["Trigger"]["Namespace"] == "AWS/SQS"
    assert message["Trigger"]["Dimensions"] == [{"value": "tw-dlq", "name": "QueueName"}]
    assert message["Trigger"]["Period"] == 300
    assert world.received(world.filtered_url) == [], "an attribute-less alarm matches no attribute policy"


def test_alarm_returns_to_ok_when_the_queue_is_drained(world: World) -> None:
    put_alarm(world, "dlq", OKActions=[world.topic_arn])
    world.sqs.send_message(QueueUrl=world.dlq_url, MessageBody="poison")
    now = time.time()
    assert [c.new_state for c in world.evaluator.evaluate_once(now)] == ["ALARM"]
    world.sqs.purge_queue(QueueUrl=world.dlq_url)
    assert [c.new_state for c in world.evaluator.evaluate_once(now + 5)] == ["OK"]
    bodies = [json.loads(e["Message"])["NewStateValue"] for e in world.received(world.unfiltered_url)]
    assert sorted(bodies) == ["ALARM", "OK"]


def test_lambda_errors_alarm_counts_failed_invocations(world: World) -> None:
    put_alarm(
        world,
        "errors",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": "tw-processor"}],
        Statistic="Sum",
    )
    record_invocation(FUNCTION_ARN, ok=True, duration_ms=12.0)
    assert [c.new_state for c in world.evaluator.evaluate_once()] == ["OK"]
    record_invocation(FUNCTION_ARN, ok=False, duration_ms=12.0)
    assert [c.new_state for c in world.evaluator.evaluate_once()] == ["ALARM"]
    stats = world.cloudwatch.list_metrics(Namespace="AWS/Lambda")["Metrics"]
    assert {m["MetricName"] for m in stats} == {"Invocations", "Errors", "Duration"}
    now = datetime.now(UTC)
    errors = world.cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": "tw-processor"}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=360,
        Statistics=["Sum", "SampleCount"],
    )["Datapoints"]
    assert [(d["Sum"], d["SampleCount"]) for d in errors] == [(1.0, 2.0)]


def test_disabled_actions_change_state_without_notifying(world: World) -> None:
    put_alarm(world, "quiet", ActionsEnabled=False)
    world.sqs.send_message(QueueUrl=world.dlq_url, MessageBody="poison")
    (change,) = world.evaluator.evaluate_once()
    assert change.new_state == "ALARM" and change.topics == ()
    assert world.received(world.unfiltered_url) == []


def test_age_of_oldest_message_is_sampled(world: World) -> None:
    put_alarm(world, "old", MetricName="ApproximateAgeOfOldestMessage", Threshold=30)
    world.sqs.send_message(QueueUrl=world.dlq_url, MessageBody="poison")
    now = time.time()
    assert [c.new_state for c in world.evaluator.evaluate_once(now)] == ["OK"]
    assert [c.new_state for c in world.evaluator.evaluate_once(now + 60)] == ["ALARM"]


def _age(world: World, now: float) -> float:
    dims = frozenset({("QueueName", "tw-dlq")})
    return sqs_gauges(ACCOUNT, REGION, now)[("AWS/SQS", "ApproximateAgeOfOldestMessage", dims)]


@pytest.mark.parametrize(("receives", "counted"), [(0, True), (2, True), (3, False)])
def test_age_skips_messages_received_three_times(
    world: World, receives: int, counted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS: a message received three times or more is moved to the back of the queue and the metric
    points at the oldest message received fewer times (so a retried bad file alone does not age it)."""
    # moto's SQS clock (milliseconds of the wall clock) runs 0.3 s behind while "retried" is sent and
    # received, then catches up: "newer" is sent 0.3 s after it without waiting for the 0.3 s
    wall_millis = moto.sqs.models.unix_time_millis
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda: wall_millis() - 300)
    world.sqs.send_message(QueueUrl=world.dlq_url, MessageBody="retried")
    for _ in range(receives):
        assert len(world.sqs.receive_message(QueueUrl=world.dlq_url, VisibilityTimeout=0)["Messages"]) == 1
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", wall_millis)
    world.sqs.send_message(QueueUrl=world.dlq_url, MessageBody="newer")
    now = time.time() + 100
    age = _age(world, now)
    assert (age > 100.25) is counted, age


def test_age_of_a_queue_of_retried_messages_only_is_the_oldest(world: World) -> None:
    world.sqs.send_message(QueueUrl=world.dlq_url, MessageBody="retried")
    for _ in range(3):
        world.sqs.receive_message(QueueUrl=world.dlq_url, VisibilityTimeout=0)
    assert _age(world, time.time() + 50) >= 49


@dataclass
class FakeAlarm:
    comparison_operator: str = "GreaterThanThreshold"
    threshold: float = 0.0
    evaluation_periods: int = 3
    datapoints_to_alarm: int | None = None
    treat_missing_data: str | None = None


@pytest.mark.parametrize(
    ("alarm", "datapoints", "state"),
    [
        (FakeAlarm(), [1.0, 1.0, 1.0], "ALARM"),
        (FakeAlarm(), [1.0, 0.0, 1.0], "OK"),
        (FakeAlarm(datapoints_to_alarm=2), [1.0, 0.0, 1.0], "ALARM"),
        (FakeAlarm(), [None, None, None], "INSUFFICIENT_DATA"),
        (FakeAlarm(treat_missing_data="notBreaching"), [None, None, None], "OK"),
        (FakeAlarm(treat_missing_data="breaching"), [None, None, None], "ALARM"),
        (FakeAlarm(treat_missing_data="ignore"), [None, None, None], None),
        (FakeAlarm(comparison_operator="LessThanOrEqualToThreshold", threshold=1), [1.0, 0.5, 0.0], "ALARM"),
        (FakeAlarm(comparison_operator="GreaterThanOrEqualToThreshold", threshold=2), [2, 2, 1.9], "OK"),
    ],
)
def test_decision_follows_cloudwatch_rules(alarm: FakeAlarm, datapoints: list, state: str | None) -> None:
    assert AlarmEvaluator._decide(alarm, datapoints)[0] == state


def test_scaled_period_never_below_the_interval() -> None:
    evaluator = AlarmEvaluator(ACCOUNT, REGION, interval=2.0, period_scale=0.001)
    assert evaluator.local_period(300) == 2.0
    assert AlarmEvaluator(ACCOUNT, REGION, period_scale=0.01).local_period(300) == 3.0
