"""config, patterns, literals: each filter, record shapes, $or/exclude, validation messages, limits."""

from __future__ import annotations

import json
import sys

import pytest
from trailwatch_processor import config as R
from trailwatch_processor.config import ConfigError, severity_rank
from trailwatch_processor.config_load import MAX_CONFIG_BYTES, parse_config
from trailwatch_processor.config_schema import MAX_ERRORS, validate_config
from trailwatch_processor.literals import MAX_NEEDLES, Literals
from trailwatch_processor.patterns import compile_config


def match_one(pattern: dict, record: dict, exclude: list | None = None) -> bool:
    config = validate_config({"rules": [{"id": "r", "pattern": pattern, "exclude": exclude or []}]})
    return [r.id for r in compile_config(config).match(record)] == ["r"]


# (pattern, record, expected)
FILTER_CASES = [
    # exact values, type-strict
    ({"f": ["a"]}, {"f": "a"}, True),
    ({"f": ["a"]}, {"f": "A"}, False),
    ({"f": ["5"]}, {"f": 5}, False),
    ({"f": [5]}, {"f": "5"}, False),
    ({"f": [5]}, {"f": 5.0}, True),
    ({"f": [1]}, {"f": True}, False),
    ({"f": [True]}, {"f": 1}, False),
    ({"f": [True]}, {"f": True}, True),
    ({"f": [None]}, {"f": None}, True),
    ({"f": [None]}, {}, False),
    ({"f": [None]}, {"f": ""}, False),
    ({"f": [""]}, {"f": ""}, True),
    ({"f": [""]}, {"f": None}, False),
    # prefix / suffix: strings only
    ({"f": [{"prefix": "Acc"}]}, {"f": "AccessDenied"}, True),
    ({"f": [{"prefix": "Acc"}]}, {"f": "acc"}, False),
    ({"f": [{"prefix": "1"}]}, {"f": 12}, False),
    ({"f": [{"prefix": {"equals-ignore-case": "acc"}}]}, {"f": "ACCESS"}, True),
    ({"f": [{"suffix": ".png"}]}, {"f": "a.png"}, True),
    ({"f": [{"suffix": ".png"}]}, {"f": "a.PNG"}, False),
    ({"f": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"f": "a.PNG"}, True),
    ({"f": [{"equals-ignore-case": "yes"}]}, {"f": "YeS"}, True),
    ({"f": [{"equals-ignore-case": "yes"}]}, {"f": "yess"}, False),
    # wildcard
    ({"f": [{"wildcard": "a*c"}]}, {"f": "abbbc"}, True),
    ({"f": [{"wildcard": "a*c"}]}, {"f": "ac"}, True),
    ({"f": [{"wildcard": "a*c"}]}, {"f": "abcd"}, False),
    ({"f": [{"wildcard": "*/lib/*"}]}, {"f": "/usr/lib/x"}, True),
    ({"f": [{"wildcard": "a*b*a"}]}, {"f": "aba"}, True),
    ({"f": [{"wildcard": "a*b*a"}]}, {"f": "ab"}, False),
    ({"f": [{"wildcard": "*a*b*"}]}, {"f": "ab"}, True),
    ({"f": [{"wildcard": "*a*b*"}]}, {"f": "ba"}, False),
    ({"f": [{"wildcard": "x*ab*ab*y"}]}, {"f": "xababy"}, True),
    ({"f": [{"wildcard": "x*ab*ab*y"}]}, {"f": "xabay"}, False),
    ({"f": [{"wildcard": "a\\*b"}]}, {"f": "a*b"}, True),
    ({"f": [{"wildcard": "a\\*b"}]}, {"f": "axb"}, False),
    ({"f": [{"wildcard": "a\\\\*"}]}, {"f": "a\\zz"}, True),
    ({"f": [{"wildcard": "*"}]}, {"f": 3}, False),
    # anything-but
    ({"f": [{"anything-but": "x"}]}, {"f": "y"}, True),
    ({"f": [{"anything-but": "x"}]}, {"f": "x"}, False),
    ({"f": [{"anything-but": "x"}]}, {}, False),
    ({"f": [{"anything-but": "x"}]}, {"f": None}, True),
    ({"f": [{"anything-but": "x"}]}, {"f": 3}, True),
    ({"f": [{"anything-but": ["x", "y"]}]}, {"f": "y"}, False),
    ({"f": [{"anything-but": [1, 2]}]}, {"f": 2.0}, False),
    ({"f": [{"anything-but": [1, 2]}]}, {"f": 3}, True),
    ({"f": [{"anything-but": {"prefix": "us-"}}]}, {"f": "eu-west-1"}, True),
    ({"f": [{"anything-but": {"prefix": "us-"}}]}, {"f": "us-east-1"}, False),
    ({"f": [{"anything-but": {"suffix": ".png"}}]}, {"f": "a.png"}, False),
    ({"f": [{"anything-but": {"equals-ignore-case": ["yes", "y"]}}]}, {"f": "YES"}, False),
    ({"f": [{"anything-but": {"equals-ignore-case": ["yes", "y"]}}]}, {"f": "No"}, True),
    ({"f": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"f": "/usr/bin"}, True),
    ({"f": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"f": "/usr/lib/x"}, False),
    # exists
    ({"f": [{"exists": True}]}, {"f": None}, True),
    ({"f": [{"exists": True}]}, {}, False),
    ({"f": [{"exists": False}]}, {}, True),
    ({"f": [{"exists": False}]}, {"f": ""}, False),
    ({"f": [{"exists": True}]}, {"f": {"g": 1}}, False),  # only leaves exist
    ({"f": [{"exists": False}]}, {"f": {"g": 1}}, True),
    ({"f": [{"exists": True}]}, {"f": []}, False),
    ({"f": [{"exists": False}]}, {"f": []}, True),
    # numeric: JSON numbers only
    ({"f": [{"numeric": [">", 0, "<=", 5]}]}, {"f": 5}, True),
    ({"f": [{"numeric": [">", 0, "<=", 5]}]}, {"f": 0}, False),
    ({"f": [{"numeric": [">", 0, "<=", 5]}]}, {"f": "3"}, False),
    ({"f": [{"numeric": [">", 0]}]}, {"f": True}, False),
    ({"f": [{"numeric": ["=", 3]}]}, {"f": 3.0}, True),
    ({"f": [{"numeric": [">=", -1.5, "<", 0]}]}, {"f": -1.5}, True),
    # cidr
    ({"f": [{"cidr": "10.0.0.0/24"}]}, {"f": "10.0.0.255"}, True),
    ({"f": [{"cidr": "10.0.0.0/24"}]}, {"f": "10.0.1.0"}, False),
    ({"f": [{"cidr": "10.0.0.0/24"}]}, {"f": "AWS Internal"}, False),
    ({"f": [{"cidr": "10.0.0.0/24"}]}, {"f": "::ffff:10.0.0.1"}, False),
    ({"f": [{"cidr": "2001:db8::/32"}]}, {"f": "2001:db8::1"}, True),
    # host bits set: masked to the network, as EventBridge does
    ({"f": [{"cidr": "10.0.0.7/24"}]}, {"f": "10.0.0.200"}, True),
    ({"f": [{"cidr": "10.0.0.7/24"}]}, {"f": "10.0.1.7"}, False),
    ({"f": [{"cidr": "2001:db8::1/32"}]}, {"f": "2001:db8:ffff::2"}, True),
    # an empty anything-but equals-ignore-case/wildcard stays valid (EventBridge accepts them)
    ({"f": [{"anything-but": {"equals-ignore-case": ""}}]}, {"f": "a"}, True),
    # several filters in one leaf: any
    ({"f": ["a", {"prefix": "zz"}, 7]}, {"f": "zzz"}, True),
    ({"f": ["a", {"prefix": "zz"}, 7]}, {"f": 7}, True),
    ({"f": ["a", {"prefix": "zz"}, 7]}, {"f": "b"}, False),
]


