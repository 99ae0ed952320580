"""Tamper alerts through a trail's SNS topic (attach mode, trail-sns): the message names keys only, so a
key gone when read is a removal, and a second version of the key is an overwrite; each alerted once."""

from __future__ import annotations

import json
from typing import Any

from trailwatch_processor.handler import handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, Env

DELETED = "CloudTrail log object deleted"
OVERWRITTEN = "CloudTrail log object overwritten"


def _trail_message(*keys: str) -> dict[str, Any]:
    return f.sqs_event(json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": list(keys)}))


def _tamper(env: Env, title: str) -> list[dict[str, Any]]:
    return [a for a in env.alerts() if a.get("title") == title]


def test_announced_key_gone_when_read_is_one_removal_alert(env: Env, deps: Any) -> None:
    key = env.put_log([f.root_login()])
    env.clients.s3.delete_object(Bucket=BUCKET, Key=key)
    assert handle_batch(_trail_message(key), deps)["batchItemFailures"] == []  # done, not to the DLQ
    assert handle_batch(_trail_message(key), deps)["batchItemFailures"] == []  # redelivered: once
    (alert,) = _tamper(env, DELETED)
    assert alert["source"] == f"s3://{BUCKET}/{key}"


def test_overwritten_key_announced_by_the_trail_is_one_overwrite_alert(env: Env, deps: Any) -> None:
    env.clients.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = env.put_log([f.root_login()])
    env.put_log([f.record("DescribeInstances")], key)  # the evidence replaced
    assert handle_batch(_trail_message(key), deps)["batchItemFailures"] == []
    assert handle_batch(_trail_message(key), deps)["batchItemFailures"] == []
    assert len(_tamper(env, OVERWRITTEN)) == 1


def test_a_missing_key_of_an_s3_notification_still_fails_the_message(env: Env, deps: Any) -> None:
    """Unchanged outside trail-sns: an S3 event names a version, a missing one goes to the DLQ."""
    key = f.log_key()
    failures = handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)["batchItemFailures"]
    assert len(failures) == 1
    assert _tamper(env, DELETED) == []
