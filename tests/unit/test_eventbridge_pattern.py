"""The fast path's EventBridge pattern, from the config.

Every record is wrapped in the envelope AWS puts on the bus (``trailwatch.local.eventbridge.envelope``) and
the generated pattern is evaluated with the processor's own EventBridge matcher (``patterns.py``): it must
match every event the config matches (a superset, always), exactly those when ``exact``, and, when only the
excludes keep it from being exact, exactly the events the rules match before their excludes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trailwatch import synth
from trailwatch.local.eventbridge import ALL_MANAGEMENT_STATE, envelope
from trailwatch_processor import eventbridge_pattern as ebp
from trailwatch_processor.config import Config, Rule
from trailwatch_processor.config_load import load_default_config
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.patterns import Matcher, compile_config

from tests.profiles import examples
from tests.unit import pattern_reference as ref
from tests.unit.test_rules_property import _config, records, rule_specs, witness

DATA = Path(__file__).resolve().parents[1] / "data"
ACCOUNT = "123456789012"


def _cis_config() -> Config:
    controls = json.loads((DATA / "cis_filter_patterns.json").read_text())["controls"]
    return validate_config(
        {"rules": [{"id": c["rule"], "filter_pattern": c["filter_pattern"]} for c in controls]}
    )


def _sigma_config() -> Config:
    sigma_import = pytest.importorskip("trailwatch.sigma_import")
    return validate_config(sigma_import.config_of(sigma_import.import_paths([DATA / "sigma" / "rules"])))


CONFIGS = {
    "default": load_default_config,
    "cis-filter-patterns": _cis_config,
    "sigma": _sigma_config,
    "names-only": lambda: validate_config(
        {"monitored_events": ["CreateUser", "StopLogging", "ConsoleLogin"]}
    ),
}
LIMITS = [ebp.MAX_PATTERN_CHARS, 4096, 1_000_000]


def pattern_matcher(pattern: dict) -> Matcher:
    """The generated pattern as the processor's matcher evaluates a rule on the bus."""
    return compile_config(Config(rules=(Rule("fast-path", "t", "info", "", pattern),), source="test", raw={}))


def without_excludes(config: Config) -> Matcher:
    rules = tuple(Rule(r.id, r.title, r.severity, r.description, r.pattern) for r in config.rules)
    return compile_config(Config(rules=rules, source="no-excludes", raw={}))


def synthesized(config: Config) -> list[dict]:
    """synth's records: background traffic, the config's own event names, root and console sign-ins, and
    every inline test record of the config's rules (their matches and near misses)."""
    rng = random.Random(16)
    names = sorted({f for r in config.rules for f in r.pattern.get("eventName", []) if type(f) is str})
    out = synth.background_records(600, rng, monitored_fraction=0.3, monitored_names=names or ["CreateUser"])
    out += [synth.monitored_record(name, rng) for name in names]
    out += [
        synth.console_login(mfa=False, root_login=True),
        synth.console_login(mfa=True),
        synth.console_login(success=False, error_message="Failed authentication"),
        synth.make_record("StopLogging", identity=synth.root()),
        synth.make_record("GetCallerIdentity", identity=synth.root(), read_only=True),
        synth.make_record("DescribeInstances", error_code="AccessDenied", read_only=True),
        synth.make_record(
            "ListBuckets", error_code="Client.UnauthorizedOperation", source_ip="delivery.logs.amazonaws.com"
        ),
    ]
    for rule in config.rules:
        out += [t["record"] for t in rule.tests if isinstance(t.get("record"), dict)]
    return out


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def config(request: pytest.FixtureRequest) -> Config:
    return CONFIGS[request.param]()


@pytest.fixture(scope="module")
def corpus(config: Config, shared_records: list) -> list[dict]:
    return [r for r in [*shared_records, *synthesized(config)] if isinstance(r, dict)]


def check(config: Config, fp: ebp.FastPathPattern, recs: Iterable[dict]) -> int:
    """The acceptance property on ``recs``; returns how many the config matched."""
    matcher, on_bus = compile_config(config), pattern_matcher(fp.pattern)
    before_excludes = without_excludes(config)
    only_excludes = not fp.relaxed and not fp.broad and not fp.names_shortened
    matched = 0
    for record in recs:
        event = envelope(record, ACCOUNT)
        wanted, delivered = bool(matcher.match(record)), bool(on_bus.match(event))
        matched += wanted
        assert delivered or not wanted, ("the pattern misses an event the config matches", fp.text, record)
        assert delivered == ref.pattern_matches(fp.pattern, event)  # the independent reference agrees
        if fp.exact:
            assert delivered == wanted, ("exact, yet delivers more", fp.text, record)
        elif only_excludes:
            assert delivered == bool(before_excludes.match(record)), (fp.text, record)
        if wanted and record.get("readOnly") is True:
            assert fp.read_only, ("a rule matches a read-only event", record)
    return matched