@pytest.mark.parametrize(("pattern", "record", "expected"), FILTER_CASES)
def test_filters(pattern: dict, record: dict, expected: bool) -> None:
    assert match_one(pattern, record) is expected


SHAPE_CASES = [
    # arrays in the record: any element
    ({"f": ["b"]}, {"f": ["a", "b"]}, True),
    ({"f": ["c"]}, {"f": ["a", "b"]}, False),
    ({"f": ["b"]}, {"f": [["a", ["b"]]]}, True),
    ({"f": [{"anything-but": "a"}]}, {"f": ["a", "b"]}, True),
    ({"f": [{"anything-but": "a"}]}, {"f": ["a"]}, False),
    # nested objects
    ({"u": {"type": ["Root"]}}, {"u": {"type": "Root"}}, True),
    ({"u": {"type": ["Root"]}}, {"u": "Root"}, False),
    ({"u": {"type": ["Root"]}}, {}, False),
    ({"u": {"x": [{"exists": False}]}}, {}, True),
    ({"u": {"x": [{"exists": False}]}}, {"u": None}, True),
    # arrays of objects: one element must match the whole nested pattern
    ({"r": {"a": ["1"], "b": ["2"]}}, {"r": [{"a": "1", "b": "x"}, {"a": "y", "b": "2"}]}, False),
    ({"r": {"a": ["1"], "b": ["2"]}}, {"r": [{"a": "1", "b": "x"}, {"a": "1", "b": "2"}]}, True),
    ({"r": {"a": [{"exists": False}]}}, {"r": [{"a": "1"}, {"b": "2"}]}, True),
    ({"r": {"a": [{"exists": False}]}}, {"r": [{"a": "1"}]}, False),
    # $or: any branch, at the level where it appears
    ({"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"b": "2"}, True),
    ({"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"a": "2", "b": "1"}, False),
    ({"x": ["y"], "$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"x": "z", "a": "1"}, False),
    ({"u": {"$or": [{"a": ["1"]}, {"b": [{"prefix": "q"}]}]}}, {"u": {"b": "qq"}}, True),
    ({"$or": [{"a": ["1"]}, {"$or": [{"b": ["2"]}, {"c": ["3"]}]}]}, {"c": "3"}, True),
]


@pytest.mark.parametrize(("pattern", "record", "expected"), SHAPE_CASES)
def test_record_shapes_and_or(pattern: dict, record: dict, expected: bool) -> None:
    assert match_one(pattern, record) is expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"eventName": "ConsoleLogin", "type": "IAMUser"}, True),
        ({"eventName": "ConsoleLogin", "type": "AssumedRole"}, False),
        ({"eventName": "ConsoleLogin", "saml": "arn"}, False),
        ({"eventName": "Other"}, False),
    ],
)
def test_exclude(record: dict, expected: bool) -> None:
    exclude = [{"type": ["AssumedRole"]}, {"saml": [{"exists": True}]}]
    assert match_one({"eventName": ["ConsoleLogin"]}, record, exclude) is expected


def test_matches_in_config_order_through_the_event_name_index() -> None:
    config = validate_config(
        {
            "monitored_events": ["B"],
            "rules": [
                {"id": "any-error", "pattern": {"errorCode": [{"exists": True}]}},
                {"id": "a-or-b", "pattern": {"eventName": ["A", "B"]}},
                {"id": "b-prefix", "pattern": {"eventName": [{"prefix": "B"}]}},
            ],
        }
    )
    matcher = compile_config(config)
    ids = lambda rec: [r.id for r in matcher.match(rec)]  # noqa: E731
    assert ids({"eventName": "B", "errorCode": "X"}) == ["B", "any-error", "a-or-b", "b-prefix"]
    assert ids({"eventName": "A"}) == ["a-or-b"]
    assert ids({"eventName": "Bz"}) == ["b-prefix"]
    assert ids({"eventName": ["A", "Q"]}) == ["a-or-b"]  # not a string: every rule is evaluated
    assert ids({"errorCode": "X"}) == ["any-error"]
    assert matcher.match(["not", "a", "record"]) == []  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- validation

BAD_CONFIGS = [
    (
        {"rules": [{"id": "a", "pattern": {"eventName": [{"prefx": "x"}]}}]},
        "rules[0].pattern.eventName[0]: unknown filter 'prefx'",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": "x"}}]},
        "rules[0].pattern.f: expected an array of values or a nested pattern object, got a string",
    ),
    ({"rules": [{"id": "a", "pattern": {"f": []}}]}, "rules[0].pattern.f: empty array matches nothing"),
    ({"rules": [{"id": "a", "pattern": {}}]}, "rules[0].pattern: a pattern must name at least one field"),
    ({"rules": [{"id": "a", "pattern": []}]}, "rules[0].pattern: a pattern must be an object, got an array"),
    ({"rules": [{"id": "a"}]}, "rules[0]: missing 'pattern'"),
    ({"rules": [{"pattern": {"f": [1]}}]}, "rules[0]: missing 'id'"),
    ({"rules": [{"id": "", "pattern": {"f": [1]}}]}, "rules[0].id: must not be empty"),
    (
        {"rules": [{"id": "a b", "pattern": {"f": [1]}}]},
        "rules[0].id: invalid id 'a b': use letters, digits and ._:@/+=- (at most 128)",
    ),
    ({"rules": [{"id": 3, "pattern": {"f": [1]}}]}, "rules[0].id: expected a string, got a number"),
    (
        {"rules": [{"id": "a", "severity": "urgent", "pattern": {"f": [1]}}]},
        "rules[0].severity: unknown severity 'urgent'; expected one of info, low, medium, high, critical",
    ),
    (
        {"rules": [{"id": "a", "title": 5, "pattern": {"f": [1]}}]},
        "rules[0].title: expected a string, got a number",
    ),
    (
        {"rules": [{"id": "a", "description": [], "pattern": {"f": [1]}}]},
        "rules[0].description: expected a string, got an array",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [1]}, "exclude": {"f": [1]}}]},
        "rules[0].exclude: expected an array of patterns, got an object",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [1]}, "exclude": [{"g": [{"exists": "no"}]}]}]},
        "rules[0].exclude[0].g[0].exists: exists takes true or false, got a string",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [1]}, "colour": "red"}]},
        "rules[0].colour: unknown key (expected id, title, severity, description, pattern, filter_pattern, "
        "exclude, origin, tests, sigma)",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [[1]]}}]},
        "rules[0].pattern.f[0]: nested arrays are not allowed in a pattern",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"prefix": "a", "suffix": "b"}]}}]},
        "rules[0].pattern.f[0]: a filter object must have exactly one key, got 2",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"prefix": 1}]}}]},
        "rules[0].pattern.f[0].prefix: expected a string, got a number",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"numeric": [">", "1"]}]}}]},
        "rules[0].pattern.f[0].numeric[1]: expected a finite number, got a string",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"numeric": ["~", 1]}]}}]},
        "rules[0].pattern.f[0].numeric[0]: unknown numeric operator '~'; expected one of < <= = > >=",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"numeric": [">", 1, ">", 2]}]}}]},
        "rules[0].pattern.f[0].numeric: a numeric range needs one lower bound (> "
        "or >=) and one upper bound (< or <=)",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"numeric": [">"]}]}}]},
        "rules[0].pattern.f[0].numeric: numeric takes [op, number] or [op, number, "
        'op, number], e.g. [">", 0, "<=", 5]',
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"cidr": "10.0.0.1"}]}}]},
        "rules[0].pattern.f[0].cidr: expected CIDR notation (address/prefix-length), got '10.0.0.1'",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"cidr": "10.0.0.0/33"}]}}]},
        "rules[0].pattern.f[0].cidr: invalid CIDR: '10.0.0.0/33' does not "
        "appear to be an IPv4 or IPv6 network",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"wildcard": "a**b"}]}}]},
        "rules[0].pattern.f[0].wildcard: consecutive wildcard characters (**) are not allowed",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"wildcard": "a\\b"}]}}]},
        "rules[0].pattern.f[0].wildcard: invalid escape in wildcard: only \\* and \\\\ are allowed",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"anything-but": ["a", 1]}]}}]},
        "rules[0].pattern.f[0].anything-but: anything-but list mixes strings and numbers",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"anything-but": {"exists": True}}]}}]},
        "rules[0].pattern.f[0].anything-but: anything-but takes a string, a number, "
        "a non-empty list of strings or of numbers, "
        "or an object with one of prefix/suffix/equals-ignore-case/wildcard",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"$or": []}}]},
        "rules[0].pattern.$or: $or must be an array of at least two patterns",
    ),
    (  # EventBridge: "There must have at least 2 Objects in $or relationship"
        {"rules": [{"id": "a", "pattern": {"$or": [{"f": ["x"]}]}}]},
        "rules[0].pattern.$or: $or must be an array of at least two patterns",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"$or": [{"g": ["x"]}, {"f": [{"suffix": None}]}]}}]},
        "rules[0].pattern.$or[1].f[0].suffix: expected a string, got null",
    ),
    (  # EventBridge: "Null prefix/suffix not allowed" (such a rule would never match)
        {"rules": [{"id": "a", "pattern": {"f": [{"anything-but": {"prefix": ""}}]}}]},
        "rules[0].pattern.f[0].anything-but.prefix: must not be empty",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"f": [{"anything-but": {"suffix": ["x", ""]}}]}}]},
        "rules[0].pattern.f[0].anything-but.suffix[1]: must not be empty",
    ),
    (
        {"rules": [{"id": "a", "pattern": {"a b": "x"}}]},
        'rules[0].pattern["a b"]: expected an array of values or a nested pattern object, got a string',
    ),
    ({"monitored_events": ["A", 3]}, "monitored_events[1]: expected a string, got a number"),
    (
        {"monitored_events": "ConsoleLogin"},
        "monitored_events: expected an array of event names, got a string",
    ),
    ({"rules": {}}, "rules: expected an array of rules, got an object"),
    ({"rules": [7]}, "rules[0]: a rule must be an object, got a number"),
    (
        {"monitored_events": ["A"], "extra": 1},
        "extra: unknown top-level key (expected monitored_events or rules)",
    ),
    ({}, "(top level): no monitored_events or rules: nothing would be monitored"),
    ({"monitored_events": []}, "(top level): no monitored_events or rules: nothing would be monitored"),
    ("ConsoleLogin", "(top level): expected an object or an array of event names, got a string"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_CONFIGS)
