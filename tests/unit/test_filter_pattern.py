"""CloudWatch Logs JSON filter patterns: translation into EventBridge patterns, refusals, and the CIS 4.x
patterns as AWS prints them matching the same shared real records as the shipped CIS rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trailwatch_processor.config import ConfigError
from trailwatch_processor.config_load import load_default_config
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.filter_pattern import FilterPatternError, translate
from trailwatch_processor.patterns import compile_config

CIS_DATA = Path(__file__).resolve().parents[1] / "data" / "cis_filter_patterns.json"


def matches(filter_pattern: str, record: dict) -> bool:
    config = validate_config({"rules": [{"id": "r", "filter_pattern": filter_pattern}]})
    return bool(compile_config(config).match(record))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{ $.eventName = "ConsoleLogin" }', {"eventName": ["ConsoleLogin"]}),
        ("{$.eventName=ConsoleLogin}", {"eventName": ["ConsoleLogin"]}),
        ('{ $.a.b.c = "x" }', {"a": {"b": {"c": ["x"]}}}),
        ('{ $.errorCode = "AccessDenied*" }', {"errorCode": [{"prefix": "AccessDenied"}]}),
        ('{ $.errorCode = "*Operation" }', {"errorCode": [{"suffix": "Operation"}]}),
        ('{ $.ip = "10.*.1" }', {"ip": [{"wildcard": "10.*.1"}]}),
        ('{ $.ip = "*10*" }', {"ip": [{"wildcard": "*10*"}]}),
        ("{ $.ip != 123.123.* }", {"ip": [{"anything-but": {"prefix": "123.123."}}]}),
        ('{ $.eventType != "AwsServiceEvent" }', {"eventType": [{"anything-but": "AwsServiceEvent"}]}),
        ("{ $.latency > 1000 }", {"latency": [{"numeric": [">", 1000]}]}),
        ("{ $.latency <= 2.5 }", {"latency": [{"numeric": ["<=", 2.5]}]}),
        ("{ $.code = 200 }", {"code": [200]}),
        ("{ $.code != 200 }", {"code": [{"anything-but": 200}]}),
        ("{ $.latency = * }", {"latency": [{"exists": True}]}),
        ("{ $.x IS NULL }", {"x": [None]}),
        ("{ $.x NOT EXISTS }", {"x": [{"exists": False}]}),
        ("{ $.x IS TRUE }", {"x": [True]}),
        ("{ $.x IS FALSE }", {"x": [False]}),
        (
            "{ ($.a = 1) && ($.b = x) }",
            {"a": [1], "b": ["x"]},
        ),
        ("{ ($.e = A) || ($.e = B) || ($.e = A) }", {"e": ["A", "B"]}),
        ("{ ($.a = 1) || ($.b = 2) }", {"$or": [{"a": [1]}, {"b": [2]}]}),
        (
            "{ ($.s = kms) && (($.e = A) || ($.e = B)) }",
            {"s": ["kms"], "e": ["A", "B"]},
        ),
        ("{ ($.n > 1) && ($.n <= 5) }", {"n": [{"numeric": [">", 1, "<=", 5]}]}),
        ("{ ($.x != a) && ($.x != b) }", {"x": [{"anything-but": ["a", "b"]}]}),
        (
            "{ (($.a = 1) || ($.a = 2)) && (($.b = 3) || ($.c = 4)) }",
            {"$or": [{"a": [1, 2], "b": [3]}, {"a": [1, 2], "c": [4]}]},
        ),
    ],
)
def test_translate(text: str, expected: dict) -> None:
    assert translate(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ERROR", "only JSON filter patterns"),
        ("{ $.a[0] = 1 }", "array indexing"),
        ("{ $.a = 1 && $.b = 2 || $.c = 3 }", "mixed without parentheses"),
        ("{ $.a > abc }", "compares numbers only"),
        ("{ $.a = %ab+% }", "regular expressions"),
        ("{ $.a = a**b }", "consecutive wildcards"),
        ("{ $.a != * }", "NOT EXISTS"),
        ('{ $.a = "x\\"y" }', "backslash"),
        ("{ ($.a = 1) && ($.a = 2) }", "on one field"),
        ("{ ($.a = 1) && ($.a.b = 2) }", "both a value and an object"),
        ("{ $.a = 1 ", "only JSON filter patterns"),
        ("{ ($.a = 1 }", "expected ')'"),
        ("{ $.a IS MAYBE }", "unknown operator"),
        ("{ $.a = 1 ) }", "unexpected"),
        ("{ " + "(" * 9 + "$.a = 1" + ")" * 9 + " }", "nested deeper"),
        ("{ " + " || ".join(f"(($.a = {i}) && ($.b = {i}))" for i in range(70)) + " }", "longer than"),
        ("{ " + " && ".join(f"(($.a{i} = 1) || ($.b{i} = 2))" for i in range(7)) + " }", "alternatives"),
    ],
)
def test_refused_with_reason(text: str, reason: str) -> None:
    with pytest.raises(FilterPatternError) as info:
        translate(text)
    assert reason in str(info.value)


def test_deep_parentheses_do_not_recurse_unbounded() -> None:
    with pytest.raises(FilterPatternError, match="nested deeper"):
        translate("{ " + "(" * 500 + "$.a = 1" + ")" * 500 + " }")


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"x": "y"}, False),
        ({"x": "z"}, True),
        ({"x": None}, True),  # a present null is "not y"
        ({}, False),  # CloudWatch returns only events that contain the field; see filter_pattern's docstring
    ],
)
def test_not_equal_on_missing_field_does_not_match(record: dict, expected: bool) -> None:
    assert matches('{ $.x != "y" }', record) is expected


def test_not_equal_or_not_exists_catches_the_missing_field() -> None:
    assert matches('{ ($.x != "y") || ($.x NOT EXISTS) }', {})
    assert not matches('{ ($.x != "y") || ($.x NOT EXISTS) }', {"x": "y"})


@pytest.mark.parametrize(
    ("record", "expected"),
    [({"x": None}, True), ({}, False), ({"x": "null"}, False), ({"x": 0}, False)],
)
def test_is_null_is_json_null_only(record: dict, expected: bool) -> None:
    assert matches("{ $.x IS NULL }", record) is expected


def test_config_accepts_filter_pattern_and_records_origin() -> None:
    config = validate_config({"rules": [{"id": "r", "filter_pattern": "{ $.eventName = X }"}]})
    (rule,) = config.rules
    assert rule.pattern == {"eventName": ["X"]}
    assert rule.origin == "filter_pattern"
    assert rule.filter_pattern == "{ $.eventName = X }"


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ({"id": "r"}, "rules[0]: missing 'pattern'"),
        (
            {"id": "r", "pattern": {"a": ["b"]}, "filter_pattern": "{ $.a = b }"},
            "rules[0]: give only one of 'pattern'",
        ),
        (
            {"id": "r", "filter_pattern": "{ $.a[1] = b }"},
            "rules[0].filter_pattern: position 5: array indexing",
        ),
        ({"id": "r", "filter_pattern": ""}, "rules[0].filter_pattern: must not be empty"),
        ({"id": "r", "filter_pattern": 5}, "rules[0].filter_pattern: expected a string"),
    ],
)
def test_config_filter_pattern_errors_name_the_path(rule: dict, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"rules": [rule]})
    assert any(e.startswith(error) for e in info.value.errors), info.value.errors


# --------------------------------------------------------------------- CIS 4.x as AWS prints them

CIS = json.loads(CIS_DATA.read_text())["controls"]


def _login(record: dict) -> tuple:
    additional = record.get("additionalEventData")
    additional = additional if isinstance(additional, dict) else {}
    response = record.get("responseElements")
    response = response if isinstance(response, dict) else {}
    identity = record.get("userIdentity") or {}
    return additional, response, identity


def _only_shipped_4_2(record: dict) -> bool:
    """The shipped rule also flags root sign-ins without MFA (CIS 4.2's own intent; the printed pattern names
    IAMUser only) and a sign-in with no MFAUsed at all (CloudWatch's != never matches a missing field)."""
    additional, _, identity = _login(record)
    return identity.get("type") == "Root" or "MFAUsed" not in additional


def _only_filter_4_2(record: dict) -> bool:
    """The shipped rule leaves out SAML-federated sign-ins: their MFA happens at the identity provider."""
    additional, _, _ = _login(record)
    return "SamlProviderArn" in additional


def _only_shipped_none(record: dict) -> bool:
    return False


def _only_filter_4_1(record: dict) -> bool:
    """The shipped rule excludes the log delivery service and HeadBucket denials, as CIS does since v1.5."""
    return (
        record.get("sourceIPAddress") == "delivery.logs.amazonaws.com"
        or record.get("eventName") == "HeadBucket"
    )


def _only_filter_4_4(record: dict) -> bool:
    """The shipped rule also requires eventSource iam.amazonaws.com (Organizations has CreatePolicy too)."""
    return record.get("eventSource") != "iam.amazonaws.com"


# rule -> (explains a record only the shipped rule matches, explains one only the filter pattern matches)
INTENTIONAL = {
    "cis-4.1-unauthorized-api-calls": (_only_shipped_none, _only_filter_4_1),
    "cis-4.2-console-signin-without-mfa": (_only_shipped_4_2, _only_filter_4_2),
    "cis-4.4-iam-policy-changes": (_only_shipped_none, _only_filter_4_4),
}


@pytest.fixture(scope="module")
def cis_matchers() -> tuple:
    shipped = compile_config(load_default_config())
    pasted = compile_config(
        validate_config({"rules": [{"id": c["rule"], "filter_pattern": c["filter_pattern"]} for c in CIS]})
    )
    return shipped, pasted


def test_every_cis_control_has_a_pasted_pattern() -> None:
    assert [c["cis"] for c in CIS] == [f"4.{i}" for i in range(1, 16)]
    shipped_ids = {r.id for r in load_default_config().rules}
    assert all(c["rule"] in shipped_ids for c in CIS)


@pytest.mark.parametrize("control", CIS, ids=[c["cis"] for c in CIS])
def test_cis_filter_pattern_matches_what_the_shipped_rule_matches(
    control: dict, cis_matchers: tuple, shared_records: list[dict]
) -> None:
    shipped, pasted = cis_matchers
    rule = control["rule"]
    only_shipped_ok, only_filter_ok = INTENTIONAL.get(rule, (_only_shipped_none, _only_shipped_none))
    hits = 0
    for index, record in enumerate(shared_records):
        by_shipped = any(r.id == rule for r in shipped.match(record))
        by_filter = any(r.id == rule for r in pasted.match(record))
        hits += by_filter
        if by_shipped and not by_filter:
            assert only_shipped_ok(record), f"record {index} matched only by the shipped {rule}"
        elif by_filter and not by_shipped:
            assert only_filter_ok(record), f"record {index} matched only by the pasted filter of {rule}"
    assert hits > 0, f"no shared record exercises {rule}"