@pytest.mark.parametrize("max_chars", LIMITS, ids=[f"{n}-chars" for n in LIMITS])
def test_pattern_matches_every_event_the_config_matches(config: Config, corpus: list, max_chars: int) -> None:
    fp = ebp.event_pattern(config, max_chars=max_chars)
    assert check(config, fp, corpus) > 0
    assert len(fp.text) <= max_chars or fp.broad
    assert_within_eventbridge_limits(fp)


def assert_within_eventbridge_limits(fp: ebp.FastPathPattern) -> None:
    assert ebp.or_combinations(fp.pattern) <= ebp.MAX_OR_COMBINATIONS
    validate_config({"rules": [{"id": "fast-path", "pattern": fp.pattern}]})  # our validator's syntax too
    assert fp.pattern["source"] == [{"prefix": "aws."}]
    assert fp.pattern["detail-type"] == [{"suffix": "via CloudTrail"}]
    assert set(fp.pattern) <= {"source", "detail-type", "detail"}
    assert (fp.note is None) == fp.exact
    assert fp.state == (ALL_MANAGEMENT_STATE if fp.read_only else "ENABLED")


def test_default_config_within_2048_characters_is_narrower_than_broad(shared_records: list) -> None:
    """The default config does not fit exactly; widened and shortened, it still sends far less than all."""
    config = load_default_config()
    fp = ebp.event_pattern(config)
    assert not fp.broad and not fp.exact and fp.names_shortened and len(fp.text) <= 2048
    assert fp.read_only  # cis-4.1 and cis-4.3 match any call, read-only ones too
    on_bus = pattern_matcher(fp.pattern)
    delivered = sum(bool(on_bus.match(envelope(r, ACCOUNT))) for r in shared_records)
    assert delivered < len(shared_records) * 0.8
    roomy = ebp.event_pattern(config, max_chars=1_000_000)
    assert not roomy.relaxed and roomy.excluded_in_function == (
        "cis-4.1-unauthorized-api-calls",
        "cis-4.2-console-signin-without-mfa",
    )
    assert roomy.note is not None and roomy.note.startswith("the excludes of cis-4.1")


def test_names_only_config_is_exact_in_one_branch() -> None:
    config = validate_config({"monitored_events": ["StopLogging", "CreateUser"], "rules": [
        {"id": "keys", "pattern": {"eventName": ["CreateAccessKey", {"prefix": "DeleteAccessKey"}]}},
    ]})  # fmt: skip
    fp = ebp.event_pattern(config)
    assert fp.exact and fp.note is None
    assert fp.read_only  # DeleteAccessKey* may name a read-only event: in doubt, the state takes them
    assert fp.pattern["detail"] == {
        "eventName": ["CreateAccessKey", "CreateUser", "StopLogging", {"prefix": "DeleteAccessKey"}]
    }


@pytest.mark.parametrize("values", [[False, 0], [0, False], [True, 1], [1, True]])
def test_false_and_zero_are_two_event_name_values(values: list) -> None:
    """Python's == holds `False == 0`; EventBridge and the config's matcher do not, so neither value may
    stand for the other when the filters are merged (found by test_random_configs_superset_and_exact)."""
    config = validate_config({"rules": [{"id": "odd", "pattern": {"eventName": ["", *values]}}]})
    fp = ebp.event_pattern(config)
    on_bus = pattern_matcher(fp.pattern)
    for value in values:
        record = {"eventName": value}
        assert compile_config(config).match(record)
        assert on_bus.match(envelope(record, ACCOUNT)), (fp.text, value)


def test_rules_are_combined_under_detail_with_or() -> None:
    config = validate_config({"monitored_events": ["CreateUser"], "rules": [
        {"id": "root", "pattern": {"userIdentity": {"type": ["Root"]}}},
    ]})  # fmt: skip
    fp = ebp.event_pattern(config)
    assert fp.exact and fp.read_only
    assert fp.pattern["detail"] == {
        "$or": [{"eventName": ["CreateUser"]}, {"userIdentity": {"type": ["Root"]}}]
    }


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        pytest.param({"eventName": ["X"], "rp": {"prefix": ["a"]}}, "'prefix'", id="reserved-field"),
        pytest.param({"eventName": ["X"], "a": [{"anything-but": {"prefix": ["a", "b"]}}]},
                     "list of prefixes", id="anything-but-prefix-list"),
        pytest.param({"eventName": ["X"], "n": [{"numeric": [">", 6e9]}]}, "numeric bound",
                     id="numeric-range"),
        pytest.param({"eventName": ["X"], "n": [{"numeric": [">", 0.1234567]}]}, "numeric bound",
                     id="numeric-precision"),
    ],
)  # fmt: skip
def test_what_eventbridge_refuses_is_widened_to_the_event_names(pattern: dict, problem: str) -> None:
    config = validate_config({"rules": [
        {"id": "odd", "pattern": pattern}, {"id": "root", "pattern": {"userIdentity": {"type": ["Root"]}}},
    ]})  # fmt: skip
    assert problem in (ebp.unsupported(pattern) or "")
    fp = ebp.event_pattern(config)
    assert not fp.exact and fp.relaxed == ("odd",) and not fp.broad and problem in (fp.note or "")
    assert fp.pattern["detail"]["$or"][0] == {"eventName": ["X"]}


