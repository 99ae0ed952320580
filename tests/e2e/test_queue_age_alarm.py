"""Turning the pipeline off does not go unnoticed. With the event source mapping disabled,
a new log file's message ages in the processing queue; QueueAgeAlarm fires and its notification reaches a
queue subscribed to the alarm's topic like the stack's email subscription.

Fails on a template without QueueAgeAlarm (no alarm of that name, no notification): nothing else watches a
queue that nobody reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from trailwatch import synth

from tests.e2e.conftest import ACCOUNT, REGION, ClientFactory, wait_for

pytestmark = pytest.mark.e2e

STACK = "tw-age"
BUCKET = "tw-age-trail-bucket"
AGE_SECONDS = 4  # QueueAgeAlarmSeconds: the local evaluator's periods are scaled, message ages are not


@pytest.fixture(scope="module")
def stack(deploy_processor: Callable[..., dict[str, str]]) -> dict[str, str]:
    return deploy_processor(STACK, BUCKET, QueueAgeAlarmSeconds=str(AGE_SECONDS))


def alarm_name(client: ClientFactory) -> str:
    resource = client("cloudformation").describe_stack_resource(
        StackName=STACK, LogicalResourceId="QueueAgeAlarm"
    )
    return resource["StackResourceDetail"]["PhysicalResourceId"]


def test_disabled_mapping_raises_the_queue_age_alarm(
    aws_client: ClientFactory, stack: dict[str, str]
) -> None:
    sqs, cloudwatch, awslambda = aws_client("sqs"), aws_client("cloudwatch"), aws_client("lambda")
    name = alarm_name(aws_client)
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert alarm["Threshold"] == AGE_SECONDS
    (topic_arn,) = [a for a in alarm["AlarmActions"] if a.split(":")[2] == "sns"]
    assert topic_arn == stack["AlarmTopicArn"]

    mailbox = sqs.create_queue(QueueName="tw-age-mailbox")["QueueUrl"]
    mailbox_arn = sqs.get_queue_attributes(QueueUrl=mailbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws_client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=mailbox_arn)

    (mapping,) = awslambda.list_event_source_mappings(
        FunctionName=stack["ProcessorFunctionName"], EventSourceArn=stack["LogQueueArn"]
    )["EventSourceMappings"]  # the log queue's (the fast path queue has its own)
    awslambda.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    time.sleep(3.0)  # the local runtime re-reads the mappings every second and stops the poller
    key = synth.log_key(ACCOUNT, REGION, unique="STALLED")
    aws_client("s3").put_object(
        Bucket=BUCKET, Key=key, Body=synth.gzip_log([synth.make_record("StopLogging")])
    )

    def notifications() -> list[dict[str, Any]]:
        found = []
        for m in sqs.receive_message(QueueUrl=mailbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            message = json.loads(json.loads(m["Body"])["Message"])
            if message.get("AlarmName") == name and message["NewStateValue"] == "ALARM":
                found.append(message)
        return found

    (mail, *_) = wait_for(notifications, f"{name}'s ALARM notification")
    assert mail["Trigger"]["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert mail["Trigger"]["Dimensions"] == [
        {"value": stack["LogQueueUrl"].rsplit("/", 1)[1], "name": "QueueName"}
    ]
    # The message is still there, unprocessed: the alarm saw the stall, not a failure.
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack["LogQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) >= 1