def test_validation_faults_name_their_path(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert message in info.value.errors
    assert str(info.value) == "\n".join(info.value.errors)


def test_every_fault_is_collected() -> None:
    raw = {
        "monitored_events": ["A"],
        "rules": [
            {"id": "ok", "pattern": {"f": ["x"]}},
            {"id": "a", "pattern": {"f": [{"prefx": 1}], "g": []}, "severity": "bad"},
            {"id": "b", "pattern": {"f": [{"numeric": [">", "z"]}]}},
        ],
        "other": True,
    }
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert info.value.errors == [
        "other: unknown top-level key (expected monitored_events or rules)",
        "rules[1].severity: unknown severity 'bad'; expected one of info, low, medium, high, critical",
        "rules[1].pattern.f[0]: unknown filter 'prefx'",
        "rules[1].pattern.g: empty array matches nothing",
        "rules[2].pattern.f[0].numeric[1]: expected a finite number, got a string",
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"monitored_events": ["A", "B", "A"]},
            "monitored_events[2]: duplicate rule id 'A' (also monitored_events[0])",
        ),
        (
            {"monitored_events": ["CreateUser"], "rules": [{"id": "CreateUser", "pattern": {"f": [1]}}]},
            "rules[0].id: duplicate rule id 'CreateUser' (also monitored_events[0])",
        ),
        (
            {"rules": [{"id": "x", "pattern": {"f": [1]}}, {"id": "x", "pattern": {"f": [2]}}]},
            "rules[1].id: duplicate rule id 'x' (also rules[0].id)",
        ),
    ],
)
def test_duplicate_ids_rejected(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert info.value.errors == [message]


def test_bare_list_is_monitored_events() -> None:
    bare = validate_config(["ConsoleLogin", "CreateUser"])
    full = validate_config({"monitored_events": ["ConsoleLogin", "CreateUser"]})
    assert bare.rules == full.rules
    assert bare.raw == full.raw == {"monitored_events": ["ConsoleLogin", "CreateUser"], "rules": []}
    rule = bare.rules[0]
    assert (rule.id, rule.severity, rule.pattern, rule.exclude) == (
        "ConsoleLogin",
        "medium",
        {"eventName": ["ConsoleLogin"]},
        (),
    )
    assert [r.id for r in compile_config(bare).match({"eventName": "CreateUser"})] == ["CreateUser"]


def test_rule_defaults_and_normalised_raw() -> None:
    config = validate_config({"rules": [{"id": "r", "pattern": {"f": ["x"]}}]}, source="s3://b/k")
    assert config.source == "s3://b/k"
    (rule,) = config.rules
    assert (rule.title, rule.severity, rule.description, rule.exclude) == ("r", "medium", "", ())
    assert validate_config(json.loads(json.dumps(config.raw))).rules == config.rules
    assert hash(rule) == hash(R.Rule("r", "r", "medium", "", {"other": [1]}))  # usable as a dict key


# Python 3.13 (the Lambda's default runtime) names the fault; 3.11 and 3.12 say what they expected.
TRAILING_COMMA = (
    "cfg: invalid JSON at line 2, column 27: Illegal trailing comma before end of array"
    if sys.version_info >= (3, 13)
    else "cfg: invalid JSON at line 2, column 28: Expecting value"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"rules": [}', "cfg: invalid JSON at line 1, column 12: Expecting value"),
        ('{\n  "monitored_events": ["A",]\n}', TRAILING_COMMA),
        ("", "cfg: invalid JSON at line 1, column 1: Expecting value"),
        ('{"rules": [{"id": "a", "pattern": {"f": [NaN]}}]}', "cfg: invalid JSON: NaN is not valid JSON"),
        (
            '{"monitored_events": ["A"], "monitored_events": ["B"]}',
            "cfg: duplicate object key(s) 'monitored_events': JSON would silently keep only the last",
        ),
        (b"\xff\xfe[]", "cfg: not UTF-8 text (byte 0)"),
        ("[" * 100_000 + "]" * 100_000, "cfg: JSON nested too deeply"),
    ],
)
def test_parse_errors(text: str | bytes, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="cfg")
    assert info.value.errors == [message]


