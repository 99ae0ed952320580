"""A poison log file ends in the DLQ, the DLQ alarm fires on the local AWS, and its
notification reaches an SQS queue subscribed to the alarm's topic with the SAME filter policy (and scope) as
the stack's email subscription on that topic, both read from the deployed stack.

On a template whose alarms publish to the alert topic, whose email filter policy needs message attributes,
this fails as it would on AWS: CloudWatch's notification carries no attributes and matches no
attribute-scoped policy (`exists: false` included). It passes when the alarms have a path with no such
filter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from trailwatch import synth
from trailwatch.local.lambda_runtime import POLL_WAIT_SECONDS

from tests.e2e.conftest import ACCOUNT, REGION, TEMPLATE, ClientFactory, wait_for

pytestmark = pytest.mark.e2e

STACK = "tw-alarm"
BUCKET = "tw-alarm-trail-bucket"


def physical_id(client: ClientFactory, logical_id: str) -> str:
    resource = client("cloudformation").describe_stack_resource(StackName=STACK, LogicalResourceId=logical_id)
    return resource["StackResourceDetail"]["PhysicalResourceId"]


def email_subscription_attributes(client: ClientFactory, topic_arn: str) -> dict[str, str]:
    """The attributes of the stack's email subscription on `topic_arn` (the one the mailbox depends on)."""
    sns = client("sns")
    emails = [
        s
        for s in sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
        if s["Protocol"] == "email"
    ]
    assert emails, f"no email subscription on the alarm topic {topic_arn}: an alarm reaches no mailbox"
    (email,) = emails
    return sns.get_subscription_attributes(SubscriptionArn=email["SubscriptionArn"])["Attributes"]


@pytest.fixture(scope="module")
def stack(deploy_processor: Callable[..., dict[str, str]]) -> dict[str, str]:
    return deploy_processor(STACK, BUCKET, FunctionTimeout="30", MaxReceiveCount="1")


def test_poison_file_ends_as_an_alarm_on_the_email_path(
    aws_client: ClientFactory, stack: dict[str, str]
) -> None:
    sqs, cloudwatch = aws_client("sqs"), aws_client("cloudwatch")
    alarm_name = physical_id(aws_client, "DeadLetterQueueAlarm")
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"]
    (topic_arn,) = [a for a in alarm["AlarmActions"] if a.split(":")[2] == "sns"]

    # A queue standing in for the mailbox: subscribed like the stack's email subscription on that topic.
    email = email_subscription_attributes(aws_client, topic_arn)
    mirrored = {k: email[k] for k in ("FilterPolicy", "FilterPolicyScope") if email.get(k)}
    mailbox = sqs.create_queue(QueueName="tw-alarm-mailbox")["QueueUrl"]
    mailbox_arn = sqs.get_queue_attributes(QueueUrl=mailbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws_client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=mailbox_arn, Attributes=mirrored)

    # A failed message comes back after the queue's visibility timeout (180 s for FunctionTimeout 30):
    # shorten it so the receive after maxReceiveCount (1) redrives it to the DLQ within seconds.
    sqs.set_queue_attributes(QueueUrl=stack["LogQueueUrl"], Attributes={"VisibilityTimeout": "2"})
    time.sleep(POLL_WAIT_SECONDS + 0.5)  # SQS takes the timeout when a ReceiveMessage starts
    key = synth.log_key(ACCOUNT, REGION, unique="POISON")
    aws_client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"\x1f\x8b\x08\x00 this is not a log")

    def dlq_depth() -> int:
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack["DeadLetterQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    wait_for(dlq_depth, "the poison message in the DLQ")
    wait_for(
        lambda: (
            cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"][0]["StateValue"] == "ALARM"
        ),
        f"{alarm_name} in ALARM",
    )

    def alarm_mail() -> list[dict[str, Any]]:
        found = []
        for m in sqs.receive_message(QueueUrl=mailbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            envelope = json.loads(m["Body"])
            message = json.loads(envelope["Message"])
            # The alarm's OK notification (OKActions) may come first: the one that matters is ALARM's.
            if message.get("AlarmName") == alarm_name and message.get("NewStateValue") == "ALARM":
                found.append(message)
        return found

    try:
        (mail, *_) = wait_for(alarm_mail, f"{alarm_name}'s notification on the email path", seconds=10)
    except AssertionError as err:
        raise AssertionError(
            f"{err}: the alarm fired and published to {topic_arn}, but its notification (no message "
            f"attributes) does not pass the email subscription's filter {mirrored or '(none)'}"
        ) from None
    assert (mail["NewStateValue"], mail["AlarmArn"]) == ("ALARM", alarm["AlarmArn"])
    assert mail["Trigger"]["Dimensions"] == [
        {"value": d["Value"], "name": d["Name"]} for d in alarm["Dimensions"]
    ]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MaxReceiveCount", "0", "Parameter 'MaxReceiveCount' must be a number not less than 1"),
        ("EmailMinimumSeverity", "urgent", "Parameter 'EmailMinimumSeverity' must be one of AllowedValues"),
    ],
)
def test_local_aws_refuses_parameters_as_cloudformation_does(
    aws_client: ClientFactory, name: str, value: str, message: str
) -> None:
    """The same LocalAWS checks main.yaml's parameter constraints (parameters.install in LocalAWS.start)."""
    cfn = aws_client("cloudformation")
    values = {
        "TrailBucketName": "tw-refused",
        "AlertEmail": "e2e@example.com",
        "CodeBucket": "tw-code",
        "CodeKey": "processor.zip",
    }
    with pytest.raises(ClientError) as caught:
        cfn.create_stack(
            StackName="tw-refused",
            TemplateBody=TEMPLATE.read_text(),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in {**values, name: value}.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert caught.value.response["Error"]["Message"] == message
    assert "tw-refused" not in {s["StackName"] for s in cfn.list_stacks()["StackSummaries"]}