def test_what_cannot_be_widened_falls_back_to_broad() -> None:
    config = validate_config({"rules": [{"id": "odd", "pattern": {"requestParameters": {"prefix": ["a"]}}}]})
    fp = ebp.event_pattern(config)
    assert fp.broad and not fp.exact and fp.pattern == ebp.broad_pattern()
    assert fp.note is not None and fp.note.startswith("broad pattern") and "odd" in fp.note


def test_too_large_even_shortened_falls_back_to_broad() -> None:
    config = validate_config({"rules": [
        {"id": f"r{i}", "pattern": {"requestParameters": {"bucketName": [f"b-{i:04d}"]}}} for i in range(200)
    ]})  # fmt: skip
    fp = ebp.event_pattern(config)
    assert fp.broad and "over the limit of 2048" in (fp.note or "")


def test_too_many_or_combinations_falls_back() -> None:
    branch = {"$or": [{"a": ["1"]}, {"b": ["2"]}, {"c": ["3"]}, {"d": ["4"]}]}
    pattern = {"x": dict(branch), "y": dict(branch), "z": dict(branch), "w": dict(branch), "v": dict(branch)}
    assert ebp.or_combinations(pattern) == 4**5
    fp = ebp.event_pattern(
        validate_config({"rules": [{"id": "wide", "pattern": pattern}]}), max_chars=100_000
    )
    assert fp.broad and "$or combinations" in (fp.note or "")


@pytest.mark.parametrize(
    ("pattern", "read_only"),
    [
        ({"eventName": ["CreateUser", "StopLogging"]}, False),
        ({"eventName": ["CreateUser", "AssumeRole"]}, True),  # AssumeRole is recorded read-only
        ({"eventName": [{"prefix": "Create"}]}, True),
        ({"userIdentity": {"type": ["Root"]}}, True),
        ({"userIdentity": {"type": ["Root"]}, "readOnly": [False]}, False),
        ({"$or": [{"eventName": ["DeleteTrail"]}, {"eventName": ["ConsoleLogin"], "x": ["y"]}]}, False),
        ({"$or": [{"eventName": ["DeleteTrail"]}, {"errorCode": ["AccessDenied"]}]}, True),
    ],
)
def test_read_only_state_only_when_a_rule_can_match_a_read_only_event(pattern: dict, read_only: bool) -> None:
    fp = ebp.event_pattern(validate_config({"rules": [{"id": "r", "pattern": pattern}]}))
    assert fp.read_only is read_only
    assert fp.state == ("ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" if read_only else "ENABLED")


def test_known_write_events_are_never_read_only_in_the_real_records(shared_records: list) -> None:
    read_only_names = {
        r.get("eventName") for r in shared_records if isinstance(r, dict) and r.get("readOnly")
    }
    assert read_only_names  # the data has read-only records: the check below means something
    assert not (read_only_names & ebp.KNOWN_WRITE_EVENTS)


def test_text_is_compact_json_of_the_pattern() -> None:
    fp = ebp.event_pattern(load_default_config())
    assert json.loads(fp.text) == fp.pattern and " " not in fp.text.replace("via CloudTrail", "")


def test_in_force_compares_a_deployed_rule() -> None:
    fp = ebp.event_pattern(load_default_config())
    assert fp.in_force(json.dumps(fp.pattern, indent=2, sort_keys=True), fp.state)
    assert not fp.in_force(fp.text, "ENABLED")  # the default needs read-only events
    assert not fp.in_force(json.dumps(ebp.broad_pattern()), fp.state)
    assert not fp.in_force("{not json", fp.state) and not fp.in_force(None, fp.state)


# --- property: random configs (tests/unit/test_rules_property.py's strategies) -------------------------


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), specs=rule_specs, max_chars=st.sampled_from([120, 300, 2048]))
def test_random_configs_superset_and_exact(data: st.DataObject, specs: list, max_chars: int) -> None:
    config = validate_config(_config(specs))
    fp = ebp.event_pattern(config, max_chars=max_chars)
    recs = [data.draw(witness(p)) for p, _ in specs] + data.draw(st.lists(records, max_size=4))
    check(config, fp, recs)
    assert len(fp.text) <= max_chars or fp.broad
    assert ebp.or_combinations(fp.pattern) <= ebp.MAX_OR_COMBINATIONS