def test_parse_accepts_bytes_with_bom() -> None:
    config = parse_config('\ufeff["ConsoleLogin"]'.encode(), source="cfg")
    assert [r.id for r in config.rules] == ["ConsoleLogin"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"rules": [{"id": "deep", "pattern": _nest}]},
            "pattern nested deeper than 10 levels",
        )
        for _nest in [{"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": ["x"]}}}}}}}}}}}]
    ]
    + [
        (
            {"rules": [{"id": f"r{i}", "pattern": {"f": list(range(1000))}} for i in range(60)]},
            "config too large (more than 50000 pattern keys and values)",
        ),
        ({"monitored_events": [f"E{i}" for i in range(1001)]}, "more than 1000 rules"),
        ({"rules": [{"id": "a", "pattern": {"f": ["x" * 5000]}}]}, "string longer than 4096 characters"),
    ],
)
def test_limits(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert any(e.endswith(message) for e in info.value.errors), info.value.errors


def test_error_count_is_capped() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"monitored_events": [1] * 500})
    assert len(info.value.errors) == MAX_ERRORS + 1
    assert info.value.errors[-1].endswith("stopped")


def test_config_size_limit() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(b" " * (MAX_CONFIG_BYTES + 1), source="cfg")
    assert info.value.errors == [f"cfg: config larger than {MAX_CONFIG_BYTES} bytes"]


