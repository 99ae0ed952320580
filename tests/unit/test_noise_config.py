"""Noise control in the config: suppressions, dedup and threshold validated with paths, parsed, diffed."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from trailwatch_processor import config_diff as D
from trailwatch_processor.config import ConfigError
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.noise_config import Dedup, Threshold, parse_expiry

RULE = {"id": "denied", "severity": "low", "pattern": {"errorCode": [{"prefix": "AccessDenied"}]}}
SUPPRESSION = {
    "id": "scanner-denied",
    "pattern": {"userIdentity": {"arn": [{"suffix": ":assumed-role/scanner/x"}]}},
    "reason": "the scanner role is always denied",
    "owner": "secops",
    "expires": "2027-03-31",
}


def config(*, rule: dict | None = None, suppressions: Any = None, **rule_extra: Any) -> dict:
    raw: dict[str, Any] = {"rules": [{**(rule or RULE), **rule_extra}]}
    if suppressions is not None:
        raw["suppressions"] = suppressions
    return raw


def sup(**changes: Any) -> dict:
    out = {**copy.deepcopy(SUPPRESSION), **changes}
    return {k: v for k, v in out.items() if v is not None}


def test_a_full_noise_config_parses() -> None:
    cfg = validate_config(
        {
            "monitored_events": ["ConsoleLogin"],
            "rules": [
                {**RULE, "dedup": {"group_by": ["userIdentity.arn", "eventName"], "window_minutes": 60}},
                {
                    "id": "failed-logins",
                    "pattern": {"eventName": ["ConsoleLogin"]},
                    "threshold": {"count": 5, "window_minutes": 0.5, "group_by": ["sourceIPAddress"]},
                },
            ],
            "suppressions": [sup(), sup(id="timed", expires="2027-03-31T12:30:00Z", rules=["denied"])],
        }
    )
    denied, failed = cfg.rules[1], cfg.rules[2]
    assert denied.dedup == Dedup(("userIdentity.arn", "eventName"), 60.0) and denied.threshold is None
    assert failed.threshold == Threshold(5, 0.5, ("sourceIPAddress",)) and failed.dedup is None
    assert cfg.rules[0].dedup is None and cfg.rules[0].threshold is None
    first, timed = cfg.suppressions
    assert first.expires_at == datetime(2027, 3, 31, tzinfo=UTC) and first.rules is None
    assert timed.expires_at == datetime(2027, 3, 31, 12, 30, tzinfo=UTC) and timed.rules == ("denied",)
    assert cfg.raw["suppressions"][1]["rules"] == ["denied"]
    assert cfg.raw["rules"][0]["dedup"] == {
        "group_by": ["userIdentity.arn", "eventName"],
        "window_minutes": 60.0,
    }
    # The normal form validates again to the same config (the CLI uploads it).
    assert validate_config(cfg.raw).suppressions == cfg.suppressions


def test_threshold_without_group_by_is_one_group() -> None:
    cfg = validate_config(config(threshold={"count": 2, "window_minutes": 1}))
    assert cfg.rules[0].threshold == Threshold(2, 1.0, ())


BAD = [
    (config(suppressions={}), "suppressions: expected an array of suppressions, got an object"),
    (config(suppressions=[7]), "suppressions[0]: a suppression must be an object, got a number"),
    (config(suppressions=[sup(expires="31/03/2027")]), "suppressions[0].expires: not a date: '31/03/2027'"),
    (config(suppressions=[sup(), sup(id="b", expires="2027-02-30")]), "suppressions[1].expires: not a date"),
    (config(suppressions=[sup(expires="2027-03-31T12:00:00")]), "suppressions[0].expires: not a date"),
    (
        config(suppressions=[sup(expires=20270331)]),
        "suppressions[0].expires: expected a string, got a number",
    ),
    (config(suppressions=[sup(reason=None)]), "suppressions[0]: missing 'reason'"),
    (config(suppressions=[sup(owner="")]), "suppressions[0].owner: must not be empty"),
    (config(suppressions=[sup(expires=None)]), "suppressions[0]: missing 'expires'"),
    (
        config(suppressions=[sup(pattern={"eventName": "x"})]),
        "suppressions[0].pattern.eventName: expected an",
    ),
    (
        config(suppressions=[sup(pattern={"a": [{"prefx": "x"}]})]),
        "suppressions[0].pattern.a[0]: unknown filter",
    ),
    (config(suppressions=[sup(rules=["denied", "nope"])]), "suppressions[0].rules[1]: unknown rule 'nope'"),
    (config(suppressions=[sup(rules=[])]), "suppressions[0].rules: expected a non-empty array of rule ids"),
    (config(suppressions=[sup(colour=1)]), "suppressions[0].colour: unknown key"),
    (config(suppressions=[sup(id="bad id")]), "suppressions[0].id: invalid id 'bad id'"),
    (config(suppressions=[sup(), sup()]), "suppressions[1].id: duplicate suppression id 'scanner-denied'"),
    (config(dedup={"window_minutes": 5}), "rules[0].dedup: missing 'group_by'"),
    (
        config(dedup={"group_by": [], "window_minutes": 5}),
        "rules[0].dedup.group_by: expected a non-empty array",
    ),
    (
        config(dedup={"group_by": ["a..b"], "window_minutes": 5}),
        "rules[0].dedup.group_by[0]: invalid field path",
    ),
    (
        config(dedup={"group_by": ["a", "a"], "window_minutes": 5}),
        "rules[0].dedup.group_by: a field is named twice",
    ),
    (config(dedup={"group_by": ["a"]}), "rules[0].dedup: missing 'window_minutes'"),
    (
        config(dedup={"group_by": ["a"], "window_minutes": 0.05}),
        "rules[0].dedup.window_minutes: must be between",
    ),
    (
        config(dedup={"group_by": ["a"], "window_minutes": 1441}),
        "rules[0].dedup.window_minutes: must be between",
    ),
    (
        config(dedup={"group_by": ["a"], "window_minutes": True}),
        "rules[0].dedup.window_minutes: expected a number",
    ),
    (
        config(dedup={"group_by": ["a"], "window_minutes": "5"}),
        "rules[0].dedup.window_minutes: expected a number",
    ),
    (config(dedup={"group_by": ["a"], "window_minutes": 5, "x": 1}), "rules[0].dedup.x: unknown key"),
    (config(dedup=[]), "rules[0].dedup: expected an object"),
    (config(threshold={"window_minutes": 5}), "rules[0].threshold: missing 'count'"),
    (
        config(threshold={"count": 1, "window_minutes": 5}),
        "rules[0].threshold.count: must be between 2 and 1000",
    ),
    (
        config(threshold={"count": 2.5, "window_minutes": 5}),
        "rules[0].threshold.count: expected a whole number",
    ),
    (config(threshold={"count": 5}), "rules[0].threshold: missing 'window_minutes'"),
    (
        config(threshold={"count": 5, "window_minutes": 5}, dedup={"group_by": ["a"], "window_minutes": 5}),
        "rules[0]: give at most one of 'dedup' and 'threshold'",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_noise_faults_name_their_path(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert any(error.startswith(message) for error in info.value.errors), info.value.errors


def test_a_suppression_of_a_rule_that_is_itself_invalid_reports_only_the_rule() -> None:
    raw = config(suppressions=[sup(rules=["denied"])], severity="loud")
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert info.value.errors == [
        "rules[0].severity: unknown severity 'loud'; expected one of info, low, medium, high, critical"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-03-31", datetime(2027, 3, 31, tzinfo=UTC)),
        ("2027-03-31T23:59:59Z", datetime(2027, 3, 31, 23, 59, 59, tzinfo=UTC)),
        ("2027-03-31T10:00+02:00", datetime(2027, 3, 31, 8, 0, tzinfo=UTC)),
        ("2027-03-31T10:00:00.5Z", datetime(2027, 3, 31, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2027-3-31", None),
        ("2027-03-31 10:00Z", None),
        ("2027-03-31T10:00", None),  # no zone: ambiguous
        ("2027-13-01", None),
        ("tomorrow", None),
    ],
)
def test_parse_expiry(text: str, expected: datetime | None) -> None:
    assert parse_expiry(text) == expected


def test_suppression_is_active_strictly_before_its_expiry() -> None:
    (s,) = validate_config(config(suppressions=[sup(expires="2027-03-31")])).suppressions
    assert s.active(datetime(2027, 3, 30, 23, 59, 59, tzinfo=UTC))
    assert not s.active(datetime(2027, 3, 31, tzinfo=UTC))


# ------------------------------------------------------------------------------------------- config_diff


def digest(raw: dict) -> dict[str, str]:
    return D.config_digest(D.digest_items(validate_config(raw)))


def test_a_rule_without_noise_control_keeps_its_four_part_digest() -> None:
    (rule,) = validate_config(config()).rules
    assert D.rule_digest(rule).count("|") == 3  # digests stored before noise control existed compare equal


@pytest.mark.parametrize(
    ("before", "after", "reason", "weakening"),
    [
        ({}, {"threshold": {"count": 5, "window_minutes": 5}}, "noise control added", True),
        ({"threshold": {"count": 5, "window_minutes": 5}}, {}, "noise control removed", False),
        (
            {"threshold": {"count": 5, "window_minutes": 5}},
            {"threshold": {"count": 9, "window_minutes": 5}},
            "noise control changed",
            True,
        ),
        (
            {"threshold": {"count": 5, "window_minutes": 5}},
            {"threshold": {"count": 3, "window_minutes": 5}},
            "noise control changed",
            False,
        ),
        (
            {"threshold": {"count": 5, "window_minutes": 5}},
            {"threshold": {"count": 3, "window_minutes": 50}},
            "noise control changed",
            True,
        ),
        (
            {"dedup": {"group_by": ["a"], "window_minutes": 5}},
            {"dedup": {"group_by": ["a", "b"], "window_minutes": 5}},
            "noise control changed",
            True,
        ),
    ],
)
def test_noise_control_changes_are_reported(before: dict, after: dict, reason: str, weakening: bool) -> None:
    diff = D.diff_digests(digest(config(**before)), digest(config(**after)))
    (change,) = diff.changed
    assert change.reasons == (reason,)
    assert change.weakening is weakening and diff.weakening is weakening


def test_suppressions_are_diffed_and_adding_or_changing_one_weakens() -> None:
    none = digest(config())
    one = digest(config(suppressions=[sup()]))
    later = digest(config(suppressions=[sup(expires="2028-01-01")]))
    added = D.diff_digests(none, one)
    assert added.suppressions_added == ("scanner-denied",) and added.weakening and not added.added
    assert any("suppression scanner-denied" in line for line in added.lines())
    changed = D.diff_digests(one, later)
    assert changed.suppressions_changed == ("scanner-denied",) and changed.weakening
    removed = D.diff_digests(one, none)
    assert removed.suppressions_removed == ("scanner-denied",) and not removed.weakening and not removed.empty
    assert D.diff_digests(one, digest(config(suppressions=[sup(reason="other words")]))).empty
