"""SNS filter policies on the local AWS follow the SNS documentation, not moto 5.2.1's matcher.

The cases marked "moto differs" fail with moto's own `FilterPolicyMatcher.matches` (checked by running this
module against it: see `test_moto_differs_where_we_say_it_does`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from trailwatch.local import moto_patches
from trailwatch.local.sns_filter import policy_matches

from tests.unit.template_helpers import load_template, props, resolve

ALARM_BODY = json.dumps({"AlarmName": "tw-dead-letter-queue-not-empty", "NewStateValue": "ALARM"})


def attrs(**values: Any) -> dict[str, dict[str, str]]:
    """Attributes as moto keeps them: {name: {"Type", "Value"}} (numbers as Number, lists as arrays)."""
    out = {}
    for name, value in values.items():
        if isinstance(value, list):
            out[name] = {"Type": "String.Array", "Value": json.dumps(value)}
        elif isinstance(value, (int, float)):
            out[name] = {"Type": "Number", "Value": str(value)}
        else:
            out[name] = {"Type": "String", "Value": value}
    return out


# Policies on the message attributes, each applied to a message whose body is "x":
# (id, policy, attributes, delivered, moto differs)
ATTRIBUTE_CASES: list[tuple[str, dict, dict | None, bool, bool]] = [
    ("no policy", {}, None, True, False),
    ("exists false, no attributes", {"a": [{"exists": False}]}, None, False, True),
    ("exists false, empty attributes", {"a": [{"exists": False}]}, {}, False, True),
    ("exists false, other attribute", {"a": [{"exists": False}]}, attrs(b="1"), True, False),
    ("exists false, attribute present", {"a": [{"exists": False}]}, attrs(a="1"), False, False),
    ("exists true", {"a": [{"exists": True}]}, attrs(a="1"), True, False),
    ("exists true, absent", {"a": [{"exists": True}]}, attrs(b="1"), False, False),
    ("exact", {"a": ["x", "y"]}, attrs(a="y"), True, False),
    ("exact miss", {"a": ["x"]}, attrs(a="z"), False, False),
    ("AND of keys", {"a": ["x"], "b": ["y"]}, attrs(a="x"), False, False),
    (
        "$or first branch",
        {"$or": [{"a": ["x"]}, {"b": [{"exists": False}]}]},
        attrs(a="x", b="1"),
        True,
        False,
    ),
    ("$or second branch", {"$or": [{"a": ["x"]}, {"b": ["y"]}]}, attrs(b="y"), True, False),
    ("$or no branch", {"$or": [{"a": ["x"]}, {"b": ["y"]}]}, attrs(a="q"), False, False),
    ("$or no attributes", {"$or": [{"a": [{"exists": False}]}]}, None, False, False),
    ("$or AND sibling", {"c": ["z"], "$or": [{"a": ["x"]}, {"b": ["y"]}]}, attrs(a="x", c="w"), False, False),
    ("anything-but value", {"a": [{"anything-but": ["x"]}]}, attrs(a="y"), True, False),
    ("anything-but denied", {"a": [{"anything-but": "x"}]}, attrs(a="x"), False, False),
    ("anything-but absent", {"a": [{"anything-but": ["x"]}]}, attrs(b="y"), False, False),
    ("anything-but prefix", {"a": [{"anything-but": {"prefix": "x"}}]}, attrs(a="xy"), False, False),
    ("anything-but suffix", {"a": [{"anything-but": {"suffix": "x"}}]}, attrs(a="ab"), True, True),
    ("prefix", {"a": [{"prefix": "tw-"}]}, attrs(a="tw-1"), True, False),
    ("prefix miss", {"a": [{"prefix": "tw-"}]}, attrs(a="t"), False, False),
    ("prefix ignoring case", {"a": [{"prefix": {"equals-ignore-case": "TW-"}}]}, attrs(a="tw-1"), True, True),
    ("equals-ignore-case", {"a": [{"equals-ignore-case": "HIGH"}]}, attrs(a="High"), True, True),
    ("numeric range", {"p": [{"numeric": [">", 0, "<=", 5]}]}, attrs(p=5), True, False),
    ("numeric out of range", {"p": [{"numeric": [">", 0, "<=", 5]}]}, attrs(p=6), False, False),
    ("numeric on a string", {"p": [{"numeric": [">", 0]}]}, attrs(p="7"), False, False),
    ("number equality", {"p": [5]}, attrs(p=5.0), True, False),
    ("string array any element", {"a": ["y"]}, attrs(a=["x", "y"]), True, False),
    ("cidr", {"ip": [{"cidr": "10.0.0.0/24"}]}, attrs(ip="10.0.0.7"), True, True),
]
# Policies on the message body (FilterPolicyScope MessageBody), each on a message without attributes:
# (id, policy, body, delivered, moto differs)
BODY_CASES: list[tuple[str, dict, str, bool, bool]] = [
    ("body exact", {"rule": ["r1"]}, '{"rule": "r1"}', True, False),
    ("body nested", {"d": {"k": ["v"]}}, '{"d": {"k": "v"}}', True, False),
    ("body array", {"d": {"k": ["v"]}}, '{"d": [{"k": "u"}, {"k": "v"}]}', True, False),
    ("body exists false", {"k": [{"exists": False}]}, '{"j": 1}', True, False),
    ("body nested absent", {"d": {"k": [{"exists": False}]}}, '{"j": 1}', True, True),
    ("body not json", {"k": ["v"]}, "plain", False, False),
    ("body not an object", {"k": ["v"]}, '["v"]', False, False),
    ("body $or", {"$or": [{"k": ["v"]}, {"n": [{"numeric": [">=", 3]}]}]}, '{"n": 4}', True, True),
]
# (id, policy, scope, attributes, body, delivered, moto differs)
CASES: list[tuple[str, dict, str | None, dict | None, str, bool, bool]] = [
    *((case, policy, None, attributes, "x", *rest) for case, policy, attributes, *rest in ATTRIBUTE_CASES),
    *((case, policy, "MessageBody", None, body, *rest) for case, policy, body, *rest in BODY_CASES),
    ("body scope ignores attributes", {"k": ["v"]}, "MessageBody", attrs(k="v"), "{}", False, False),
]


@pytest.mark.parametrize(
    ("policy", "scope", "attributes", "body", "delivered"),
    [pytest.param(*case[1:6], id=case[0]) for case in CASES],
)
def test_policy_matches_as_sns_documents(
    policy: dict, scope: str | None, attributes: dict | None, body: str, delivered: bool
) -> None:
    assert policy_matches(policy, scope, attributes, body) is delivered


@pytest.mark.parametrize(
    ("policy", "scope", "attributes", "body", "delivered"),
    [pytest.param(*case[1:6], id=case[0]) for case in CASES if case[6]],
)
def test_moto_differs_where_we_say_it_does(
    policy: dict, scope: str | None, attributes: dict | None, body: str, delivered: bool
) -> None:
    """moto's matcher gets these wrong (or raises): the reason the local AWS replaces it."""
    from moto.sns.utils import FilterPolicyMatcher

    original = moto_patches.original("moto.sns.utils:FilterPolicyMatcher.matches")
    try:
        answer = original(FilterPolicyMatcher(policy, scope), attributes, body)
    except Exception:  # moto raising is a difference too: SNS answers every message
        return
    assert answer is not delivered


