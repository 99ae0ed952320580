"""The CloudFormation evaluator shared by `verify`, the local AWS and the tests: loading, intrinsic
functions, conditions (with Fn::Equals comparing text, as CloudFormation compares parameter values)."""

from __future__ import annotations

from typing import Any

import pytest
from trailwatch.cfn_template import NOVALUE, Evaluator, Unresolvable, load, references

ENV = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "Bucket": "b", "Flag": "true", "Minutes": "60"}
CONDITIONS = {
    "On": {"Fn::Equals": [{"Ref": "Flag"}, "true"]},
    "Off": {"Fn::Not": [{"Condition": "On"}]},
    "Hour": {"Fn::Equals": [{"Ref": "Minutes"}, 60]},
    "Both": {"Fn::And": [{"Condition": "On"}, {"Condition": "Hour"}]},
    "Either": {"Fn::Or": [{"Condition": "Off"}, {"Fn::Equals": ["a", "b"]}]},
}
MAPPINGS = {"Visibility": {"60": {"Seconds": 360}}, "Flags": {"true": {"Text": "yes"}}}


@pytest.fixture
def evaluator() -> Evaluator:
    def get_att(resource: str, attribute: str) -> str:
        return f"{resource}/{attribute}"

    return Evaluator(ENV, CONDITIONS, MAPPINGS, get_att)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"Ref": "Bucket"}, "b", id="Ref"),
        pytest.param({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/"}, "arn:aws:s3:::b/", id="Sub"),
        pytest.param({"Fn::Sub": ["${A}-${Bucket}", {"A": {"Ref": "Flag"}}]}, "true-b", id="Sub-variables"),
        pytest.param({"Fn::Sub": "${!Literal}-${Queue.Arn}"}, "${Literal}-Queue/Arn", id="Sub-GetAtt"),
        pytest.param({"Fn::GetAtt": ["Queue", "Arn"]}, "Queue/Arn", id="GetAtt"),
        pytest.param({"Fn::GetAtt": "Queue.QueueName"}, "Queue/QueueName", id="GetAtt-dotted"),
        pytest.param({"Fn::FindInMap": ["Visibility", {"Ref": "Minutes"}, "Seconds"]}, 360, id="FindInMap"),
        pytest.param({"Fn::FindInMap": ["Flags", True, "Text"]}, "yes", id="FindInMap-bool-key"),
        pytest.param({"Fn::If": ["On", {"Ref": "Bucket"}, "off"]}, "b", id="If-true"),
        pytest.param({"Fn::If": ["Off", "on", {"Ref": "AWS::NoValue"}]}, NOVALUE, id="If-NoValue"),
        pytest.param([{"Fn::If": ["Off", "x", {"Ref": "AWS::NoValue"}]}, "y"], ["y"], id="NoValue-in-list"),
        pytest.param({"K": {"Ref": "AWS::NoValue"}, "L": 1}, {"L": 1}, id="NoValue-in-mapping"),
        pytest.param({"Fn::Join": ["-", ["a", {"Ref": "Minutes"}, 7]]}, "a-60-7", id="Join"),
        pytest.param({"Name": {"Fn::Sub": "${Bucket}-x"}}, {"Name": "b-x"}, id="nested"),
    ],
)
def test_resolve(evaluator: Evaluator, value: Any, expected: Any) -> None:
    assert evaluator.resolve(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"Ref": "Missing"}, id="unknown-Ref"),
        pytest.param({"Fn::Sub": "${Missing}"}, id="unknown-Sub-variable"),
        pytest.param({"Fn::FindInMap": ["Visibility", "900", "Seconds"]}, id="missing-map-key"),
        pytest.param({"Fn::If": ["Missing", 1, 2]}, id="unknown-condition"),
        pytest.param({"Fn::Base64": "x"}, id="unhandled-function"),
    ],
)
def test_unresolvable_is_named(evaluator: Evaluator, value: Any) -> None:
    with pytest.raises(Unresolvable):
        evaluator.resolve(value)


