"""Hostile records through the handler on moto: each bad record sits between two
matching records; both are stored and alerted, the bad one is reported once (an operational alert naming
its index and byte offset) and, when what was recovered of it matches, stored as evidence."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from typing import Any

import pytest
from botocore.exceptions import ClientError
from trailwatch_processor import alerts, markers, store
from trailwatch_processor.handler import handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, Env
from tests.huge_gzip import gzip_bytes

CONFIG = {"rules": [{"id": "console-login", "severity": "high", "pattern": {"eventName": ["ConsoleLogin"]}}]}


@pytest.fixture
def deps(deps: Any, env: Env) -> Any:
    env.put_config(CONFIG)
    return deps


def login(event_id: str, **overrides: Any) -> dict:
    return f.record("ConsoleLogin", eventID=event_id, eventSource="signin.amazonaws.com", **overrides)


def with_member(event_id: str, tail: bytes) -> bytes:
    """A matching record's JSON text with one more member ``"x": <tail>`` at its end."""
    return json.dumps(login(event_id)).encode()[:-1] + b', "x": ' + tail + b"}"


BAD: dict[str, tuple[bytes, str | None, bool]] = {
    # name: (the bad record's bytes, issue kind reported (None: none), stored truncated)
    "lone surrogate escape": (json.dumps(login("bad", userAgent="agent\udc00")).encode(), None, False),
    "integer of 5,000 digits": (with_member("bad", b"7" * 5000), "big_integer", False),
    "nesting 1,000 deep": (with_member("bad", b"[" * 1000 + b"]" * 1000), "too_deep", True),
    "invalid UTF-8": (with_member("bad", b'"\xff\xfe"'), "invalid_utf8", False),
    "3 MB string": (with_member("bad", b'"' + b"y" * 3_000_000 + b'"'), "oversized", True),
}


def log_body(bad: bytes) -> bytes:
    before, after = (json.dumps(login(name)).encode() for name in ("before", "after"))
    return b'{"Records": [' + before + b", " + bad + b", " + after + b"]}"


def deliver(env: Env, deps: Any, raw: bytes, key: str | None = None) -> list[str]:
    key = key or f.log_key()
    env.clients.s3.put_object(Bucket=BUCKET, Key=key, Body=raw)
    response = handle_batch(f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["m"]), deps)
    return [entry["itemIdentifier"] for entry in response["batchItemFailures"]]


def operational(env: Env) -> list[dict]:
    return [a for a in env.alerts() if a.get("rule") == alerts.OPERATIONAL_RULE]


def alerted_ids(env: Env) -> list[str]:
    return sorted(i for a in env.alerts() if a.get("rule") == "console-login" for i in a["eventIDs"])


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_record_between_two_matches(env: Env, deps: Any, name: str) -> None:
    bad, kind, truncated = BAD[name]
    body = log_body(bad)
    assert deliver(env, deps, gzip.compress(body)) == []
    items = env.items()
    events = {k: v for k, v in items.items() if "kind" not in v}
    assert sorted(events) == ["after", "bad", "before"]
    assert alerted_ids(env) == ["after", "bad", "before"]
    assert all(item["alert_status"] == store.SENT for item in events.values())
    assert events["bad"]["raw_truncated"] is truncated
    assert events["bad"].get("raw_issue") == (kind if truncated else None)
    reports = operational(env)
    if kind is None:
        assert reports == []
        assert events["bad"]["user_agent"] == "agent\ufffd"
        assert json.loads(events["bad"]["raw"])["userAgent"] == "agent\udc00"
    else:
        [report] = reports
        text = json.dumps(report)
        assert f"record 1 at byte {body.index(bad)}: {kind}" in text