def email_policy(severity: str = "medium") -> tuple[dict[str, Any], str]:
    template = load_template()
    subscription = props(template, "AlertEmailSubscription")
    policy = resolve(template, subscription["FilterPolicy"], {"EmailMinimumSeverity": severity})
    return policy, subscription.get("FilterPolicyScope", "MessageAttributes")


@pytest.mark.parametrize("severity", ["info", "medium", "critical"])
def test_alarm_notification_does_not_match_the_email_filter_policy(severity: str) -> None:
    """A CloudWatch alarm publishes with no message attributes: the email subscription of main.yaml's alert
    topic (its `account: exists false` branch) does not get it on AWS, so it must not get it locally."""
    policy, scope = email_policy(severity)
    assert policy_matches(policy, scope, None, ALARM_BODY) is False


def test_detections_still_pass_the_email_filter_policy() -> None:
    policy, scope = email_policy("high")
    alert = attrs(severity="critical", rule="cis-4.3", eventName="ConsoleLogin", account="123456789012")
    assert policy_matches(policy, scope, alert, "{}") is True
    assert policy_matches(policy, scope, {**alert, **attrs(severity="low")}, "{}") is False


def test_install_replaces_moto_matcher_once() -> None:
    from moto.sns.utils import FilterPolicyMatcher

    moto_patches.install()
    first = FilterPolicyMatcher.__dict__["matches"]
    moto_patches.install()
    assert FilterPolicyMatcher.__dict__["matches"] is first
    matcher = FilterPolicyMatcher({"a": [{"exists": False}]}, None)
    assert matcher.matches(None, "x") is False
    assert matcher.matches(attrs(b="1"), "x") is True
