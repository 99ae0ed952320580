"""The template's hunt block: an encrypted hunt queue with its DLQ and alarm, a capped event source
mapping on the same function, and the grants the hunt needs."""

from __future__ import annotations

from typing import Any

import pytest
from trailwatch import hunt_estimate

from tests.unit.template_helpers import depends_on, load_template, props, resolve, statement_by_sid


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load_template()


@pytest.mark.parametrize("queue", ["HuntQueue", "HuntDeadLetterQueue"])
def test_hunt_queues_are_encrypted_and_keep_messages_14_days(base: dict[str, Any], queue: str) -> None:
    p = props(base, queue)
    assert p["SqsManagedSseEnabled"] is True and "KmsMasterKeyId" not in p
    assert p["MessageRetentionPeriod"] == 1209600


def test_hunt_queue_redrives_and_its_dlq_alarms_the_alarm_topic(base: dict[str, Any]) -> None:
    assert props(base, "HuntQueue")["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["HuntDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert (
        props(base, "HuntQueue")["VisibilityTimeout"]
        == props(base, "LogProcessingQueue")["VisibilityTimeout"]
    )
    alarm = props(base, "HuntDeadLetterQueueAlarm")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["HuntDeadLetterQueue", "QueueName"]}}
    ]
    assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": "AlarmTopic"}]
    assert alarm["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-")


def test_hunt_mapping_is_the_same_function_capped_by_hunt_concurrency(base: dict[str, Any]) -> None:
    p = props(base, "HuntEventSourceMapping")
    assert p["FunctionName"] == {"Ref": "ProcessorFunction"}
    assert p["EventSourceArn"] == {"Fn::GetAtt": ["HuntQueue", "Arn"]}
    assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert p["BatchSize"] == hunt_estimate.HUNT_BATCH_SIZE and "MaximumBatchingWindowInSeconds" not in p
    assert p["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "HuntConcurrency"}}
    parameter = base["Parameters"]["HuntConcurrency"]
    assert (parameter["MinValue"], parameter["Default"]) == (2, 5)  # SQS's minimum MaximumConcurrency is 2
    assert depends_on(base, "HuntEventSourceMapping", "HuntPolicy")


def test_hunt_grants(base: dict[str, Any]) -> None:
    p = props(base, "HuntPolicy")
    assert p["Roles"] == [{"Ref": "ProcessorRole"}]
    document = p["PolicyDocument"]
    assert statement_by_sid(document, "ConsumeHuntQueue")["Resource"] == {"Fn::GetAtt": ["HuntQueue", "Arn"]}
    configs = statement_by_sid(document, "ReadHuntConfigs")
    assert configs["Action"] == "s3:GetObject"
    assert resolve(base, configs["Resource"], {"TrailBucketName": "b", "AWS::Partition": "aws"}).endswith(
        ":s3:::b/hunts/*"
    )
    assert statement_by_sid(document, "HuntState")["Action"] == [
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
    ]


def test_function_knows_the_hunt_queue_and_stack_outputs_name_it(base: dict[str, Any]) -> None:
    variables = props(base, "ProcessorFunction")["Environment"]["Variables"]
    assert variables["HUNT_QUEUE_ARN"] == {"Fn::GetAtt": ["HuntQueue", "Arn"]}
    outputs = base["Outputs"]
    assert outputs["HuntQueueUrl"]["Value"] == {"Ref": "HuntQueue"}
    assert outputs["HuntDeadLetterQueueUrl"]["Value"] == {"Ref": "HuntDeadLetterQueue"}
