"""Outputs for real over HTTP: loopback receivers get the Slack and the signed webhook posts from the
handler; the alert reaches them through the AlertTopic -> one raw-delivery SQS queue per output (as the
template wires it); a failing receiver is retried and ends in its queue's DLQ without stopping the other.

The SQS event source is simulated faithfully: receive, hand the batch to the handler, delete what it did
not report as a batch item failure; moto moves a message to the DLQ after maxReceiveCount receives. The last
failed receive sends one operational alert to the alarm topic (read through a queue subscribed to it)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws
from trailwatch_processor import outputs
from trailwatch_processor.alerts import Alert, build_alert, publish
from trailwatch_processor.aws import Settings
from trailwatch_processor.deps import Deps
from trailwatch_processor.handler import handle_batch
from trailwatch_processor.outputs import Outputs, webhook

REGION = "us-east-1"
KEY = "ab" * 32
MAX_RECEIVE = 3
TABLE = "events"


@dataclass
class Receiver:
    """A loopback HTTP endpoint answering ``status`` and recording every request."""

    status: int = 200
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Receiver]]:
    """The loopback endpoints, started once per module (a start and a shutdown per test cost ~40 ms of
    waiting); `receivers` gives each test them reset."""
    made: dict[str, Receiver] = {}
    servers: list[ThreadingHTTPServer] = []

    def start(name: str) -> Receiver:
        receiver = Receiver()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # shutdown() waits for the loop's next poll: 0.5 s by default.
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
        return receiver

    for name in ("slack", "webhook"):
        made[name] = start(name)
    yield made
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receivers(servers: dict[str, Receiver]) -> dict[str, Receiver]:
    """The module's endpoints as new: answering 200, nothing recorded. Every POST of a test is answered
    before its handle_batch returns, so nothing of an earlier test arrives late."""
    for receiver in servers.values():
        receiver.status = 200
        receiver.requests.clear()
    return servers


@dataclass
class OutputsAws:
    sns: Any
    sqs: Any
    topic_arn: str
    queues: dict[str, tuple[str, str, str]]  # kind -> (queue url, queue arn, dlq url)
    deps: Deps
    alarm_queue_url: str
    dynamodb: Any


@pytest.fixture
def stack(
    receivers: dict[str, Receiver], monkeypatch: pytest.MonkeyPatch, boto_session: boto3.session.Session
) -> Iterator[OutputsAws]:
    with mock_aws():
        sns, sqs, secrets, ddb = (
            boto_session.client(n) for n in ("sns", "sqs", "secretsmanager", "dynamodb")
        )
        topic_arn = sns.create_topic(Name="alerts")["TopicArn"]
        alarm_topic_arn = sns.create_topic(Name="alarms")["TopicArn"]
        alarm_queue_url = sqs.create_queue(QueueName="alarm-reader")["QueueUrl"]
        sns.subscribe(
            TopicArn=alarm_topic_arn,
            Protocol="sqs",
            Endpoint=_arn(sqs, alarm_queue_url),
            Attributes={"RawMessageDelivery": "true"},
        )
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "EventId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "EventId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        env: dict[str, str] = {
            "ALARM_TOPIC_ARN": alarm_topic_arn,
            "EVENTS_TABLE": TABLE,
            "MAX_RECEIVE_COUNT": str(MAX_RECEIVE),
        }
        queues: dict[str, tuple[str, str, str]] = {}
        for kind, receiver in receivers.items():
            dlq_url = sqs.create_queue(QueueName=f"{kind}-dlq")["QueueUrl"]
            dlq_arn = _arn(sqs, dlq_url)
            redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE})
            url = sqs.create_queue(
                QueueName=f"{kind}-outputs", Attributes={"VisibilityTimeout": "0", "RedrivePolicy": redrive}
            )["QueueUrl"]
            arn = _arn(sqs, url)
            sns.subscribe(
                TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
            )
            doc = {"url": receiver.url, **({"signing_key": KEY} if kind == "webhook" else {})}
            secret_arn = secrets.create_secret(Name=f"trailwatch/{kind}", SecretString=json.dumps(doc))["ARN"]
            env[f"{kind.upper()}_QUEUE_ARN"], env[f"{kind.upper()}_SECRET_ARN"] = arn, secret_arn
            queues[kind] = (url, arn, dlq_url)
        routed = Outputs.from_env(env)
        routed.secrets_client = lambda: secrets
        assert routed.failures is not None
        routed.failures.clients = lambda: (ddb, sns)
        monkeypatch.setattr(outputs, "_outputs", routed)
        monkeypatch.setattr(outputs, "RETRY_DELAY_SECONDS", 0.0)
        settings = Settings(events_table="t", alert_topic_arn=topic_arn, config_bucket="b")
        deps = Deps(s3=None, dynamodb=None, sns=sns, settings=settings, config=None, claim_stale_seconds=60)
        yield OutputsAws(sns, sqs, topic_arn, queues, deps, alarm_queue_url, ddb)  # in field order


def _arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def poll(aws: OutputsAws, kind: str) -> dict[str, Any]:
    """One event-source-mapping poll of ``kind``'s queue: receive, invoke, delete the successes."""
    url, arn, _ = aws.queues[kind]
    got = aws.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
    ).get("Messages", [])
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": REGION,
        }
        for m in got
    ]
    result = handle_batch({"Records": records}, aws.deps) if records else {"batchItemFailures": []}
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for m in got:
        if m["MessageId"] not in failed:
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return {"received": len(got), "failed": len(failed)}


