"""One path of an event to an EventBridge bus on the local AWS (`trailwatch.local.eventbridge.put_on_bus`).

CloudTrail's events (`eventbridge.publish`), S3's EventBridge events (a bucket with
`EventBridgeConfiguration`) and the PutEvents API's reach the same rules and targets under the same rules
of AWS: a rule's state (the read-only filter applies to CloudTrail's events only), a bus of another account
that admits the sender only by its policy (a role is needed only across regions). Each case runs for every
source, so a second delivery path that drifts from the first fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from trailwatch.local import eventbridge

from tests.functional import factories as f

SENDER = "123456789012"  # moto's default account: the bucket owner and the CloudTrail account
RECEIVER = "210987654321"
REGION = "us-east-1"
BUCKET = "bus-delivery-logs"
PATTERN = {"source": ["aws.s3", "aws.ec2", "trailwatch.test"]}

Clients = Callable[..., Any]


def _clients(account: str) -> Clients:
    """boto3 clients of `account` (an assumed role there for an account other than moto's default)."""
    keys: dict[str, str] = {}
    if account != SENDER:
        role = f"arn:aws:iam::{account}:role/admin"
        issued = boto3.client("sts", region_name=REGION).assume_role(RoleArn=role, RoleSessionName="receiver")
        names = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
        fields = ("AccessKeyId", "SecretAccessKey", "SessionToken")
        keys = {name: issued["Credentials"][field] for name, field in zip(names, fields, strict=True)}
    return lambda service, region=REGION: boto3.client(service, region_name=region, **keys)


def _rule_to_queue(clients: Clients, *, state: str = "ENABLED", region: str = REGION) -> str:
    """A default-bus rule matching both sources with an SQS target; the queue's URL."""
    sqs, events = clients("sqs", region), clients("events", region)
    url = sqs.create_queue(QueueName="delivered")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="to-queue", EventPattern=json.dumps(PATTERN), State=state)
    events.put_targets(Rule="to-queue", Targets=[{"Id": "q", "Arn": arn}])
    return url


def _forward(clients: Clients, account: str, region: str, *, role: bool) -> None:
    """A rule on the sender's default bus whose target is the default bus of `account` in `region`."""
    target: dict[str, Any] = {"Id": "bus", "Arn": f"arn:aws:events:{region}:{account}:event-bus/default"}
    if role:
        target["RoleArn"] = f"arn:aws:iam::{SENDER}:role/forwarder"
    clients("events").put_rule(Name="forward", EventPattern=json.dumps(PATTERN))
    clients("events").put_targets(Rule="forward", Targets=[target])


def _received(clients: Clients, url: str, region: str = REGION) -> list[dict]:
    messages = clients("sqs", region).receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def _cloudtrail(sender: Clients) -> None:
    record = f.record(
        "CreateSecurityGroup", eventSource="ec2.amazonaws.com", awsRegion=REGION, readOnly=False
    )
    eventbridge.publish(record, SENDER)


def _s3(sender: Clients) -> None:
    s3 = sender("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    s3.put_object(Bucket=BUCKET, Key="AWSLogs/x.json.gz", Body=b"x")


def _put_events(sender: Clients) -> None:
    entry = {"Source": "trailwatch.test", "DetailType": "Test", "Detail": json.dumps({"readOnly": True})}
    assert sender("events").put_events(Entries=[entry])["FailedEntryCount"] == 0


SOURCES = {"cloudtrail": _cloudtrail, "s3": _s3, "put-events": _put_events}


@pytest.fixture(params=sorted(SOURCES))
def send(request: pytest.FixtureRequest, aws: None) -> Callable[[Clients], None]:
    return SOURCES[request.param]


@pytest.mark.parametrize(
    ("state", "arrives"),
    [("ENABLED", 1), ("ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS", 1), ("DISABLED", 0)],
)
def test_rule_state_on_the_senders_bus(send: Callable[[Clients], None], state: str, arrives: int) -> None:
    """The special CloudTrail state is an enabled rule that also takes read-only management events."""
    sender = _clients(SENDER)
    url = _rule_to_queue(sender, state=state)
    send(sender)
    assert len(_received(sender, url)) == arrives


@pytest.mark.parametrize(
    ("admitted", "role", "arrives"),
    [(False, True, 0), (True, True, 1), (True, False, 1)],
    ids=["no-policy", "policy-and-role", "policy-without-role"],
)
def test_bus_of_another_account_takes_what_its_policy_admits(
    send: Callable[[Clients], None], admitted: bool, role: bool, arrives: int
) -> None:
    """A bus of another account takes an event only when its policy allows the sender events:PutEvents;
    in the same region a direct account grant needs no role (PutPermission: a role is needed for grants
    to an organization)."""
    sender, receiver = _clients(SENDER), _clients(RECEIVER)
    url = _rule_to_queue(receiver)
    if admitted:
        receiver("events").put_permission(
            EventBusName="default", Action="events:PutEvents", Principal=SENDER, StatementId="sender"
        )
    _forward(sender, RECEIVER, REGION, role=role)
    send(sender)
    got = _received(receiver, url)
    assert len(got) == arrives
    assert all(event["account"] == SENDER for event in got)  # forwarded unchanged


@pytest.mark.parametrize(("role", "arrives"), [(True, 1), (False, 0)])
def test_bus_of_another_region_needs_a_role(
    send: Callable[[Clients], None], role: bool, arrives: int
) -> None:
    sender = _clients(SENDER)
    url = _rule_to_queue(sender, region="eu-west-1")
    _forward(sender, SENDER, "eu-west-1", role=role)
    send(sender)
    got = _received(sender, url, "eu-west-1")
    assert len(got) == arrives
    assert all(event["region"] == REGION for event in got)
