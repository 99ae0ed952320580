"""`trailwatch demo`: exits 0 and prints the detections, in both modes; its exact-once check fails when an
expected detection is missing, mis-ruled or duplicated."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from trailwatch.local import demo
from trailwatch.main import cli

from tests.unit.test_default_config import CIS_IDS

pytestmark = pytest.mark.e2e

DEMO_BUDGET_SECONDS = 60.0
# The rules the story exercises (events.json ids), written out here rather than read from demo.py.
FILES_STORY_RULES = {*CIS_IDS[:10], "CreateUser"}  # CIS 4.1-4.10
LIVE_STORY_EVENTS = {
    "ConsoleLogin",
    "CreatePolicy",
    "CreateUser",
    "AttachUserPolicy",
    "CreateAccessKey",
    "PutBucketPolicy",
    "CreateSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "DisableKey",
    "ScheduleKeyDeletion",
    "StopLogging",
}


def test_demo_default_mode_from_a_fresh_process() -> None:
    """What the README runs: a new process, the default (live) mode, under a minute."""
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", "from trailwatch.main import main; main()", "demo"],
        capture_output=True,
        text=True,
        timeout=DEMO_BUDGET_SECONDS + 30,
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    out = run.stdout
    assert "The intrusion, as API calls" in out and "ConsoleLogin is not an API call" in out
    detections = out.split("==> Detections", 1)[1].split("==> Alerts received", 1)[0]
    assert set(detections.split()) >= LIVE_STORY_EVENTS, detections
    assert "arn:aws:iam::123456789012:user/intruder" in detections
    assert "API call -> alert: p50" in out and "object written -> alert: p50" in out
    assert "demo passed" in out
    assert elapsed < DEMO_BUDGET_SECONDS, f"demo took {elapsed:.1f} s"


def test_demo_files_mode_json() -> None:
    result = CliRunner().invoke(cli, ["demo", "--files", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["passed"] is True and doc["problems"] == [] and doc["mode"] == "files"
    assert {d["rule"] for d in doc["detections"]} == FILES_STORY_RULES
    assert doc["other_detections"] == []
    alerted = [i for a in doc["alerts"] for i in a["eventIDs"]]
    assert len(alerted) == len(set(alerted)) == len(doc["detections"])
    assert doc["latency_seconds"]["object written -> alert"]["n"] == len(doc["detections"])


# -- the check itself, on fabricated observations ---------------------------------------------------------
def _expected() -> list[demo.Expected]:
    return [
        demo.Expected("a", "CreateUser", "CreateUser", "e1"),
        demo.Expected("b", "StopLogging", "cis-4.5-cloudtrail-config-changes", "e2"),
        demo.Expected("c", "CreateAccessKey", None, "e3"),
    ]


def _item(event_id: str, rule: str) -> dict:
    return {"EventId": event_id, "rule_id": rule, "rule_ids": [rule], "event_name": "x"}


def _seen(items: list[dict], alerts: list[tuple[str, list[str]]]) -> demo.Observed:
    seen = demo.Observed()
    seen.items = {i["EventId"]: i for i in items}
    seen.alerts = [(0.0, {"rule": rule, "eventIDs": ids}) for rule, ids in alerts]
    return seen


GOOD_ITEMS = [_item("e1", "CreateUser"), _item("e2", "cis-4.5-cloudtrail-config-changes")]
GOOD_ALERTS = [("CreateUser", ["e1"]), ("cis-4.5-cloudtrail-config-changes", ["e2"])]


@pytest.mark.parametrize(
    ("items", "alerts", "problem"),
    [
        (GOOD_ITEMS, GOOD_ALERTS, None),
        (GOOD_ITEMS[:1], GOOD_ALERTS, "b: StopLogging missing from the table"),
        (GOOD_ITEMS, GOOD_ALERTS[:1], "b: StopLogging in 0 alerts, expected exactly 1"),
        (GOOD_ITEMS, [*GOOD_ALERTS, ("CreateUser", ["e1"])], "a: CreateUser in 2 alerts, expected exactly 1"),
        (
            [_item("e1", "cis-4.4-iam-policy-changes"), GOOD_ITEMS[1]],
            GOOD_ALERTS,
            "a: primary rule cis-4.4-iam-policy-changes, expected CreateUser",
        ),
        (
            GOOD_ITEMS,
            [("cis-4.1-unauthorized-api-calls", ["e1"]), GOOD_ALERTS[1]],
            "a: alerted under cis-4.1",
        ),
        (
            [*GOOD_ITEMS, _item("e3", "x")],
            GOOD_ALERTS,
            "c: CreateAccessKey detected (x) but no rule expected",
        ),
        ([*GOOD_ITEMS, _item("e9", "x")], GOOD_ALERTS, "unexpected detection e9"),
    ],
)
def test_check_names_each_problem(items: list[dict], alerts: list, problem: str | None) -> None:
    problems = demo.check(_expected(), _seen(items, alerts), strict_extras=True)
    if problem is None:
        assert problems == []
    else:
        assert any(p.startswith(problem) for p in problems), problems


def test_extras_are_reported_not_failed_in_live_mode() -> None:
    seen = _seen([*GOOD_ITEMS, _item("e9", "cis-4.3-root-account-usage")], GOOD_ALERTS)
    assert demo.check(_expected(), seen, strict_extras=False) == []