def drain(aws: OutputsAws, kind: str, polls: int = MAX_RECEIVE + 2) -> None:
    for _ in range(polls):
        poll(aws, kind)


def dlq_bodies(aws: OutputsAws, kind: str) -> list[str]:
    got = aws.sqs.receive_message(QueueUrl=aws.queues[kind][2], MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in got]


EVENT = {
    "eventID": "e-1",
    "eventName": "DeleteTrail",
    "eventSource": "cloudtrail.amazonaws.com",
    "eventTime": "2024-01-15T12:00:00Z",
    "awsRegion": "eu-central-1",
    "account": "123456789012",
    "principal": "arn:aws:iam::123456789012:role/ops",
    "principalType": "AssumedRole",
    "sourceIPAddress": "198.51.100.4",
}


def publish_alert(aws: OutputsAws, severity: str = "high", count: int = 1) -> dict[str, Any]:
    alert = Alert(
        rule_id="trail-tampering",
        title="CloudTrail trail deleted",
        severity=severity,
        event_ids=[f"e-{n}" for n in range(1, count + 1)],
        events=[EVENT],
    )
    message = build_alert(alert)
    publish(aws.sns, aws.topic_arn, message)
    return json.loads(json.loads(message.message)["default"])


def test_slack_receiver_gets_the_fields(stack: OutputsAws, receivers: dict[str, Receiver]) -> None:
    publish_alert(stack, count=3)
    drain(stack, "slack")
    [(headers, body)] = receivers["slack"].requests
    assert headers["Content-Type"] == "application/json"
    text = json.dumps(json.loads(body)["blocks"])
    for value in (
        "HIGH",
        "trail-tampering",
        "arn:aws:iam::123456789012:role/ops",
        "DeleteTrail",
        "123456789012",
        "eu-central-1",
        "198.51.100.4",
        "2024-01-15T12:00:00Z",
        "*3 events*",
        "https://eu-central-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-central-1#/events/e-1",
    ):
        assert value in text, value
    assert dlq_bodies(stack, "slack") == []


def test_webhook_receiver_gets_the_signed_alert_body(
    stack: OutputsAws, receivers: dict[str, Receiver]
) -> None:
    sent = publish_alert(stack)
    drain(stack, "webhook")
    [(headers, body)] = receivers["webhook"].requests
    assert json.loads(body) == sent
    assert webhook.verify_signature(KEY, body, headers[webhook.SIGNATURE_HEADER])
    assert dlq_bodies(stack, "webhook") == []


def test_failing_receiver_is_retried_then_dead_lettered(
    stack: OutputsAws, receivers: dict[str, Receiver]
) -> None:
    receivers["webhook"].status = 500
    sent = publish_alert(stack)
    results = [poll(stack, "webhook") for _ in range(MAX_RECEIVE + 1)]
    assert [r["failed"] for r in results] == [1] * MAX_RECEIVE + [0]
    # each receive: one POST and one quick retry
    assert len(receivers["webhook"].requests) == 2 * MAX_RECEIVE
    # one delivery id (the SQS message id) across every attempt: receivers can drop duplicates
    assert len({headers[webhook.DELIVERY_HEADER] for headers, _ in receivers["webhook"].requests}) == 1
    [dead] = dlq_bodies(stack, "webhook")
    assert json.loads(dead) == sent


def test_one_failing_output_does_not_stop_the_other(
    stack: OutputsAws, receivers: dict[str, Receiver]
) -> None:
    receivers["slack"].status = 503
    publish_alert(stack)
    drain(stack, "slack")
    drain(stack, "webhook")
    assert len(receivers["webhook"].requests) == 1
    assert len(dlq_bodies(stack, "slack")) == 1
    assert dlq_bodies(stack, "webhook") == []


