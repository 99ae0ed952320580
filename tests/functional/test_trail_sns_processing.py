"""Attach mode through the processor: a trail's SNS message naming organization-layout log files of
several member accounts; every detection stored once and alerted once, with its account."""

from __future__ import annotations

import json
from typing import Any

from trailwatch_processor.handler import handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, Env

MEMBERS = ["111111111111", "222222222222", "333333333333"]


def test_trail_sns_message_of_three_member_accounts(env: Env, deps: Any) -> None:
    keys, ids = [], {}
    for account in MEMBERS:
        rec = f.root_login()
        rec["recipientAccountId"] = account
        keys.append(env.put_log([rec], f.log_key(account=account, org="o-abc123defg", prefix="org")))
        ids[rec["eventID"]] = account
    body = json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": keys})
    assert handle_batch(f.sqs_event(body), deps)["batchItemFailures"] == []
    assert handle_batch(f.sqs_event(body), deps)["batchItemFailures"] == []  # redelivered: no duplicates
    items = env.items()
    assert {event_id: items[event_id]["account_id"] for event_id in ids} == ids
    alerts = env.alerts()
    assert len(alerts) == len(MEMBERS)
    assert sorted(a["events"][0]["account"] for a in alerts) == MEMBERS