def test_severity_rank() -> None:
    assert [severity_rank(s) for s in R.SEVERITIES] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="unknown severity 'nope'"):
        severity_rank("nope")


# ---------------------------------------------------------------------------------------------- literals


def _literals(*patterns: dict) -> Literals | None:
    rules = [{"id": f"r{i}", "pattern": pattern} for i, pattern in enumerate(patterns)]
    return compile_config(validate_config({"rules": rules})).literals


@pytest.mark.parametrize(
    ("pattern", "names", "needles"),
    [
        ({"eventName": ["A", "B"], "f": ["zzzzzzzz"]}, {"A", "B"}, ()),  # exact eventNames cover the rule
        ({"eventName": ['q"']}, {'q\\"'}, ()),  # names in their raw spelling
        ({"eventName": [{"prefix": "Del"}]}, set(), ()),  # a name prefix covers it (event_name_prefixes)
        ({"eventName": [{"suffix": "Del"}]}, set(), ('Del"',)),
        ({"f": [{"prefix": "Acc"}, {"suffix": "Op"}]}, set(), ('"Acc', 'Op"')),
        ({"f": [{"wildcard": "ab*cdef*g"}]}, set(), ("cdef",)),
        ({"f": [{"wildcard": "a\\*b"}]}, set(), ('"a*b"',)),
        ({"f": ['say "hi"\\\n']}, set(), ('"say \\"hi\\"\\\\\\n"',)),
        ({"f": ["é"]}, set(), ('"é"',)),
        ({"u": {"type": ["Root"]}, "n": [5]}, set(), ('"Root"',)),
        ({"$or": [{"a": ["x"]}, {"b": [{"prefix": "y"}]}]}, set(), ('"x"', '"y')),
        ({"$or": [{"eventName": ["A"]}, {"eventName": ["B"]}]}, set(), ('"A"', '"B"')),
    ],
)
def test_literals(pattern: dict, names: set, needles: tuple) -> None:
    literals = _literals(pattern)
    assert literals is not None
    assert (set(literals.event_names), literals.needles) == (names, needles)