def test_the_report_is_sent_once_across_retries(env: Env, deps: Any) -> None:
    raw = gzip.compress(log_body(BAD["nesting 1,000 deep"][0]))
    key = f.log_key()
    assert deliver(env, deps, raw, key) == []
    assert deliver(env, deps, raw, key) == []
    assert len(operational(env)) == 1
    assert alerted_ids(env) == ["after", "bad", "before"]
    [marker] = [item for item in env.items().values() if item.get("kind") == markers.OPERATIONAL]
    assert marker["alert_status"] == store.SENT and marker["record_issues"] == "1"
    assert "log_key" not in marker  # events are selected by log_key: a marker must not look like one


class Refusing:
    """DynamoDB that refuses the item of EventId ``bad`` as the service refuses an item it cannot take: a
    transaction holding it is cancelled with ``ValidationError`` for its action (``None`` for the others),
    a PutItem of it answers ValidationException. ``error`` instead: every write answers that (transient)."""

    def __init__(self, ddb: Any, error: str | None = None) -> None:
        self.ddb, self.error = ddb, error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ddb, name)

    def _refuse(self, item: dict) -> bool:
        return item.get("EventId", {}).get("S") == "bad"

    def transact_write_items(self, TransactItems: list[dict]) -> Any:
        if self.error:
            raise ClientError({"Error": {"Code": self.error}}, "TransactWriteItems")
        refused = [self._refuse(action.get("Put", {}).get("Item", {})) for action in TransactItems]
        if any(refused):
            reasons = [{"Code": "ValidationError" if r else "None"} for r in refused]
            error = {"Error": {"Code": "TransactionCanceledException"}, "CancellationReasons": reasons}
            raise ClientError(error, "TransactWriteItems")  # type: ignore[arg-type]
        return self.ddb.transact_write_items(TransactItems=TransactItems)

    def put_item(self, **kwargs: Any) -> Any:
        if self._refuse(kwargs["Item"]):
            error = {"Error": {"Code": "ValidationException", "Message": "One or more parameter values"}}
            raise ClientError(error, "PutItem")
        return self.ddb.put_item(**kwargs)


def test_a_record_the_table_refuses_is_reported_and_the_rest_stored(env: Env, deps: Any) -> None:
    deps.dynamodb = Refusing(env.clients.dynamodb)
    body = log_body(json.dumps(login("bad")).encode())
    assert deliver(env, deps, gzip.compress(body)) == []
    assert alerted_ids(env) == ["after", "before"]
    [report] = operational(env)
    assert "record 1 at byte" in json.dumps(report) and "store_error" in json.dumps(report)
    assert "bad" not in env.items()


def test_a_throttled_write_still_fails_the_message(env: Env, deps: Any) -> None:
    """Only faults of the record itself are isolated; a transient one is retried as before."""
    deps.dynamodb = Refusing(env.clients.dynamodb, error="ProvisionedThroughputExceededException")
    assert deliver(env, deps, gzip.compress(log_body(json.dumps(login("x")).encode()))) == ["m"]
    assert operational(env) == []


def test_a_200_mb_record_in_a_200_kb_gzip_is_bounded_through_the_handler(env: Env, deps: Any) -> None:
    """A huge record (742 MB RSS before the record cap): peak traced memory of the whole invocation, moto
    included, stays far below the function's 512 MB MemorySize."""
    head = log_body(with_member("bad", b'""'))
    cut = head.index(b'"x": "') + len(b'"x": "')
    raw = gzip_bytes([(head[:cut], 1), (b"z" * (1 << 20), 200), (head[cut:], 1)])
    assert len(raw) < 250_000
    key = f.log_key()
    env.clients.s3.put_object(Bucket=BUCKET, Key=key, Body=raw)
    event = f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["m"])
    tracemalloc.start()
    started = time.perf_counter()
    try:
        response = handle_batch(event, deps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert peak < 128 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"
    assert response["batchItemFailures"] == []
    assert elapsed < 120
    items = env.items()
    assert items["bad"]["raw_truncated"] is True and items["bad"]["raw_issue"] == "oversized"
    assert alerted_ids(env) == ["after", "bad", "before"]
    [report] = operational(env)
    assert "oversized" in json.dumps(report)
