"""`trailwatch events --account`: the events of one member account, from an organization-layout log."""

from __future__ import annotations

from typing import Any

import pytest
from trailwatch import events as cli_events
from trailwatch_processor.handler import handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, Env
from tests.functional.test_events_by_rule import query

MEMBERS = ["111111111111", "222222222222"]


@pytest.fixture
def stored(env: Env, deps: Any) -> dict[str, set[str]]:
    """Two root logins per member account, stored by the processor; the event ids per account."""
    by_account: dict[str, set[str]] = {}
    for account in MEMBERS:
        recs = [f.root_login() for _ in range(2)]
        for rec in recs:
            rec["recipientAccountId"] = account
        key = env.put_log(recs)
        assert handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)["batchItemFailures"] == []
        by_account[account] = {rec["eventID"] for rec in recs}
    return by_account


@pytest.mark.parametrize("account", [*MEMBERS, "333333333333", None])
def test_events_of_one_account(env: Env, stored: dict[str, set[str]], account: str | None) -> None:
    items = query(env, account=account)
    expected = set().union(*stored.values()) if account is None else stored.get(account, set())
    assert {item["EventId"] for item in items} == expected
    assert all(item["account_id"] == account for item in items if account)


def test_account_and_rule_filters_combine(env: Env, stored: dict[str, set[str]]) -> None:
    items = query(env, "StopLogging", account=MEMBERS[0])
    assert items == []


@pytest.mark.parametrize("bad", ["12345", "abcdefghijkl", "1234567890123"])
def test_bad_account_is_a_usage_error(bad: str) -> None:
    with pytest.raises(cli_events.UsageError, match="12-digit"):
        cli_events.run_events(None, None, since="1h", rule=None, severity=None, limit=5, account=bad)  # type: ignore[arg-type]
