"""The fast path's CLI side (cli/trailwatch/fast_path.py) under moto in-process: the rule's pattern and state
from the config (PutRule keeping name, description, bus), the forwarders found by their stacks, verify's
rule check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from trailwatch import fast_path
from trailwatch.errors import UsageError
from trailwatch.session import Aws, Options
from trailwatch.ui import UI
from trailwatch_processor.config import Config
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.eventbridge_pattern import STATE_ALL_MANAGEMENT, event_pattern

STACK = "trailwatch"
RULE = fast_path.rule_name(STACK)
BROAD = {"detail-type": ["AWS API Call via CloudTrail"]}
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:fast"
WRITE_ONLY = {"rules": [{"id": "iam-users", "pattern": {"eventName": ["CreateUser"], "readOnly": [False]}}]}
# A config with a rule on read-only events: the rule's state must take all management events.
READS = {"rules": [{"id": "reads", "pattern": {"eventName": ["ListUsers"]}}]}


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


@pytest.fixture
def aws(moto: None) -> Aws:
    return Aws(Options(region="us-east-1", stack_name=STACK))


def config(doc: dict[str, Any]) -> Config:
    return validate_config(doc)


def make_rule(region: str, *, state: str = "ENABLED", target: str | None = QUEUE_ARN) -> Any:
    events = boto3.client("events", region_name=region)
    events.put_rule(
        Name=RULE, EventPattern=json.dumps(BROAD), State=state, Description="trailwatch fast path - test"
    )
    if target:
        events.put_targets(Rule=RULE, Targets=[{"Id": "t", "Arn": target}])
    return events


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, []),
        ("", []),
        ("us-west-2,eu-west-1", ["us-west-2", "eu-west-1"]),
        (" us-west-2 , us-west-2,us-east-1,", ["us-west-2"]),  # duplicates and the home region dropped
    ],
)
def test_parse_regions(text: str | None, expected: list[str]) -> None:
    assert fast_path.parse_regions(text, "us-east-1") == expected


@pytest.mark.parametrize("bad", ["us_west_2", "Oregon", "us-west-2;rm"])
def test_parse_regions_refuses_what_is_no_region(bad: str) -> None:
    with pytest.raises(UsageError, match="not a region"):
        fast_path.parse_regions(bad, "us-east-1")


@pytest.mark.parametrize(("doc", "state"), [(WRITE_ONLY, "ENABLED"), (READS, STATE_ALL_MANAGEMENT)])
def test_apply_rule_puts_the_config_pattern_and_state(aws: Aws, doc: dict[str, Any], state: str) -> None:
    events = make_rule("us-east-1")
    generated = event_pattern(config(doc))
    assert fast_path.apply_rule(events, RULE, generated) == (state, True)
    rule = events.describe_rule(Name=RULE)
    assert json.loads(rule["EventPattern"]) == generated.pattern
    assert rule["State"] == state
    assert rule["Description"] == "trailwatch fast path - test"  # kept
    assert rule["EventBusName"] == "default"
    assert events.list_targets_by_rule(Rule=RULE)["Targets"][0]["Arn"] == QUEUE_ARN  # PutRule keeps targets
    assert fast_path.apply_rule(events, RULE, generated) == (state, False)  # already current


def test_a_disabled_rule_stays_disabled(aws: Aws) -> None:
    events = make_rule("us-east-1", state="DISABLED")
    generated = event_pattern(config(WRITE_ONLY))
    assert fast_path.apply_rule(events, RULE, generated) == ("DISABLED", True)
    rule = events.describe_rule(Name=RULE)
    assert rule["State"] == "DISABLED"
    assert json.loads(rule["EventPattern"]) == generated.pattern


def outputs_of(events: Any) -> dict[str, str]:
    return {"FastPathRuleName": RULE, "FastPathRuleArn": events.describe_rule(Name=RULE)["Arn"]}


def test_sync_sets_home_and_forwarder_rules(aws: Aws) -> None:
    outputs = outputs_of(make_rule("us-east-1"))
    make_rule("us-west-2", target="arn:aws:events:us-east-1:123456789012:event-bus/default")
    make_rule("eu-west-1")  # a rule of that name in a region not recorded as a forwarder: not touched
    assert fast_path.record_forwarders(aws, outputs, ["us-west-2"]) == ["us-west-2"]
    applied = fast_path.sync_rules(aws, UI(), config(READS), outputs)
    assert [(a.region, a.state, a.changed) for a in applied] == [
        ("us-east-1", STATE_ALL_MANAGEMENT, True),
        ("us-west-2", STATE_ALL_MANAGEMENT, True),
    ]
    expected = event_pattern(config(READS)).pattern
    for region in ("us-east-1", "us-west-2"):
        got = boto3.client("events", region_name=region).describe_rule(Name=RULE)
        assert json.loads(got["EventPattern"]) == expected
    untouched = boto3.client("events", region_name="eu-west-1").describe_rule(Name=RULE)
    assert json.loads(untouched["EventPattern"]) == BROAD


def test_sync_without_fast_path_changes_nothing(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    events = make_rule("us-east-1")
    assert fast_path.sync_rules(aws, UI(), config(READS), {"TrailBucketName": "b"}) == []
    assert json.loads(events.describe_rule(Name=RULE)["EventPattern"]) == BROAD
    assert "FastPath=false" in capsys.readouterr().out


def test_forwarders_are_recorded_on_the_home_rule(aws: Aws) -> None:
    outputs = outputs_of(make_rule("us-east-1"))
    assert fast_path.forwarder_regions(aws, outputs) == []
    fast_path.record_forwarders(aws, outputs, ["us-west-2"])
    assert fast_path.record_forwarders(aws, outputs, ["eu-west-1", "us-west-2"]) == ["eu-west-1", "us-west-2"]
    assert fast_path.forwarder_regions(aws, outputs) == ["eu-west-1", "us-west-2"]
    assert fast_path.forwarder_regions(aws, {"FastPathRuleName": RULE}) == []  # no fast path rule ARN


def test_forwarder_parameters_take_the_home_values_without_default() -> None:
    taken = {"TrailBucketName": "b", "AlertEmail": "a@example.com", "CodeBucket": "c", "CodeKey": "k"}
    forwarder = fast_path.forwarder_parameters({**taken, "X": "y"}, "us-east-1")
    assert forwarder == {"Role": "forwarder", "HomeRegion": "us-east-1", **taken}


def test_check_rule_passes_when_all_is_as_the_config_says(aws: Aws) -> None:
    events = make_rule("us-east-1")
    generated = event_pattern(config(READS))
    fast_path.apply_rule(events, RULE, generated)
    status, reason = fast_path.check_rule(events, RULE, generated, QUEUE_ARN)
    assert status == "pass", reason


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ("stale-pattern", "fail", "pattern is not the config's"),
        ("state", "fail", f"needs {STATE_ALL_MANAGEMENT}"),
        ("target", "fail", "no target"),
        ("disabled", "warn", "DISABLED"),
        ("missing", "fail", "no rule"),
    ],
)
def test_check_rule_finds_what_is_wrong(aws: Aws, change: str, status: str, says: str) -> None:
    generated = event_pattern(config(READS))
    events = boto3.client("events", region_name="us-east-1")
    if change != "missing":
        make_rule("us-east-1", target=None if change == "target" else QUEUE_ARN)
        fast_path.apply_rule(events, RULE, generated)
    if change == "stale-pattern":
        events.put_rule(Name=RULE, EventPattern=json.dumps(BROAD), State=generated.state)
    elif change == "state":
        events.put_rule(Name=RULE, EventPattern=generated.text, State="ENABLED")
    elif change == "disabled":
        events.disable_rule(Name=RULE)
    got, reason = fast_path.check_rule(events, RULE, generated, QUEUE_ARN)
    assert (got, says in reason) == (status, True), reason


ROLE_TEMPLATE = json.dumps(
    {
        "Parameters": {"Role": {"Type": "String", "Default": "home"}},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    }
)


def test_deploy_forwarders_never_turns_a_full_stack_into_a_forwarder(aws: Aws) -> None:
    boto3.client("cloudformation", region_name="us-west-2").create_stack(
        StackName=STACK, TemplateBody=ROLE_TEMPLATE
    )  # a full trailwatch stack of the same name in that region
    with pytest.raises(UsageError, match="full trailwatch stack"):
        fast_path.deploy_forwarders(
            aws,
            UI(),
            ["us-west-2"],
            template=ROLE_TEMPLATE,
            template_arg={"TemplateBody": ROLE_TEMPLATE},
            home_parameters={},
            home_outputs={"FastPathRuleArn": "arn:aws:events:us-east-1:123456789012:rule/x"},
        )


def test_deploy_forwarders_skips_without_a_fast_path(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    deployed = fast_path.deploy_forwarders(
        aws,
        UI(),
        ["us-west-2"],
        template=ROLE_TEMPLATE,
        template_arg={"TemplateBody": ROLE_TEMPLATE},
        home_parameters={"FastPath": "false"},
        home_outputs={},
    )
    assert deployed == []
    assert "no forwarders deployed" in capsys.readouterr().err  # a warning
    assert boto3.client("cloudformation", region_name="us-west-2").describe_stacks()["Stacks"] == []
