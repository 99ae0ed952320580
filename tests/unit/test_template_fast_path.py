"""main.yaml's fast path: an EventBridge rule on the default bus -> FastPathQueue -> the same
processor, and the forwarder mode of the same template (Role=forwarder: only a rule forwarding to the home
region's bus, nothing else)."""

from __future__ import annotations

from typing import Any

import pytest
from trailwatch import cfn_template

from tests.unit.template_helpers import created, deployment, load_template, props, statements

HERE = "123456789012"
FAST_PATH = {
    "FastPathRule",
    "FastPathQueue",
    "FastPathDeadLetterQueue",
    "FastPathQueuePolicy",
    "FastPathPolicy",
    "FastPathEventSourceMapping",
    "FastPathDeadLetterQueueAlarm",
}
FORWARDER = {"ForwarderRole", "ForwarderPolicy", "ForwarderRule"}
CLOUDTRAIL_DETAIL_TYPES = [
    "AWS API Call via CloudTrail",
    "AWS Console Sign In via CloudTrail",
    "AWS Service Event via CloudTrail",
]
ATTACH = {"ExistingBucketName": "org-trail-archive", "ExistingLogFileKmsKeyArn": "arn:aws:kms:x"}
OUTPUTS = {"SlackSecretArn": "arn:aws:secretsmanager:s", "WebhookSecretArn": "arn:aws:secretsmanager:w"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _evaluator(template: dict[str, Any], given: dict[str, str]) -> cfn_template.Evaluator:
    return deployment(template, given, account=HERE, region="eu-west-1")


def _created(template: dict[str, Any], given: dict[str, str], section: str = "Resources") -> set[str]:
    return created(template, _evaluator(template, given), section)


def test_fast_path_is_on_by_default(template: dict[str, Any]) -> None:
    created = _created(template, {})
    assert created >= FAST_PATH
    assert not FORWARDER & created
    assert {"FastPathRuleName", "FastPathQueueUrl", "FastPathDeadLetterQueueUrl"} <= _created(
        template, {}, "Outputs"
    )


@pytest.mark.parametrize("given", [{}, ATTACH], ids=["created-trail", "attach"])
def test_fast_path_false_removes_only_the_fast_path(template: dict[str, Any], given: dict[str, str]) -> None:
    with_it = _created(template, given)
    without = _created(template, {**given, "FastPath": "false"})
    assert with_it - without == FAST_PATH
    assert not without - with_it


@pytest.mark.parametrize(
    "given", [{}, ATTACH, OUTPUTS, {"SubscribeEmailToLogDelivery": "true", "LogFileKmsEncryption": "true"}]
)
def test_forwarder_mode_creates_only_the_forwarder(template: dict[str, Any], given: dict[str, str]) -> None:
    """Whatever else is set (attach mode, outputs, optional features), a forwarder is only a forwarder."""
    forwarder = {**given, "Role": "forwarder", "HomeRegion": "us-east-1"}
    assert _created(template, forwarder) == FORWARDER
    assert _created(template, forwarder, "Outputs") == {"ForwarderRuleName", "ForwarderTargetBusArn"}


def test_every_resource_is_conditional_on_the_role(template: dict[str, Any]) -> None:
    """A resource added later without a condition would appear in every forwarder region."""
    for name, res in template["Resources"].items():
        assert "Condition" in res, f"{name} has no condition: it would be created in forwarder stacks"


def test_forwarder_needs_a_home_region(template: dict[str, Any]) -> None:
    rule = template["Rules"]["ForwarderNeedsHomeRegion"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Role"}, "forwarder"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "HomeRegion"}, ""]}]}


def test_rule_sends_cloudtrail_events_of_the_default_bus_to_the_queue(template: dict[str, Any]) -> None:
    rule = props(template, "FastPathRule")
    assert rule["EventBusName"] == "default"
    assert rule["State"] == "ENABLED"
    assert rule["EventPattern"] == {"detail-type": CLOUDTRAIL_DETAIL_TYPES}  # broad until the CLI sets it
    assert rule["Targets"] == [{"Id": "FastPathQueue", "Arn": {"Fn::GetAtt": ["FastPathQueue", "Arn"]}}]
    # The CLI finds the rule by name in every region: same name in home and forwarder stacks.
    assert (
        rule["Name"] == props(template, "ForwarderRule")["Name"] == {"Fn::Sub": "${AWS::StackName}-fast-path"}
    )


def test_queue_is_encrypted_with_a_dead_letter_queue(template: dict[str, Any]) -> None:
    queue = props(template, "FastPathQueue")
    assert queue["SqsManagedSseEnabled"] is True
    assert "KmsMasterKeyId" not in queue  # SSE-KMS would need events.amazonaws.com in a key policy
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["FastPathDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert queue["VisibilityTimeout"] == props(template, "LogProcessingQueue")["VisibilityTimeout"]
    assert props(template, "FastPathDeadLetterQueue")["SqsManagedSseEnabled"] is True


def test_only_the_rule_may_send_to_the_queue(template: dict[str, Any]) -> None:
    policy = props(template, "FastPathQueuePolicy")
    assert policy["Queues"] == [{"Ref": "FastPathQueue"}]
    (stmt,) = statements(policy["PolicyDocument"])
    assert stmt["Effect"] == "Allow"
    assert stmt["Principal"] == {"Service": "events.amazonaws.com"}
    assert stmt["Action"] == "sqs:SendMessage"
    assert stmt["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["FastPathRule", "Arn"]}}}


def test_the_same_function_consumes_the_queue(template: dict[str, Any]) -> None:
    mapping = props(template, "FastPathEventSourceMapping")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["FastPathQueue", "Arn"]}
    assert mapping["FunctionName"] == {"Ref": "ProcessorFunction"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert template["Resources"]["FastPathEventSourceMapping"]["DependsOn"] == "FastPathPolicy"
    policy = props(template, "FastPathPolicy")
    assert policy["Roles"] == [{"Ref": "ProcessorRole"}]
    (stmt,) = statements(policy["PolicyDocument"])
    assert stmt["Resource"] == {"Fn::GetAtt": ["FastPathQueue", "Arn"]}
    assert "sqs:ReceiveMessage" in stmt["Action"] and "sqs:DeleteMessage" in stmt["Action"]


def test_dead_letter_queue_alarm_notifies_the_alarm_topic(template: dict[str, Any]) -> None:
    alarm = props(template, "FastPathDeadLetterQueueAlarm")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["FastPathDeadLetterQueue", "QueueName"]}}
    ]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-")  # the AlarmTopic policy's pin


def test_forwarder_puts_events_on_the_home_bus_through_a_role(template: dict[str, Any]) -> None:
    ev = _evaluator(template, {"Role": "forwarder", "HomeRegion": "us-east-1"})
    home_bus = f"arn:aws:events:us-east-1:{HERE}:event-bus/default"
    rule = ev.resolve(props(template, "ForwarderRule"))
    assert rule["EventBusName"] == "default"
    assert rule["EventPattern"] == {"detail-type": CLOUDTRAIL_DETAIL_TYPES}
    assert rule["Targets"] == [{"Id": "HomeRegionBus", "Arn": home_bus, "RoleArn": "ForwarderRole.Arn"}]
    trust = ev.resolve(props(template, "ForwarderRole"))["AssumeRolePolicyDocument"]
    (assume,) = statements(trust)
    assert assume["Principal"] == {"Service": "events.amazonaws.com"}
    assert assume["Condition"] == {"StringEquals": {"aws:SourceAccount": HERE}}
    (put,) = statements(ev.resolve(props(template, "ForwarderPolicy"))["PolicyDocument"])
    assert (put["Action"], put["Resource"]) == ("events:PutEvents", home_bus)
    assert template["Resources"]["ForwarderRule"]["DependsOn"] == "ForwarderPolicy"
