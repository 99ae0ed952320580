"""`trailwatch events`: newest first through the ByDay/ByRule indexes (never a Scan), filters, output."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures

NOW = datetime.now(UTC)
ROOT = "cis-4.3-root-account-usage"
ITEMS = {  # name: (age, every matching rule with the primary first, severity)
    "recent": (timedelta(minutes=10), ["CreateUser"], "medium"),
    "hours": (timedelta(hours=3), ["StopLogging"], "critical"),
    "by-root": (timedelta(hours=5), [ROOT, "CreateUser"], "critical"),  # a CreateUser by root
    "yesterday": (timedelta(hours=30), ["CreateUser"], "low"),
    "old": (timedelta(days=10), ["StopLogging"], "high"),
}


@pytest.fixture(scope="module")
def stored_items(shared_stack_module) -> None:
    """ITEMS in the module's deployed stack (stored once; `shared_stack` puts them back after each test)."""
    table = boto3.resource("dynamodb").Table("SecurityEvents")
    for name, (age, rules, severity) in ITEMS.items():
        when = NOW - age
        table.put_item(
            Item={
                "EventId": name,
                "event_name": rules[-1],
                "event_time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "event_day": when.strftime("%Y-%m-%d"),
                "rule_id": rules[0],
                "rule_ids": rules,
                "severity": severity,
                "principal_arn": f"arn:aws:iam::123456789012:user/{name}",
                "source_ip": "198.51.100.7",
                "aws_region": "us-east-1",
                "alert_status": "sent",
            }
        )


@pytest.fixture
def stored(stored_items, shared_stack, failing_client) -> None:
    failing_client("dynamodb", "scan", "TestForbidsScan", "events must query an index, never scan")


def _ids(output: str) -> list[str]:
    return [json.loads(line)["EventId"] for line in output.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["recent", "hours", "by-root"]),
        (["--since", "7d"], ["recent", "hours", "by-root", "yesterday"]),
        (["--since", "30m"], ["recent"]),
        (["--since", "7d", "--rule", "CreateUser"], ["recent", "by-root", "yesterday"]),
        (["--since", "7d", "--rule", ROOT], ["by-root"]),
        (["--since", "30d", "--rule", "StopLogging"], ["hours", "old"]),
        (["--since", "30d", "--rule", "Create"], []),  # a rule id, not a substring
        (["--since", "30d", "--severity", "high"], ["hours", "by-root", "old"]),
        (["--since", "30d", "--limit", "3"], ["recent", "hours", "by-root"]),
    ],
)
@pytest.mark.usefixtures("stored")
def test_events_json_newest_first(cli, args, expected):
    result = cli("events", "--json", *args)
    assert result.exit_code == 0, result.output
    assert _ids(result.stdout) == expected


@pytest.mark.usefixtures("stored")
def test_events_table(cli):
    result = cli("events", "--since", "7d")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = ["TIME", "ACCOUNT", "RULE", "SEVERITY", "EVENT", "PRINCIPAL", "SOURCE", "IP", "REGION"]
    assert lines[0].split() == header
    assert "user/recent" in lines[1] and "user/hours" in lines[2] and "user/yesterday" in lines[4]
    assert "4 event(s) in the last 7d" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--since", "yesterday"], "--since 'yesterday'"),
        (["--severity", "urgent"], "--severity 'urgent'"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--since", "99999999999d"], "at most 36500 days"),
        (["--since", "9" * 40 + "w"], "at most 36500 days"),
        (["--since", "36501d"], "at most 36500 days"),
    ],
)
@pytest.mark.usefixtures("stored")
def test_events_bad_options(cli, args, needle):
    result = cli("events", *args)
    assert result.exit_code == 2
    assert needle in result.output


@pytest.mark.usefixtures("stored")
def test_events_table_escapes_terminal_controls(cli):
    hostile = {
        "principal_arn": "arn:aws:iam::1:user/x\x1b]0;pwned\x07\x1b[2J",
        "event_name": "A\x9b31m\nFAKE ROW",
    }
    table = boto3.resource("dynamodb").Table("SecurityEvents")
    when = NOW - timedelta(minutes=1)
    table.put_item(
        Item={
            "EventId": "hostile",
            "event_time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "event_day": when.strftime("%Y-%m-%d"),
            "rule_id": "CreateUser",
            "rule_ids": ["CreateUser"],
            "severity": "high",
            **hostile,
        }
    )
    result = cli("events", "--since", "1h")
    assert result.exit_code == 0, result.output
    assert not any(ch in result.stdout for ch in "\x1b\x07\x9b")
    assert "user/x\\x1b]0;pwned\\x07\\x1b[2J" in result.stdout and "A\\x9b31m\\nFAKE ROW" in result.stdout
    assert not any(line.startswith("FAKE ROW") for line in result.stdout.splitlines())
    as_json = cli("events", "--json", "--since", "1h")
    assert (
        "\x1b" not in as_json.stdout
        and json.loads(as_json.stdout.splitlines()[0])["event_name"] == hostile["event_name"]
    )
