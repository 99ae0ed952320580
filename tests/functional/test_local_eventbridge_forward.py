"""The local AWS forwards events between regions' buses as AWS does (the fast path's forwarders).

A rule in a region with an event-bus target in another region (and a role) puts the event itself on that
bus: same `id`, `region` of the call, `time`, `detail`; the target bus's rules match it with the same
semantics and state rules. moto alone re-puts it as a new event of the target region through its own
matching (`region` becomes the target's, `id` and `time` are new).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from trailwatch.local.server import LocalAWS

from tests.functional.test_local_eventbridge import client, drain, names, rule_to_queue

ACCOUNT = "123456789012"
HOME_BUS = f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/forwarder"
SG_PATTERN = {
    "source": ["aws.ec2"],
    "detail": {"eventName": ["CreateSecurityGroup", "DescribeSecurityGroups"]},
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAWS]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    local = LocalAWS(port=0, lambda_runtime=False, delivery_interval=3600.0, log=lambda message: None)
    local.start()
    try:
        yield local
    finally:
        local.stop()


def forwarder(aws: LocalAWS, region: str, *, state: str = "ENABLED", role: str | None = ROLE_ARN) -> None:
    events = client(aws, "events", region)
    events.put_rule(Name="fwd", EventPattern=json.dumps(SG_PATTERN), State=state)
    target: dict[str, Any] = {"Id": "home", "Arn": HOME_BUS}
    if role:
        target["RoleArn"] = role
    events.put_targets(Rule="fwd", Targets=[target])


def create_security_group(aws: LocalAWS, region: str, name: str = "web") -> None:
    client(aws, "ec2", region).create_security_group(GroupName=name, Description="d")


def test_forwarded_event_keeps_its_identity_and_region(aws: LocalAWS) -> None:
    home = rule_to_queue(aws, SG_PATTERN, region="us-east-1", name="home")
    local_copy = rule_to_queue(aws, SG_PATTERN, region="us-west-2", name="here")
    forwarder(aws, "us-west-2")
    create_security_group(aws, "us-west-2")
    (forwarded,) = drain(aws, home)
    (original,) = drain(aws, local_copy, "us-west-2")
    assert forwarded == original  # the event itself: id, time, region us-west-2, detail
    assert forwarded["region"] == "us-west-2"
    assert forwarded["detail"]["awsRegion"] == "us-west-2"


def test_no_role_no_cross_region_delivery(aws: LocalAWS) -> None:
    """AWS needs a role for a bus of another region (EventBridge calls PutEvents with it)."""
    home = rule_to_queue(aws, SG_PATTERN, region="us-east-1", name="home")
    forwarder(aws, "us-west-2", role=None)
    create_security_group(aws, "us-west-2")
    assert drain(aws, home, wait=1.0) == []


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("ENABLED", ["CreateSecurityGroup"]),
        ("ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS", ["DescribeSecurityGroups", "CreateSecurityGroup"]),
        ("DISABLED", []),
    ],
)
def test_forwarder_state_decides_read_only_events(aws: LocalAWS, state: str, expected: list[str]) -> None:
    """Both rules in the state the CLI gives both (the config needs read-only events or not)."""
    home = rule_to_queue(
        aws,
        SG_PATTERN,
        region="us-east-1",
        name="home",
        state="ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
    )
    forwarder(aws, "us-west-2", state=state)
    client(aws, "ec2", "us-west-2").describe_security_groups()
    create_security_group(aws, "us-west-2")
    assert names(drain(aws, home, wait=1.5)) == expected


def test_forwarding_is_one_hop(aws: LocalAWS) -> None:
    """A forwarding loop (us-west-2 -> us-east-1 -> us-west-2) delivers once and stops."""
    home = rule_to_queue(aws, SG_PATTERN, region="us-east-1", name="home")
    forwarder(aws, "us-west-2")
    back = client(aws, "events", "us-east-1")
    back.put_rule(Name="back", EventPattern=json.dumps(SG_PATTERN))
    west_bus = f"arn:aws:events:us-west-2:{ACCOUNT}:event-bus/default"
    back.put_targets(Rule="back", Targets=[{"Id": "w", "Arn": west_bus, "RoleArn": ROLE_ARN}])
    create_security_group(aws, "us-west-2")
    assert names(drain(aws, home, wait=1.5)) == ["CreateSecurityGroup"]
