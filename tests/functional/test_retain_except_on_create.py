"""DeletionPolicy on the local AWS as CloudFormation documents it: `Retain` keeps a
resource even when the stack's *creation* rolls back (the leftover that blocks the next deploy);
`RetainExceptOnCreate` deletes it then, and keeps it on stack deletion and on removal by an update.

Before `cfn_models.RETAINED`, the local AWS deleted a `RetainExceptOnCreate` resource with its stack
(moto and our DeleteStack honoured only "Retain"): the deletion and update cases here failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from trailwatch.local import cfn_models


@pytest.fixture
def cfn() -> Iterator[Any]:
    with mock_aws():
        cfn_models.register()
        yield boto3.client("cloudformation", region_name="us-east-1")


def queues() -> list[str]:
    urls = boto3.client("sqs", region_name="us-east-1").list_queues().get("QueueUrls", [])
    return [u.rsplit("/", 1)[1] for u in urls]


def body(policy: str, *, failing: bool = False, keep: bool = True) -> str:
    resources: dict[str, Any] = {
        "Other": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "other"}},
    }
    if keep:
        resources["Kept"] = {
            "Type": "AWS::SQS::Queue",
            "DeletionPolicy": policy,
            "UpdateReplacePolicy": "Retain",
            "Properties": {"QueueName": "kept"},
        }
    if failing:
        resources["Odd"] = {"Type": "AWS::Foo::Bar", "DependsOn": "Kept", "Properties": {"X": 1}}
    return json.dumps({"Resources": resources})


@pytest.mark.parametrize(("policy", "left"), [("Retain", ["kept"]), ("RetainExceptOnCreate", [])])
def test_failed_create_keeps_only_retain(cfn: Any, policy: str, left: list[str]) -> None:
    cfn.create_stack(StackName="s", TemplateBody=body(policy, failing=True))
    assert cfn.describe_stacks(StackName="s")["Stacks"][0]["StackStatus"] == "ROLLBACK_COMPLETE"
    assert queues() == left


@pytest.mark.parametrize("policy", ["Retain", "RetainExceptOnCreate"])
def test_stack_deletion_keeps_the_resource(cfn: Any, policy: str) -> None:
    cfn.create_stack(StackName="s", TemplateBody=body(policy))
    cfn.delete_stack(StackName="s")
    assert queues() == ["kept"]
    events = cfn.describe_stack_events(StackName=cfn.list_stacks()["StackSummaries"][0]["StackId"])
    skipped = [
        e["LogicalResourceId"] for e in events["StackEvents"] if e["ResourceStatus"] == "DELETE_SKIPPED"
    ]
    assert skipped == ["Kept"]


@pytest.mark.parametrize("policy", ["Retain", "RetainExceptOnCreate"])
def test_update_removing_the_resource_keeps_it(cfn: Any, policy: str) -> None:
    cfn.create_stack(StackName="s", TemplateBody=body(policy))
    cfn.update_stack(StackName="s", TemplateBody=body(policy, keep=False))
    assert cfn.describe_stacks(StackName="s")["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    assert sorted(queues()) == ["kept", "other"]
