"""noise.py: the pure decisions (which suppression hides a record, its group, its time), no AWS."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from trailwatch_processor import noise
from trailwatch_processor.config_schema import validate_config

NOW = datetime(2027, 3, 30, 12, 0, tzinfo=UTC)
RECORD = {
    "eventName": "DescribeStacks",
    "errorCode": "AccessDenied",
    "sourceIPAddress": "198.51.100.7",
    "userIdentity": {
        "type": "AssumedRole",
        "arn": "arn:aws:sts::1:assumed-role/scanner/s",
        "sessionContext": {},
    },
    "resources": [{"ARN": "a"}],
    "readOnly": True,
    "requestParameters": None,
}


def config(suppressions: list[dict], **rule_extra: Any) -> Any:
    rules = [
        {"id": "denied", "pattern": {"errorCode": [{"prefix": "AccessDenied"}]}, **rule_extra},
        {"id": "stacks", "severity": "high", "pattern": {"eventName": ["DescribeStacks"]}},
    ]
    return validate_config({"rules": rules, "suppressions": suppressions})


def sup(sid: str = "s", expires: str = "2027-03-31", **extra: Any) -> dict:
    pattern = extra.pop("pattern", {"userIdentity": {"arn": [{"wildcard": "*:assumed-role/scanner/*"}]}})
    return {"id": sid, "pattern": pattern, "reason": "r", "owner": "o", "expires": expires, **extra}


@pytest.mark.parametrize(
    ("suppressions", "rule_id", "now", "expected"),
    [
        pytest.param([sup()], "denied", NOW, "s", id="matches"),
        pytest.param([sup()], "denied", datetime(2027, 3, 31, tzinfo=UTC), None, id="expired-at-midnight"),
        pytest.param([sup(expires="2027-03-30T12:00:00Z")], "denied", NOW, None, id="expired-this-second"),
        pytest.param([sup(expires="2027-03-30T12:00:01Z")], "denied", NOW, "s", id="one-second-left"),
        pytest.param([sup(rules=["stacks"])], "denied", NOW, None, id="other-rule"),
        pytest.param([sup(rules=["stacks", "denied"])], "denied", NOW, "s", id="listed-rule"),
        pytest.param(
            [sup(pattern={"sourceIPAddress": [{"cidr": "10.0.0.0/8"}]})], "denied", NOW, None, id="no-match"
        ),
        pytest.param(
            [sup("old", expires="2020-01-01"), sup("new")], "denied", NOW, "new", id="first-active-in-order"
        ),
        pytest.param([sup("a"), sup("b")], "denied", NOW, "a", id="config-order"),
        pytest.param(
            [sup(pattern={"userIdentity": {"invokedBy": [{"exists": False}]}})],
            "denied",
            NOW,
            "s",
            id="exists-false",
        ),
    ],
)
def test_suppression_for(suppressions: list[dict], rule_id: str, now: datetime, expected: str | None) -> None:
    found = noise.suppression_for(RECORD, rule_id, config(suppressions).suppressions, now)
    assert (found.id if found else None) == expected


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("eventName", "DescribeStacks"),
        ("userIdentity.arn", "arn:aws:sts::1:assumed-role/scanner/s"),
        ("userIdentity.userName", ""),  # missing: groups as ""
        ("nope.deeper", ""),
        ("eventName.deeper", ""),  # a string has no fields
        ("requestParameters", ""),  # null
        ("readOnly", "true"),
        ("resources", '[{"ARN":"a"}]'),
        ("userIdentity.sessionContext", "{}"),
    ],
)
def test_field_value(path: str, value: str) -> None:
    assert noise.field_value(RECORD, path) == value


def test_group_values_are_capped_and_keys_fixed_length() -> None:
    values = noise.group_values({"a": "x" * 5000}, ["a", "b"])
    assert values == ("x" * 256, "")
    key = noise.group_key("dedup", "r", values)
    assert len(key) == 64 and key != noise.group_key("threshold", "r", values)
    assert noise.group_key("dedup", "r", ("a", "b")) != noise.group_key("dedup", "r", ("a,b",))


@pytest.mark.parametrize(
    ("event_time", "expected"),
    [
        ("2027-03-30T10:00:00Z", datetime(2027, 3, 30, 10, tzinfo=UTC)),
        ("2027-03-30T12:00:00+02:00", datetime(2027, 3, 30, 10, tzinfo=UTC)),
        ("2027-03-30T10:00:00", datetime(2027, 3, 30, 10, tzinfo=UTC)),
        ("yesterday", NOW),
        (None, NOW),
        (17, NOW),
    ],
)
def test_event_moment(event_time: Any, expected: datetime) -> None:
    assert noise.event_moment({"eventTime": event_time}, NOW) == expected


def test_plan_suppression_wins_over_dedup() -> None:
    cfg = config([sup()], dedup={"group_by": ["userIdentity.arn"], "window_minutes": 5})
    denied = cfg.rules[0]
    assert noise.plan(RECORD, denied, cfg.suppressions, NOW) == noise.Plan("denied", suppressed_by="s")
    later = noise.plan(RECORD, denied, cfg.suppressions, datetime(2027, 4, 1, tzinfo=UTC))
    assert later is not None and later.kind == "dedup" and later.suppressed_by is None
    assert later.group_map == {"userIdentity.arn": "arn:aws:sts::1:assumed-role/scanner/s"}


def test_plan_of_a_threshold_rule_carries_the_event_time() -> None:
    cfg = config([], threshold={"count": 3, "window_minutes": 0.5})
    plan = noise.plan({**RECORD, "eventTime": "2027-03-30T09:00:00Z"}, cfg.rules[0], (), NOW)
    assert plan is not None and plan.kind == "threshold" and plan.count == 3 and plan.group == ()
    assert plan.moment == datetime(2027, 3, 30, 9, tzinfo=UTC) and plan.window_minutes == 0.5


def test_no_plan_without_noise_control() -> None:
    cfg = config([])
    assert noise.plan(RECORD, cfg.rules[1], (), NOW) is None
    assert noise.plan("not a record", cfg.rules[0], cfg.suppressions, NOW) is None  # type: ignore[arg-type]


def test_summary_title() -> None:
    assert noise.summary_title(49, "Denied call", 60.0) == '49 more "Denied call" event(s) in the last 60 min'
    assert noise.summary_title(2, "x", 0.5).endswith("last 0.5 min")