def test_a_4xx_is_not_retried_in_process(stack: OutputsAws, receivers: dict[str, Receiver]) -> None:
    receivers["slack"].status = 404  # e.g. a revoked Slack webhook: SQS still retries, then the DLQ
    publish_alert(stack)
    assert poll(stack, "slack") == {"received": 1, "failed": 1}
    assert len(receivers["slack"].requests) == 1


def test_severity_floor_skips_without_posting(stack: OutputsAws, receivers: dict[str, Receiver]) -> None:
    routed = outputs._outputs
    assert routed is not None
    _kind, secret_arn = routed.routes[stack.queues["slack"][1]]
    doc = {"url": receivers["slack"].url, "min_severity": "critical"}
    routed.secrets_client().put_secret_value(SecretId=secret_arn, SecretString=json.dumps(doc))
    publish_alert(stack, severity="medium")
    assert poll(stack, "slack") == {"received": 1, "failed": 0}
    assert receivers["slack"].requests == []
    publish_alert(stack, severity="critical")
    assert poll(stack, "slack") == {"received": 1, "failed": 0}
    assert len(receivers["slack"].requests) == 1


def operational_alerts(aws: OutputsAws) -> list[dict[str, Any]]:
    """What reached the alarm topic (raw delivery: the body is the alert's ``default`` JSON)."""
    got = aws.sqs.receive_message(QueueUrl=aws.alarm_queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def test_last_failed_receive_sends_one_operational_alert_to_the_alarm_topic(
    stack: OutputsAws, receivers: dict[str, Receiver]
) -> None:
    receivers["webhook"].status = 500
    publish_alert(stack)
    results = [poll(stack, "webhook") for _ in range(MAX_RECEIVE + 1)]
    assert [r["failed"] for r in results] == [1] * MAX_RECEIVE + [0]
    [alert] = operational_alerts(stack)
    assert alert["rule"] == "trailwatch-operational" and alert["source"] == "output:webhook"
    assert "webhook" in alert["title"]
    for text in ("HTTP 500", "trail-tampering", "WebhookOutputDeadLetterQueueUrl", f"{MAX_RECEIVE} attempt"):
        assert text in alert["description"], text
    assert receivers["webhook"].url not in json.dumps(alert)  # the URL is a secret
    # Not on the alert topic: the other output got the original alert only, nothing about the failure.
    drain(stack, "slack")
    assert len(receivers["slack"].requests) == 1
    assert b"trailwatch-operational" not in receivers["slack"].requests[0][1]


def test_earlier_failed_receives_send_nothing(stack: OutputsAws, receivers: dict[str, Receiver]) -> None:
    receivers["slack"].status = 503
    publish_alert(stack)
    for _ in range(MAX_RECEIVE - 1):
        assert poll(stack, "slack")["failed"] == 1
    assert operational_alerts(stack) == []


def last_receive(aws: OutputsAws, kind: str, message_id: str = "m-1") -> dict[str, Any]:
    """An output-queue record on its last receive (as SQS redelivers it, possibly twice)."""
    body = json.dumps({"rule": "trail-tampering", "severity": "high", "title": "t", "count": 1})
    return {
        "messageId": message_id,
        "receiptHandle": "r",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(MAX_RECEIVE)},
        "eventSource": "aws:sqs",
        "eventSourceARN": aws.queues[kind][1],
        "awsRegion": REGION,
    }


def test_a_last_receive_delivered_twice_alerts_once(
    stack: OutputsAws, receivers: dict[str, Receiver]
) -> None:
    receivers["slack"].status = 404
    for _ in range(2):
        result = handle_batch({"Records": [last_receive(stack, "slack")]}, stack.deps)
        assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert len(operational_alerts(stack)) == 1
    handle_batch({"Records": [last_receive(stack, "slack", "m-2")]}, stack.deps)  # another message: alerted
    assert len(operational_alerts(stack)) == 1


def test_a_failed_alarm_publish_keeps_the_record_failed_and_releases_the_claim(
    stack: OutputsAws, receivers: dict[str, Receiver]
) -> None:
    receivers["slack"].status = 404
    routed = outputs._outputs
    assert routed is not None and routed.failures is not None
    good_topic = routed.failures.alarm_topic_arn
    routed.failures.alarm_topic_arn = good_topic.replace(":alarms", ":gone")
    result = handle_batch({"Records": [last_receive(stack, "slack")]}, stack.deps)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    # the claim was released: the next (late duplicate) receive sends it
    routed.failures.alarm_topic_arn = good_topic
    handle_batch({"Records": [last_receive(stack, "slack")]}, stack.deps)
    assert len(operational_alerts(stack)) == 1
