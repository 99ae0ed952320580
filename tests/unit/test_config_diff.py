"""config_diff: what a new config version adds, removes, changes, and which changes weaken detection."""

from __future__ import annotations

import json
from typing import Any

import pytest
from trailwatch_processor import config_diff as D
from trailwatch_processor.config import Rule
from trailwatch_processor.config_load import load_default_config


def rule(
    rule_id: str = "r1",
    *,
    severity: str = "high",
    pattern: dict | None = None,
    exclude: tuple[dict, ...] = (),
    title: str = "Title",
    description: str = "Why",
) -> Rule:
    return Rule(
        id=rule_id,
        title=title,
        severity=severity,
        description=description,
        pattern=pattern if pattern is not None else {"eventName": ["StopLogging"]},
        exclude=exclude,
    )


EXCLUDE = ({"userIdentity": {"type": ["AWSService"]}},)


def one_change(old: Rule, new: Rule, reasons: tuple[str, ...], weakening: bool, case: str) -> Any:
    """A case where rule r1 is all that differs: nothing added or removed, r1 changed for ``reasons``."""
    return pytest.param([old], [new], [], [], {"r1": reasons}, weakening, id=case)


NEW_PATTERN = {"eventName": ["StopLogging", "DeleteTrail"]}
OTHER_EXCLUDE = ({"sourceIPAddress": ["10.0.0.1"]},)
# (old rules, new rules, added, removed, {changed id: reasons}, weakening)
CASES: list[Any] = [
    pytest.param([rule()], [rule()], [], [], {}, False, id="same"),
    pytest.param([rule()], [rule(), rule("r2")], ["r2"], [], {}, False, id="rule-added"),
    pytest.param([rule(), rule("r2")], [rule()], [], ["r2"], {}, True, id="rule-removed"),
    one_change(rule(), rule(severity="low"), ("severity high -> low",), True, "severity-lowered"),
    one_change(rule(), rule(severity="critical"), ("severity high -> critical",), False, "severity-raised"),
    # even a widened pattern weakens: no superset proof is attempted
    one_change(rule(), rule(pattern=NEW_PATTERN), ("pattern changed",), True, "pattern-changed"),
    one_change(rule(), rule(exclude=EXCLUDE), ("exclude added",), True, "exclude-added"),
    one_change(
        rule(exclude=EXCLUDE), rule(exclude=OTHER_EXCLUDE), ("exclude changed",), True, "exclude-changed"
    ),
    one_change(rule(exclude=EXCLUDE), rule(), ("exclude removed",), False, "exclude-removed"),
    one_change(rule(), rule(title="New title"), ("title/description changed",), False, "title-changed"),
    one_change(
        rule(),
        rule(severity="medium", pattern={"eventName": ["DeleteTrail"]}),
        ("severity high -> medium", "pattern changed"),
        True,
        "several-reasons",
    ),
]


@pytest.mark.parametrize(("old", "new", "added", "removed", "changed", "weakening"), CASES)
def test_diff(
    old: list[Rule], new: list[Rule], added: list, removed: list, changed: dict, weakening: bool
) -> None:
    diff = D.diff_rules(old, new)
    assert list(diff.added) == added
    assert list(diff.removed) == removed
    assert {c.rule_id: c.reasons for c in diff.changed} == changed
    assert diff.weakening is weakening
    assert diff.empty is (not added and not removed and not changed)


def test_the_digest_ignores_key_order_and_the_pattern_list_is_canonical() -> None:
    a = rule(pattern={"eventName": ["StopLogging"], "eventSource": ["cloudtrail.amazonaws.com"]})
    b = rule(pattern={"eventSource": ["cloudtrail.amazonaws.com"], "eventName": ["StopLogging"]})
    assert D.rule_digest(a) == D.rule_digest(b)
    assert D.diff_rules([a], [b]).empty


def test_no_previous_version_means_every_rule_is_added() -> None:
    diff = D.diff_digests(None, D.config_digest([rule("a"), rule("b")]))
    assert diff.added == ("a", "b") and not diff.weakening


def test_a_config_of_one_unknown_event_removes_every_default_rule() -> None:
    """``{"monitored_events": ["NoSuchEvent"]}`` over the bundled default."""
    from trailwatch_processor.config_load import parse_config

    default = load_default_config().rules
    diff = D.diff_rules(default, parse_config(b'{"monitored_events": ["NoSuchEvent"]}').rules)
    assert diff.weakening and set(diff.removed) == {r.id for r in default} - {"NoSuchEvent"}


def test_weakened_lists_only_weakening_changes() -> None:
    old = [rule("a"), rule("b")]
    new = [rule("a", severity="low"), rule("b", severity="critical")]
    assert D.diff_rules(old, new).weakened == ("a",)


def test_lines_are_capped_per_kind() -> None:
    diff = D.diff_rules([], [rule(f"r{i}") for i in range(5)])
    assert diff.lines(limit=2) == ["+ r0 (added)", "+ r1 (added)", "... and 3 more added"]


def test_a_digest_of_the_largest_config_fits_a_dynamodb_item() -> None:
    long_ids = [rule(("x" * 120) + f"{i:05d}", pattern={"eventName": [f"E{i}"]}) for i in range(1000)]
    assert len(json.dumps(D.config_digest(long_ids))) < 350_000


def test_an_unknown_stored_severity_counts_any_new_one_as_raised() -> None:
    old = {"r1": "bogus|p|e|t"}
    diff = D.diff_digests(old, {"r1": "info|p|e|t"})
    assert not diff.weakening and diff.changed[0].reasons == ("severity bogus -> info",)