def test_event_name_prefixes_cover_a_rule_beside_exact_names() -> None:
    literals = _literals({"eventName": ["Get", {"prefix": "Update20"}], "eventSource": ["zzzzzzzzz"]})
    assert literals is not None
    assert (set(literals.event_names), literals.event_name_prefixes, literals.needles) == (
        {"Get"},
        ("Update20",),
        (),
    )


@pytest.mark.parametrize(
    "pattern",
    [
        {"f": [5]},
        {"f": ["a", {"equals-ignore-case": "b"}]},
        {"f": [{"anything-but": "a"}]},
        {"f": [{"exists": True}]},
        {"$or": [{"a": ["x"]}, {"b": [{"cidr": "10.0.0.0/8"}]}]},
    ],
)
def test_a_rule_without_literals_turns_the_skip_off(pattern: dict) -> None:
    assert _literals(pattern) is None
    assert _literals({"eventName": ["A"]}, pattern) is None


def test_too_many_needles_turn_the_skip_off() -> None:
    few = [{"f": [f"value-{i}"]} for i in range(MAX_NEEDLES)]
    assert len(_literals(*few).needles) == MAX_NEEDLES
    assert _literals(*few, {"f": ["one-more"]}) is None


@pytest.mark.parametrize(
    "record",
    [
        {"f": 'say "hi"\\\n'},
        {"x": [{"f": 'say "hi"\\\n'}]},
        {"f": ["é", 'say "hi"\\\n']},
    ],
)
def test_needle_found_in_compact_raw_text_with_escapes(record: dict) -> None:
    pattern = {"x": {"f": ['say "hi"\\\n']}} if "x" in record else {"f": ['say "hi"\\\n']}
    matcher = compile_config(validate_config({"rules": [{"id": "r", "pattern": pattern}]}))
    raw = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    assert matcher.match(record)
    assert any(n in raw for n in matcher.literals.needles)


def test_deeply_nested_record_arrays_do_not_recurse() -> None:
    deep: list = []
    node = deep
    for _ in range(50_000):
        child: list = []
        node.append(child)
        node = child
    node.append("needle")
    assert match_one({"f": ["needle"]}, {"f": deep})
    assert not match_one({"f": {"g": ["needle"]}}, {"f": deep})
