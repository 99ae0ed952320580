"""Every event a rule matched is found by that rule: items the processor stored, read by `events`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from trailwatch import events as cli_events
from trailwatch_processor.handler import handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, TABLE, Env

ROOT_RULE = "cis-4.3-root-account-usage"
ROOT = {
    "type": "Root",
    "principalId": f.ACCOUNT,
    "arn": f"arn:aws:iam::{f.ACCOUNT}:root",
    "accountId": f.ACCOUNT,
}


class _Aws:
    """What query_events uses of trailwatch.session.Aws: the test's DynamoDB client."""

    def __init__(self, env: Env) -> None:
        self.env = env

    def client(self, name: str) -> Any:
        assert name == "dynamodb"
        return self.env.clients.dynamodb


def query(env: Env, rule: str | None = None, **filters: Any) -> list[dict]:
    """``trailwatch events`` over the last week of the test's table (``filters``: e.g. ``account``)."""
    return cli_events.query_events(
        _Aws(env),
        TABLE,
        since=timedelta(days=7),
        rule=rule,
        min_severity=None,
        limit=100,
        now=env.clock.now(),
        **filters,
    )


def _listed(env: Env, rule: str | None) -> list[str]:
    return [item["EventId"] for item in query(env, rule)]


@pytest.fixture
def stored(env: Env, deps: Any) -> dict[str, dict]:
    """A CreateUser by root (two rules, root usage primary), a CreateUser by a user, a root console login."""
    recs = {
        "by-root": f.record("CreateUser", eventSource="iam.amazonaws.com", userIdentity=ROOT),
        "by-user": f.record("CreateUser", eventSource="iam.amazonaws.com"),
        "root-login": f.root_login(),
    }
    key = env.put_log(list(recs.values()))
    assert handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)["batchItemFailures"] == []
    items = env.items()
    by_root = items[recs["by-root"]["eventID"]]
    assert by_root["rule_id"] == ROOT_RULE and set(by_root["rule_ids"]) == {ROOT_RULE, "CreateUser"}
    return recs


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("CreateUser", {"by-root", "by-user"}),  # by-root is stored under root usage, found by CreateUser too
        (ROOT_RULE, {"by-root", "root-login"}),
        ("StopLogging", set()),
        (None, {"by-root", "by-user", "root-login"}),
    ],
)
def test_every_event_a_rule_matched_is_listed_by_it(
    env: Env, stored: dict[str, dict], rule: str | None, expected: set[str]
) -> None:
    listed = _listed(env, rule)
    assert len(listed) == len(set(listed))  # each event once
    assert set(listed) == {stored[name]["eventID"] for name in expected}