def test_get_att_without_a_hook_is_unresolvable() -> None:
    with pytest.raises(Unresolvable, match=r"Trail\.Arn"):
        Evaluator(ENV).resolve({"Fn::GetAtt": ["Trail", "Arn"]})


@pytest.mark.parametrize(
    ("name", "holds"),
    [("On", True), ("Off", False), ("Hour", True), ("Both", True), ("Either", False)],
)
def test_conditions(evaluator: Evaluator, name: str, holds: bool) -> None:
    assert evaluator.condition(name) is holds


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        pytest.param("0", 0, True, id="string-param-vs-number"),
        pytest.param("1.5", 1.5, True, id="string-vs-float"),
        pytest.param("true", True, True, id="string-vs-yaml-bool"),
        pytest.param("false", True, False, id="false-vs-true"),
        pytest.param("True", "true", False, id="case-sensitive"),
        pytest.param("01", 1, False, id="text-not-numeric"),
        pytest.param("", "", True, id="empty"),
    ],
)
def test_equals_compares_text_as_cloudformation_does(left: Any, right: Any, equal: bool) -> None:
    evaluator = Evaluator({"P": left})
    assert evaluator.holds({"Fn::Equals": [{"Ref": "P"}, right]}) is equal


def test_for_template_uses_defaults_as_strings_and_given_values() -> None:
    template = {
        "Parameters": {"Concurrency": {"Type": "Number", "Default": 0}, "Name": {"Type": "String"}},
        "Conditions": {"Reserved": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Concurrency"}, 0]}]}},
    }
    assert Evaluator.for_template(template, {"Name": "n"}).all_conditions() == {"Reserved": False}
    assert Evaluator.for_template(template, {"Concurrency": "5"}).all_conditions() == {"Reserved": True}


def test_load_turns_short_forms_into_long_forms_and_keeps_dates_as_text() -> None:
    text = """
AWSTemplateFormatVersion: 2010-09-09
Conditions:
  Enabled: !Equals [!Ref Flag, "true"]
  Also: !And [!Condition Enabled, !Not [!Condition Enabled]]
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      Name: !Sub "${AWS::StackName}-q"
      Arn: !GetAtt Other.Arn
      Pick: !If [Enabled, !FindInMap [M, a, b], !Ref AWS::NoValue]
"""
    assert load(text) == {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Conditions": {
            "Enabled": {"Fn::Equals": [{"Ref": "Flag"}, "true"]},
            "Also": {"Fn::And": [{"Condition": "Enabled"}, {"Fn::Not": [{"Condition": "Enabled"}]}]},
        },
        "Resources": {
            "Q": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "Name": {"Fn::Sub": "${AWS::StackName}-q"},
                    "Arn": {"Fn::GetAtt": ["Other", "Arn"]},
                    "Pick": {
                        "Fn::If": ["Enabled", {"Fn::FindInMap": ["M", "a", "b"]}, {"Ref": "AWS::NoValue"}]
                    },
                },
            }
        },
    }


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ({"Ref": "P"}, {"P"}),
        ({"Fn::GetAtt": ["R", "Arn"]}, {"R"}),
        ({"Fn::GetAtt": "R.Arn"}, {"R"}),
        ({"Fn::Sub": "${A}-${B.Arn}-${!C}"}, {"A", "B"}),
        ({"Fn::Sub": ["${A}-${Local}", {"Local": {"Ref": "D"}}]}, {"A", "D"}),
        ({"Fn::If": ["Cond", {"Ref": "X"}, "y"]}, {"Cond", "X"}),
        ([{"Condition": "C"}, {"k": {"Ref": "Y"}}], {"C", "Y"}),
        ("plain", set()),
    ],
)
def test_references(value: Any, names: set[str]) -> None:
    assert references(value) == names
