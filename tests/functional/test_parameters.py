"""Template parameters checked as CloudFormation does on the local AWS: moto 5.2.1 accepts any
value, so every refusal asserted here fails without `parameters`' rows of `moto_patches.PATCHES`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from trailwatch.local import moto_patches
from trailwatch.local.parameters import ParameterError, check_parameters, check_value

from tests.unit.template_helpers import TEMPLATE_PATH, load_template

MAIN = load_template()
REQUIRED = {
    "TrailBucketName": "tw-params-trail",
    "AlertEmail": "sec@example.com",
    "CodeBucket": "code-bucket",
    "CodeKey": "processor.zip",
}


NUMBER, ALLOWED, PATTERN = "must be a number", "must be one of AllowedValues", "must match pattern "
# (parameter, a value CloudFormation refuses, what its message says after "Parameter '<parameter>' ")
REFUSED = [
    ("MaxReceiveCount", "0", f"{NUMBER} not less than 1"),
    ("MaxReceiveCount", "1001", f"{NUMBER} not greater than 1000"),
    ("MaxReceiveCount", "three", NUMBER),
    ("EmailMinimumSeverity", "urgent", ALLOWED),
    ("FunctionTimeout", "45", ALLOWED),
    ("TrailBucketName", "Upper-Case", PATTERN),
    ("AlertEmail", "not-an-email", PATTERN),
    ("AlertEmail", "a@b.c\nBcc: x@y.z", PATTERN),
]


@pytest.mark.parametrize(("name", "value", "rule"), REFUSED)
def test_main_yaml_values_are_refused_with_cloudformation_message(name: str, value: str, rule: str) -> None:
    spec = MAIN["Parameters"][name]
    message = f"Parameter '{name}' {rule}"
    if "ConstraintDescription" in spec and rule != NUMBER:
        message = f"Parameter '{name}' failed to satisfy constraint: {spec['ConstraintDescription']}"
    with pytest.raises(ParameterError) as caught:
        check_parameters(MAIN, {**REQUIRED, name: value})
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MaxReceiveCount", "1"),
        ("MaxReceiveCount", "1000"),
        ("FunctionTimeout", "60"),
        ("EmailMinimumSeverity", "high"),
    ],
)
def test_main_yaml_accepts_values_in_range(name: str, value: str) -> None:
    check_parameters(MAIN, {**REQUIRED, name: value})


def test_main_yaml_defaults_satisfy_their_own_constraints() -> None:
    check_parameters(MAIN, REQUIRED)


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        ({"MinLength": 3}, "ab", "Parameter 'P' must contain at least 3 characters"),
        ({"MaxLength": 2}, "abc", "Parameter 'P' must contain at most 2 characters"),
        ({"AllowedPattern": "[a-z]+"}, "abc1", "Parameter 'P' must match pattern [a-z]+"),
        ({"Type": "CommaDelimitedList", "AllowedValues": ["a", "b"]}, "a,c", "Parameter 'P' must be one of"),
        ({"Type": "Number", "AllowedValues": [1, 2]}, "2.0", None),
        ({"Type": "Number", "MaxValue": 2.5}, "2.6", "Parameter 'P' must be a number not greater than 2.5"),
        ({"AllowedPattern": "[a-z]+", "ConstraintDescription": "lower case"}, "A", "Parameter 'P' failed to "
         "satisfy constraint: lower case"),
    ],
)  # fmt: skip
def test_each_constraint(spec: dict[str, Any], value: str, message: str | None) -> None:
    if message is None:
        check_value("P", spec, value)
        return
    with pytest.raises(ParameterError) as caught:
        check_value("P", spec, value)
    assert str(caught.value).startswith(message)


SMALL = {
    "Parameters": {"Env": {"Type": "String", "AllowedValues": ["dev", "prod"], "Default": "dev"}},
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
}


@pytest.fixture
def cfn() -> Iterator[Any]:
    with mock_aws():
        moto_patches.install()
        yield boto3.client("cloudformation", region_name="us-east-1")


def _refusal(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    return caught.value.response["Error"]["Message"]


def test_create_stack_is_refused_before_anything_exists(cfn: Any) -> None:
    body = TEMPLATE_PATH.read_text()
    values = {**REQUIRED, "MaxReceiveCount": "0"}
    message = _refusal(
        cfn.create_stack,
        StackName="bad",
        TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    assert message == "Parameter 'MaxReceiveCount' must be a number not less than 1"
    assert cfn.list_stacks()["StackSummaries"] == []


def test_update_stack_and_change_set_are_refused(cfn: Any) -> None:
    body = json.dumps(SMALL)
    cfn.create_stack(
        StackName="small", TemplateBody=body, Parameters=[{"ParameterKey": "Env", "ParameterValue": "prod"}]
    )
    bad = [{"ParameterKey": "Env", "ParameterValue": "test"}]
    expected = "Parameter 'Env' must be one of AllowedValues"
    assert _refusal(cfn.update_stack, StackName="small", TemplateBody=body, Parameters=bad) == expected
    assert (
        _refusal(
            cfn.create_change_set, StackName="small", ChangeSetName="cs", TemplateBody=body, Parameters=bad
        )
        == expected
    )
    good = [{"ParameterKey": "Env", "ParameterValue": "dev"}]
    cfn.create_change_set(StackName="small", ChangeSetName="ok", TemplateBody=body, Parameters=good)
