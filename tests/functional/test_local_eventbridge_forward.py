"""The local AWS forwards events between regions' buses as AWS does (the fast path's forwarders).

A rule in a region with an event-bus target in another region (and a role) puts the event itself on that
bus: same `id`, `region` of the call, `time`, `detail`; the target bus's rules match it with the same
semantics and state rules. moto alone re-puts it as a new event of the target region through its own
matching (`region` becomes the target's, `id` and `time` are new).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from trailwatch.local.server import LocalAWS

from tests.functional.test_local_eventbridge import (
    client,
    drain,
    drain_to_sentinel,
    names,
    rule_state_cases,
    rule_to_queue,
    sentinel_route,
)

ACCOUNT = "123456789012"
HOME_BUS = f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/forwarder"
SG_PATTERN = {
    "source": ["aws.ec2"],
    "detail": {"eventName": ["CreateSecurityGroup", "DescribeSecurityGroups"]},
}


@pytest.fixture
def local_aws(fresh_local_aws: LocalAWS) -> LocalAWS:
    """This module's tests share one server, forgotten between tests (conftest's `fresh_local_aws`)."""
    return fresh_local_aws


def forwarder(
    local_aws: LocalAWS, region: str, *, state: str = "ENABLED", role: str | None = ROLE_ARN
) -> None:
    events = client(local_aws, "events", region)
    events.put_rule(Name="fwd", EventPattern=json.dumps(SG_PATTERN), State=state)
    target: dict[str, Any] = {"Id": "home", "Arn": HOME_BUS}
    if role:
        target["RoleArn"] = role
    events.put_targets(Rule="fwd", Targets=[target])


def create_security_group(local_aws: LocalAWS, region: str, name: str = "web") -> None:
    client(local_aws, "ec2", region).create_security_group(GroupName=name, Description="d")


def test_forwarded_event_keeps_its_identity_and_region(local_aws: LocalAWS) -> None:
    home = rule_to_queue(local_aws, SG_PATTERN, region="us-east-1", name="home")
    local_copy = rule_to_queue(local_aws, SG_PATTERN, region="us-west-2", name="here")
    forwarder(local_aws, "us-west-2")
    create_security_group(local_aws, "us-west-2")
    (forwarded,) = drain(local_aws, home)
    (original,) = drain(local_aws, local_copy, "us-west-2")
    assert forwarded == original  # the event itself: id, time, region us-west-2, detail
    assert forwarded["region"] == "us-west-2"
    assert forwarded["detail"]["awsRegion"] == "us-west-2"


def test_no_role_no_cross_region_delivery(local_aws: LocalAWS) -> None:
    """AWS needs a role for a bus of another region (EventBridge calls PutEvents with it)."""
    home = rule_to_queue(local_aws, SG_PATTERN, region="us-east-1", name="home")
    forwarder(local_aws, "us-west-2", role=None)
    sentinel_route(local_aws, home, via="us-west-2", role=ROLE_ARN)  # forwarded after, as it would be
    create_security_group(local_aws, "us-west-2")
    assert drain_to_sentinel(local_aws, home, via="us-west-2") == []


@pytest.mark.parametrize(
    ("state", "expected"), rule_state_cases("DescribeSecurityGroups", "CreateSecurityGroup")
)
def test_forwarder_state_decides_read_only_events(
    local_aws: LocalAWS, state: str, expected: list[str]
) -> None:
    """Both rules in the state the CLI gives both (the config needs read-only events or not)."""
    home = rule_to_queue(
        local_aws,
        SG_PATTERN,
        region="us-east-1",
        name="home",
        state="ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
    )
    forwarder(local_aws, "us-west-2", state=state)
    sentinel_route(local_aws, home, via="us-west-2", role=ROLE_ARN)  # forwarded after, as they would be
    client(local_aws, "ec2", "us-west-2").describe_security_groups()
    create_security_group(local_aws, "us-west-2")
    assert names(drain_to_sentinel(local_aws, home, via="us-west-2")) == expected


def test_forwarding_is_one_hop(local_aws: LocalAWS) -> None:
    """A forwarding loop (us-west-2 -> us-east-1 -> us-west-2) delivers once and stops."""
    home = rule_to_queue(local_aws, SG_PATTERN, region="us-east-1", name="home")
    forwarder(local_aws, "us-west-2")
    back = client(local_aws, "events", "us-east-1")
    back.put_rule(Name="back", EventPattern=json.dumps(SG_PATTERN))
    west_bus = f"arn:aws:events:us-west-2:{ACCOUNT}:event-bus/default"
    back.put_targets(Rule="back", Targets=[{"Id": "w", "Arn": west_bus, "RoleArn": ROLE_ARN}])
    create_security_group(local_aws, "us-west-2")
    assert names(drain(local_aws, home, wait=1.5)) == ["CreateSecurityGroup"]
