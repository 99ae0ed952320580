"""`trailwatch events`: newest first through the ByDay/ByRule indexes (never a Scan), filters, output."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures

pytestmark = pytest.mark.usefixtures("moto_env", "small_template")

NOW = datetime.now(UTC)
ITEMS = {  # name: (age, primary rule, severity)
    "recent": (timedelta(minutes=10), "CreateUser", "medium"),
    "hours": (timedelta(hours=3), "StopLogging", "critical"),
    "yesterday": (timedelta(hours=30), "CreateUser", "low"),
    "old": (timedelta(days=10), "StopLogging", "high"),
}


@pytest.fixture
def stored(moto_env, small_template, cli, deploy_args, failing_client) -> None:
    deployed = cli(*deploy_args)
    assert deployed.exit_code == 0, deployed.output
    table = boto3.resource("dynamodb").Table("SecurityEvents")
    for name, (age, rule, severity) in ITEMS.items():
        when = NOW - age
        table.put_item(
            Item={
                "EventId": name,
                "event_name": rule,
                "event_time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "event_day": when.strftime("%Y-%m-%d"),
                "rule_id": rule,
                "rule_ids": [rule],
                "severity": severity,
                "principal_arn": f"arn:aws:iam::123456789012:user/{name}",
                "source_ip": "198.51.100.7",
                "aws_region": "us-east-1",
                "alert_status": "sent",
            }
        )
    failing_client("dynamodb", "scan", "TestForbidsScan", "events must query an index, never scan")


def _ids(output: str) -> list[str]:
    return [json.loads(line)["EventId"] for line in output.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["recent", "hours"]),
        (["--since", "7d"], ["recent", "hours", "yesterday"]),
        (["--since", "30m"], ["recent"]),
        (["--since", "7d", "--rule", "CreateUser"], ["recent", "yesterday"]),
        (["--since", "30d", "--rule", "StopLogging"], ["hours", "old"]),
        (["--since", "30d", "--severity", "high"], ["hours", "old"]),
        (["--since", "30d", "--limit", "3"], ["recent", "hours", "yesterday"]),
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
    assert lines[0].split() == ["TIME", "RULE", "SEVERITY", "EVENT", "PRINCIPAL", "SOURCE", "IP", "REGION"]
    assert "user/recent" in lines[1] and "user/hours" in lines[2] and "user/yesterday" in lines[3]
    assert "3 event(s) in the last 7d" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--since", "yesterday"], "--since 'yesterday'"),
        (["--severity", "urgent"], "--severity 'urgent'"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
@pytest.mark.usefixtures("stored")
def test_events_bad_options(cli, args, needle):
    result = cli("events", *args)
    assert result.exit_code == 2
    assert needle in result.output
