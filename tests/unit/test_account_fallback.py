"""An item's and an alert's account: the record's ``recipientAccountId``, else the account in the log
file's key (both layouts, any prefix), else the caller's ``userIdentity.accountId``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from trailwatch_processor import records, store
from trailwatch_processor.config_schema import validate_config

from tests.functional import factories as f

MEMBER = "111111111111"
CALLER = "999999999999"
KEYS = {
    "plain": f"AWSLogs/{MEMBER}/CloudTrail/eu-west-1/2024/01/15/{MEMBER}_CloudTrail_eu-west-1_x.json.gz",
    "organization": (
        f"o-exampleorg1/AWSLogs/o-exampleorg1/{MEMBER}/CloudTrail/us-east-1/2024/01/15/"
        f"{MEMBER}_CloudTrail_us-east-1_20240115T1000Z_abc.json.gz"
    ),
}
RULE = validate_config({"rules": [{"id": "r", "pattern": {"eventName": ["CreateUser"]}}]}).rules


def _record(*, recipient: str | None) -> dict:
    rec = f.record("CreateUser", recipientAccountId=recipient)
    if recipient is None:
        del rec["recipientAccountId"]
    rec["userIdentity"]["accountId"] = CALLER  # a caller from another account
    return rec


def _item_account(rec: dict, key: str) -> str | None:
    item = store.build_item(
        rec, RULE, log_bucket="b", log_key=key, now=datetime(2024, 1, 15, tzinfo=UTC), retention_days=1
    )
    return store.plain(item).get("account_id")


@pytest.mark.parametrize("layout", sorted(KEYS))
def test_recipient_account_wins_over_the_key(layout: str) -> None:
    rec = _record(recipient="222222222222")
    assert records.summary(rec, KEYS[layout])["account"] == "222222222222"
    assert _item_account(rec, KEYS[layout]) == "222222222222"


@pytest.mark.parametrize("layout", sorted(KEYS))
def test_without_recipient_the_key_names_the_account(layout: str) -> None:
    rec = _record(recipient=None)
    assert records.summary(rec, KEYS[layout])["account"] == MEMBER
    assert _item_account(rec, KEYS[layout]) == MEMBER


def test_without_recipient_or_trail_key_the_caller_account_is_left() -> None:
    rec = _record(recipient=None)
    assert records.summary(rec, "uploads/file.json.gz")["account"] == CALLER
    assert _item_account(rec, "uploads/file.json.gz") == CALLER
