"""main.yaml's output resources (Slack, webhook): nothing without a configured output, one queue + DLQ +
alarm + raw subscription + mapping per output, and secret access limited to the named secrets."""

from __future__ import annotations

import re
from typing import Any

import pytest
from trailwatch.cfn_template import Evaluator

from tests.unit.template_helpers import load_template, props, resources_of_type, statement_by_sid

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:trailwatch/slack-AbCdEf"
HOOK_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:trailwatch/webhook-AbCdEf"
OUTPUTS = {"Slack": "HasSlackOutput", "Webhook": "HasWebhookOutput"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def created(template: dict[str, Any], parameters: dict[str, str]) -> set[str]:
    evaluator = Evaluator.for_template(template, parameters)
    return {
        name
        for name, resource in template["Resources"].items()
        if "Condition" not in resource or evaluator.condition(resource["Condition"])
    }


def output_resources(template: dict[str, Any]) -> set[str]:
    return {name for name in template["Resources"] if "Output" in name}


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, set()),
        ({"SlackSecretArn": SECRET}, {"Slack"}),
        ({"WebhookSecretArn": HOOK_SECRET}, {"Webhook"}),
        ({"SlackSecretArn": SECRET, "WebhookSecretArn": HOOK_SECRET}, {"Slack", "Webhook"}),
    ],
    ids=["none", "slack", "webhook", "both"],
)
def test_output_resources_exist_only_for_configured_outputs(
    template: dict[str, Any], parameters: dict[str, str], expected: set[str]
) -> None:
    made = created(template, parameters) & output_resources(template)
    wanted = {name for name in output_resources(template) if any(name.startswith(o) for o in expected)}
    if expected:
        wanted.add("OutputsPolicy")
    assert made == wanted


@pytest.mark.parametrize("name", OUTPUTS)
def test_each_output_is_wired_alert_topic_to_queue_to_function(template: dict[str, Any], name: str) -> None:
    queue = props(template, f"{name}OutputQueue")
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": [f"{name}OutputDeadLetterQueue", "Arn"]
    }
    assert queue["VisibilityTimeout"] == props(template, "LogProcessingQueue")["VisibilityTimeout"]
    subscription = props(template, f"{name}OutputSubscription")
    assert subscription["TopicArn"] == {"Ref": "AlertTopic"}
    assert subscription["Protocol"] == "sqs" and subscription["RawMessageDelivery"] is True
    assert subscription["Endpoint"] == {"Fn::GetAtt": [f"{name}OutputQueue", "Arn"]}
    mapping = template["Resources"][f"{name}OutputEventSourceMapping"]
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [f"{name}OutputQueue", "Arn"]}
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 2}  # SQS's minimum
    assert mapping["DependsOn"] == "OutputsPolicy"  # the role can read the queue before polling starts
    policy = props(template, f"{name}OutputQueuePolicy")["PolicyDocument"]
    assert statement_by_sid(policy, "AlertTopicSends")["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Ref": "AlertTopic"}}
    }
    alarm = props(template, f"{name}OutputDeadLetterQueueAlarm")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [f"{name}OutputDeadLetterQueue", "QueueName"]}}
    ]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_function_reads_only_the_named_secrets(template: dict[str, Any]) -> None:
    document = props(template, "OutputsPolicy")["PolicyDocument"]
    secrets = statement_by_sid(document, "ReadOutputSecrets")
    assert secrets["Action"] == "secretsmanager:GetSecretValue"
    evaluator = Evaluator.for_template(template, {"SlackSecretArn": SECRET})
    assert evaluator.resolve(secrets["Resource"]) == [SECRET]
    every = [s for r in resources_of_type(template, "AWS::IAM::Role").values() for s in _actions(r)]
    assert not any(action.startswith("secretsmanager:") for action in every)  # nowhere else


def test_no_secret_material_in_parameters_or_environment(template: dict[str, Any]) -> None:
    """Only secret ARNs cross the template: the parameters accept nothing but an ARN (or empty)."""
    for name in ("SlackSecretArn", "WebhookSecretArn"):
        pattern = template["Parameters"][name]["AllowedPattern"]
        assert re.fullmatch(pattern, "")
        assert re.fullmatch(pattern, SECRET)
        assert not re.fullmatch(pattern, "https://hooks.slack.com/services/T000/B000/XXXX")


def _actions(role: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            action = statement.get("Action", [])
            out += [action] if isinstance(action, str) else action
    return out


def test_delivery_failures_alert_the_alarm_topic_never_the_alert_topic(template: dict[str, Any]) -> None:
    """An output's last failed receive alerts on the AlarmTopic: the output queues are subscribed to the
    AlertTopic, so an alert about a failing output published there would feed that output."""
    environment = props(template, "ProcessorFunction")["Environment"]["Variables"]
    assert environment["ALARM_TOPIC_ARN"] == {"Ref": "AlarmTopic"}
    document = props(template, "OutputsPolicy")["PolicyDocument"]
    publish = statement_by_sid(document, "AlertOutputDeliveryFailures")
    assert publish["Action"] == "sns:Publish" and publish["Resource"] == {"Ref": "AlarmTopic"}
    key = statement_by_sid(document, "UseAlarmTopicKey")
    assert key["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:aws:sns:topicArn": {"Ref": "AlarmTopic"}}
    }
    subscribed = {props(template, f"{name}OutputSubscription")["TopicArn"]["Ref"] for name in OUTPUTS}
    assert subscribed == {"AlertTopic"}
    alarm_subscribers = [
        name
        for name, resource in resources_of_type(template, "AWS::SNS::Subscription").items()
        if resource["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}
    ]
    assert alarm_subscribers == ["AlarmEmailSubscription"]
