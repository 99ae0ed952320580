"""Tests beside rules: their schema (config_schema.py), `trailwatch rules test` and `rules list`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from trailwatch.main import cli
from trailwatch.rulescmd import run_tests
from trailwatch_processor.config import ConfigError
from trailwatch_processor.config_load import load_default_config
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.patterns import compile_config

STOP = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"}
START = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StartLogging"}


def rule(**extra: object) -> dict:
    return {"id": "stop", "severity": "high", "pattern": {"eventName": ["StopLogging"]}, **extra}


def write(path: Path, rules: list[dict]) -> Path:
    path.write_text(json.dumps({"rules": rules}))
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


# ------------------------------------------------------------------------------------------ schema


def test_tests_and_origin_are_kept_on_the_rule_but_not_in_the_pattern() -> None:
    tests = [{"name": "stop", "record": STOP, "expect": "match"}, {"file": "t/a.json", "expect": "no-match"}]
    (parsed,) = validate_config({"rules": [rule(tests=tests, origin="sigma")]}).rules
    assert parsed.tests == tuple(tests)
    assert parsed.origin == "sigma"
    assert parsed.pattern == {"eventName": ["StopLogging"]}


@pytest.mark.parametrize(
    ("tests", "error"),
    [
        ({"record": STOP}, "rules[0].tests: expected an array of tests, got an object"),
        (["x"], "rules[0].tests[0]: a test must be an object, got a string"),
        ([{"expect": "match"}], "rules[0].tests[0]: give exactly one of 'record' (inline) and 'file'"),
        (
            [{"record": STOP, "file": "a.json", "expect": "match"}],
            "rules[0].tests[0]: give exactly one of 'record' (inline) and 'file'",
        ),
        ([{"record": [STOP], "expect": "match"}], "rules[0].tests[0].record: a record must be an object"),
        ([{"file": "/etc/passwd", "expect": "match"}], "rules[0].tests[0].file: must be a path relative"),
        ([{"record": STOP, "expect": "yes"}], "rules[0].tests[0].expect: expected one of match, no-match"),
        ([{"record": STOP}], "rules[0].tests[0].expect: expected one of match, no-match, got None"),
        ([{"record": STOP, "expect": "match", "why": 1}], "rules[0].tests[0].why: unknown key"),
        ([{"name": "", "record": STOP, "expect": "match"}], "rules[0].tests[0].name: must not be empty"),
    ],
)
def test_bad_tests_name_their_path(tests: object, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"rules": [rule(tests=tests)]})
    assert any(e.startswith(error) for e in info.value.errors), info.value.errors


def test_unknown_origin_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"rules\[0\]\.origin: unknown origin 'mine'"):
        validate_config({"rules": [rule(origin="mine")]})


def test_origin_defaults_by_how_the_rule_was_written() -> None:
    config = validate_config({"rules": [rule(), {"id": "fp", "filter_pattern": "{ $.eventName = X }"}]})
    assert [r.origin for r in config.rules] == ["yours", "filter_pattern"]


def test_tests_do_not_change_what_the_matcher_matches() -> None:
    """The Lambda ignores tests: a rule with a failing test still matches exactly as without it."""
    with_tests = validate_config({"rules": [rule(tests=[{"record": START, "expect": "match"}])]})
    without = validate_config({"rules": [rule()]})
    for record in (STOP, START):
        assert [r.id for r in compile_config(with_tests).match(record)] == [
            r.id for r in compile_config(without).match(record)
        ]


# ------------------------------------------------------------------------------------------ running


def test_run_tests_reports_expected_and_got(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "start.json").write_text(json.dumps(START))
    (tmp_path / "t" / "log.json").write_text(json.dumps({"Records": [START, STOP]}))
    tests = [
        {"name": "inline stop", "record": STOP, "expect": "match"},
        {"file": "t/start.json", "expect": "no-match"},
        {"name": "log file", "file": "t/log.json", "expect": "match"},
        {"name": "broken", "record": START, "expect": "match"},
        {"name": "missing file", "file": "t/nope.json", "expect": "match"},
    ]
    config = validate_config({"rules": [rule(tests=tests)]})
    results = run_tests(config, tmp_path)
    assert [(r.test, r.expected, r.got[:6], r.passed) for r in results] == [
        ("inline stop", "match", "match", True),
        ("#2 t/start.json", "no-match", "no-mat", True),
        ("log file", "match", "match", True),
        ("broken", "match", "no-mat", False),
        ("missing file", "match", "error:", False),
    ]


def test_rule_tests_use_the_whole_config_matcher() -> None:
    """Tests run through `compile_config` of the whole config, as the Lambda: the exclude applies."""
    r = rule(
        pattern={"eventSource": ["cloudtrail.amazonaws.com"]},
        exclude=[{"eventName": ["StartLogging"]}],
        tests=[{"record": START, "expect": "no-match"}, {"record": STOP, "expect": "match"}],
    )
    assert all(result.passed for result in run_tests(validate_config({"rules": [r]}), Path(".")))


SHIPPED_IDS = [r.id for r in load_default_config().rules]


@pytest.mark.parametrize("rule_id", SHIPPED_IDS)
def test_every_shipped_rule_carries_real_matching_and_non_matching_tests(rule_id: str) -> None:
    """Every rule of events.json, the two `monitored_events` entries included, has a real record that must
    match and a record that must not, and all of them pass."""
    config = load_default_config()
    (r,) = [r for r in config.rules if r.id == rule_id]
    assert {t["expect"] for t in r.tests} == {"match", "no-match"}
    assert any(t.get("name", "").startswith("real ") for t in r.tests if t["expect"] == "match")
    assert all("record" in t and "file" not in t for t in r.tests)  # inline: the wheel has no tests/data
    results = [res for res in run_tests(config, Path(".")) if res.rule == rule_id]
    assert results and all(res.passed for res in results), results
    if rule_id not in config.raw["monitored_events"]:
        assert r.origin == "shipped"


# ------------------------------------------------------------------------- monitored_events entries

NAMED_TESTS = [{"name": "stop", "record": STOP, "expect": "match"}, {"record": START, "expect": "no-match"}]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"monitored_events": ["StopLogging"]}, id="short-form"),
        pytest.param(["StopLogging"], id="bare-list"),
        pytest.param({"monitored_events": [{"name": "StopLogging"}]}, id="object-without-tests"),
        pytest.param({"monitored_events": [{"name": "StopLogging", "tests": []}]}, id="object-empty-tests"),
    ],
)
def test_monitored_event_forms_make_the_same_rule(raw: object) -> None:
    (parsed,) = validate_config(raw).rules
    assert (parsed.id, parsed.title, parsed.severity, parsed.pattern, parsed.exclude) == (
        "StopLogging",
        "StopLogging event",
        "medium",
        {"eventName": ["StopLogging"]},
        (),
    )
    assert parsed.tests == ()
    assert validate_config(raw).raw["monitored_events"] == ["StopLogging"]


@pytest.mark.parametrize("top", ["object", "bare-list"])
def test_a_monitored_event_object_carries_tests(top: str) -> None:
    entries = ["CreateUser", {"name": "StopLogging", "tests": NAMED_TESTS}]
    config = validate_config({"monitored_events": entries} if top == "object" else entries)
    assert [(r.id, r.tests) for r in config.rules] == [
        ("CreateUser", ()),
        ("StopLogging", tuple(NAMED_TESTS)),
    ]
    assert config.raw["monitored_events"] == ["CreateUser", "StopLogging"]  # the normal form stays names
    assert [(r.test, r.passed) for r in run_tests(config, Path("."))] == [("stop", True), ("#2", True)]


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([{"tests": []}], "monitored_events[0]: missing 'name' (the event name)"),
        ([{"name": 3}], "monitored_events[0].name: expected a string, got a number"),
        ([{"name": ""}], "monitored_events[0].name: must not be empty"),
        ([{"name": "Stop Logging"}], "monitored_events[0].name: invalid event name 'Stop Logging'"),
        (
            [{"name": "A", "severity": "high"}],
            "monitored_events[0].severity: unknown key (expected name, tests)",
        ),
        ([{"name": "A", "tests": {"record": STOP}}], "monitored_events[0].tests: expected an array of tests"),
        (
            ["A", {"name": "B", "tests": [{"record": STOP, "expect": "yes"}]}],
            "monitored_events[1].tests[0].expect: expected one of match, no-match, got 'yes'",
        ),
        (
            [{"name": "A", "tests": [{"record": [STOP], "expect": "match"}]}],
            "monitored_events[0].tests[0].record: a record must be an object, got an array",
        ),
        (
            [{"name": "A", "tests": [{"file": "/etc/passwd", "expect": "match"}]}],
            "monitored_events[0].tests[0].file: must be a path relative to the config file",
        ),
        (
            ["A", {"name": "A", "tests": []}],
            "monitored_events[1].name: duplicate rule id 'A' (also monitored_events[0])",
        ),
        (
            [{"name": "A"}, "A"],
            "monitored_events[1]: duplicate rule id 'A' (also monitored_events[0].name)",
        ),
        ([["A"]], "monitored_events[0]: expected a string, got an array"),
    ],
)
def test_bad_monitored_event_entries_name_their_path(entries: list, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"monitored_events": entries})
    assert any(e.startswith(error) for e in info.value.errors), info.value.errors


# ------------------------------------------------------------------------------------------ commands


def test_rules_test_passes_on_the_shipped_config() -> None:
    result = run("rules", "test")
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output
    assert "cis-4.1-unauthorized-api-calls" in result.output


def test_rules_test_fails_with_a_table_naming_the_broken_test(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        [
            rule(
                tests=[
                    {"name": "stop", "record": STOP, "expect": "match"},
                    {"name": "start", "record": START, "expect": "match"},
                ]
            )
        ],
    )
    result = run("rules", "test", str(path))
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["RULE", "TEST", "EXPECTED", "GOT", "RESULT"]
    assert lines[1].split() == ["stop", "stop", "match", "match", "ok"]
    assert lines[2].split() == ["stop", "start", "match", "no-match", "FAIL"]
    assert "1 rule test(s) failed" in result.output


def test_rules_test_and_list_show_the_tests_of_monitored_events(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    broken = {"name": "start", "record": START, "expect": "match"}
    path.write_text(
        json.dumps({"monitored_events": ["CreateUser", {"name": "StopLogging", "tests": [broken]}]})
    )
    result = run("rules", "test", str(path))
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["StopLogging", "start", "match", "no-match", "FAIL"]
    assert "1 rule(s) without tests: CreateUser" in result.output
    listed = run("rules", "list", str(path))
    assert [line.split()[:4] for line in listed.output.splitlines()[1:]] == [
        ["CreateUser", "medium", "yours", "0"],
        ["StopLogging", "medium", "yours", "1"],
    ]


def test_rules_test_without_any_test_says_nothing_was_checked(tmp_path: Path) -> None:
    """A config whose rules carry no tests (an import of Sigma rules) passes, but does not claim "all pass",
    and lists only the first ten untested rules."""
    path = write(
        tmp_path / "c.json", [{"id": f"r{i:02}", "pattern": {"eventName": [f"E{i}"]}} for i in range(12)]
    )
    result = run("rules", "test", str(path))
    assert result.exit_code == 0, result.output
    assert "0 test(s) of 0 rule(s): 0 failed; 12 rule(s) without tests: r00, r01," in result.output
    assert "r09 and 2 more" in result.output and "r10" not in result.output
    assert "carries tests: nothing was checked" in result.output
    assert "All rule tests pass" not in result.output


def test_rules_test_on_an_invalid_config_names_the_path(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", [rule(tests=[{"record": STOP, "expect": "maybe"}])])
    result = run("rules", "test", str(path))
    assert result.exit_code == 2
    assert "rules[0].tests[0].expect" in result.output


def test_rules_list_shows_severity_origin_and_test_count(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        [
            rule(tests=[{"record": STOP, "expect": "match"}, {"record": START, "expect": "no-match"}]),
            {"id": "fp", "severity": "low", "filter_pattern": "{ $.eventName = X }"},
            {"id": "sg", "origin": "sigma", "pattern": {"eventName": ["Y"]}},
        ],
    )
    result = run("rules", "list", str(path))
    assert result.exit_code == 0, result.output
    rows = [line.split()[:4] for line in result.output.splitlines()]
    assert rows == [
        ["RULE", "SEVERITY", "ORIGIN", "TESTS"],
        ["stop", "high", "yours", "2"],
        ["fp", "low", "filter_pattern", "0"],
        ["sg", "medium", "sigma", "0"],
    ]


def test_rules_list_of_the_bundled_config_says_shipped() -> None:
    result = run("rules", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[2] for line in result.output.splitlines()[1:]}
    assert set(rows.values()) == {"shipped"}
    assert "cis-4.15-organizations-changes" in rows and "CreateUser" in rows


def test_the_readme_rules_as_code_example_runs_as_written(repo_root: Path, tmp_path: Path) -> None:
    """The README's `my-events.json` (with the `tests/decrypt.json` it describes) is a valid config whose
    tests all pass, and `rules list` counts them, the monitored_events entry's included."""
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Rules as code") : readme.index("### Sigma import")]
    (example,) = re.findall(r"```json\n(.*?)```", section, re.S)
    decrypt = re.search(r"`tests/decrypt.json` next to it holding `(\{.*?\})`", section.replace("\n", " "))
    assert decrypt, "the README says what tests/decrypt.json holds"
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "decrypt.json").write_text(decrypt.group(1))
    (tmp_path / "my-events.json").write_text(example)
    result = run("rules", "test", str(tmp_path / "my-events.json"))
    assert result.exit_code == 0, result.output
    assert "4 test(s) of 2 rule(s): 0 failed; 1 rule(s) without tests: ConsoleLogin" in result.output
    listed = run("rules", "list", str(tmp_path / "my-events.json"))
    assert [line.split()[:4] for line in listed.output.splitlines()[1:]] == [
        ["ConsoleLogin", "medium", "yours", "0"],
        ["CreateUser", "medium", "yours", "2"],
        ["kms-key-disabled", "high", "filter_pattern", "2"],
    ]
