"""Hunt messages on moto: the hunt's rules only, every matching event stored once per hunt, each file counted
once (redelivery, concurrent duplicate, an event in two files), corrupt and missing files marked failed,
alerts only for `--alert` hunts and once per event, live state untouched."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from trailwatch_processor import hunt, hunt_markers, store
from trailwatch_processor.handler import handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, TABLE, Env

HUNT_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:hunt"
EVIL = "evil-agent/1.0"
HUNT_CONFIG = {
    "rules": [
        {"id": "evil-agent", "title": "Evil agent", "severity": "high", "pattern": {"userAgent": [EVIL]}},
        {"id": "evil-root", "severity": "critical",
         "pattern": {"userAgent": [EVIL], "userIdentity": {"type": ["Root"]}}},
    ]
}  # fmt: skip
LIVE_CONFIG = {"monitored_events": ["CreateUser"]}


@pytest.fixture(autouse=True)
def _fresh_specs() -> Iterator[None]:
    hunt._specs.clear()  # per-container cache: each test has its own moto state
    yield
    hunt._specs.clear()


@pytest.fixture
def deps(deps: Any, env: Env) -> Any:
    env.put_config(LIVE_CONFIG)
    return replace(deps, settings=replace(deps.settings, hunt_queue_arn=HUNT_QUEUE_ARN, max_receive_count=3))


def start_hunt(env: Env, hunt_id: str, *, alert: bool = False, config: dict | None = None) -> None:
    """What the CLI writes before sending: the rules and the meta item."""
    env.clients.s3.put_object(
        Bucket=BUCKET, Key=hunt.config_key(hunt_id), Body=json.dumps(config or HUNT_CONFIG)
    )
    env.clients.dynamodb.put_item(
        TableName=TABLE,
        Item=store.to_item({"EventId": hunt.meta_id(hunt_id), "kind": hunt.KIND_META, "alert": alert}),
    )


def hunt_event(keys: list[str], hunt_id: str = "h1", receive: int = 1) -> dict[str, Any]:
    event = f.sqs_event(*(hunt.message_body(hunt_id, BUCKET, key) for key in keys))
    for record in event["Records"]:
        record["eventSourceARN"] = HUNT_QUEUE_ARN
        record["attributes"]["ApproximateReceiveCount"] = str(receive)
    return event


def evil(event_name: str = "GetSecretValue", **kw: Any) -> dict:
    return f.record(event_name, userAgent=EVIL, **kw)


def items_of(env: Env, kind: str) -> dict[str, dict]:
    return {k: v for k, v in env.items().items() if v.get("kind") == kind}


def failed_ids(response: dict) -> list[str]:
    return [entry["itemIdentifier"] for entry in response["batchItemFailures"]]


def test_matches_of_the_hunt_rules_only_stored_once_and_files_counted_once(env: Env, deps: Any) -> None:
    start_hunt(env, "h1")
    shared = evil()  # delivered in two files: one event
    own = evil()
    first = env.put_log([f.record(), own, shared, f.record("CreateUser", eventSource="iam.amazonaws.com")])
    second = env.put_log([shared, f.record("ListBuckets")])

    for _ in range(2):  # the second round is a redelivery: nothing changes
        assert failed_ids(handle_batch(hunt_event([first, second]), deps)) == []
        matches = items_of(env, hunt.KIND_MATCH)
        assert len(matches) == 2
        files = {v["log_key"]: v for v in items_of(env, hunt.KIND_FILE).values()}
        assert {k: (v["status"], v["matches"]) for k, v in files.items()} == {
            first: ("done", 2),
            second: ("done", 0),
        }
    assert {v["event_id"] for v in matches.values()} == {own["eventID"], shared["eventID"]}
    for item in matches.values():
        assert item["event_day"] == hunt.results_partition("h1")
        assert "rule_id" not in item and item["primary_rule"] == "evil-agent"
        assert "alert_status" not in item
    # the live rules (CreateUser) were not evaluated, live state untouched, no alert
    assert [k for k, v in env.items().items() if "kind" not in v] == []
    assert env.alerts() == []


def test_a_file_delivered_twice_at_once_counts_once(env: Env, deps: Any) -> None:
    start_hunt(env, "h1")
    key = env.put_log([evil(), evil()])
    assert failed_ids(handle_batch(hunt_event([key, key]), deps)) == []
    files = items_of(env, hunt.KIND_FILE)
    assert [v["matches"] for v in files.values()] == [2]


def test_a_retry_after_a_crash_before_the_marker_counts_the_events_it_stored(
    env: Env, deps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_hunt(env, "h1")
    key = env.put_log([evil(), evil(), evil()])
    real_marker = hunt.marker_item

    def crash(*args: Any) -> None:
        raise RuntimeError("killed before the marker")

    monkeypatch.setattr(hunt, "marker_item", crash)
    assert len(failed_ids(handle_batch(hunt_event([key]), deps))) == 1
    assert len(items_of(env, hunt.KIND_MATCH)) == 3 and not items_of(env, hunt.KIND_FILE)
    monkeypatch.setattr(hunt, "marker_item", real_marker)
    assert failed_ids(handle_batch(hunt_event([key], receive=2), deps)) == []
    assert [v["matches"] for v in items_of(env, hunt.KIND_FILE).values()] == [3]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not gzip, not json", "LogFileError"),
        (None, "ObjectMissingError"),
    ],
    ids=["corrupt", "missing"],
)
def test_a_corrupt_or_missing_file_is_marked_failed_at_once(
    env: Env, deps: Any, body: bytes | None, error: str
) -> None:
    start_hunt(env, "h1")
    key = f.log_key()
    if body is not None:
        env.clients.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    assert failed_ids(handle_batch(hunt_event([key]), deps)) == []
    (marker,) = items_of(env, hunt.KIND_FILE).values()
    assert marker["status"] == "failed" and marker["error"].startswith(error)


class Failing:
    """``client`` whose ``method`` raises AWS error ``code`` on the calls ``when`` picks (default: all)."""

    def __init__(
        self, client: Any, method: str, code: str, when: Callable[[dict[str, Any]], bool] = lambda kw: True
    ) -> None:
        self.client, self.method, self.code, self.when = client, method, code, when

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)
        if name != self.method:
            return real

        def call(**kwargs: Any) -> Any:
            if self.when(kwargs):
                operation = self.client.meta.method_to_api_mapping[name]
                raise ClientError({"Error": {"Code": self.code, "Message": f"{self.code} (test)"}}, operation)
            return real(**kwargs)

        return call


def test_an_aws_error_is_retried_then_marked_failed_on_the_last_receive(
    env: Env, deps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_hunt(env, "h1")
    key = env.put_log([evil()])
    throttled = replace(deps, s3=Failing(deps.s3, "get_object", "SlowDown", when=lambda kw: kw["Key"] == key))
    assert len(failed_ids(handle_batch(hunt_event([key], receive=2), throttled))) == 1
    assert not items_of(env, hunt.KIND_FILE)
    assert failed_ids(handle_batch(hunt_event([key], receive=3), throttled)) == []
    (marker,) = items_of(env, hunt.KIND_FILE).values()
    assert (
        marker["status"] == "failed" and "SlowDown" in marker["error"] and "receive 3 of 3" in marker["error"]
    )


def test_an_alert_hunt_alerts_each_event_once_by_primary_rule(env: Env, deps: Any) -> None:
    start_hunt(env, "h1", alert=True)
    root_evil = f.root_login(userAgent=EVIL)
    key = env.put_log([evil(), evil(), root_evil])
    for receive in (1, 2):
        assert failed_ids(handle_batch(hunt_event([key], receive=receive), deps)) == []
    got = env.alerts()
    assert sorted((a["rule"], a["count"], a["hunt_id"]) for a in got) == [
        ("evil-agent", 2, "h1"),
        ("evil-root", 1, "h1"),
    ]
    assert {a["severity"] for a in got} == {"high", "critical"}
    assert all(v["alert_status"] == "sent" for v in items_of(env, hunt.KIND_MATCH).values())


def test_a_failed_publish_is_retried_and_sent_once(env: Env, deps: Any) -> None:
    start_hunt(env, "h1", alert=True)
    key = env.put_log([evil()])
    down = replace(deps, sns=Failing(deps.sns, "publish", "InternalError"))
    assert len(failed_ids(handle_batch(hunt_event([key]), down))) == 1
    assert not items_of(env, hunt.KIND_FILE) and env.alerts() == []
    assert failed_ids(handle_batch(hunt_event([key], receive=2), deps)) == []
    assert [a["count"] for a in env.alerts()] == [1]


def test_a_live_claim_elsewhere_fails_the_message_until_it_goes_stale(env: Env, deps: Any) -> None:
    start_hunt(env, "h1", alert=True)
    key = env.put_log([evil()])
    # Publish and release both fail: the match item keeps this attempt's claim, as a live invocation's would.
    stuck = replace(
        deps,
        sns=Failing(deps.sns, "publish", "InternalError"),
        dynamodb=Failing(deps.dynamodb, "update_item", "InternalError"),
    )
    assert len(failed_ids(handle_batch(hunt_event([key]), stuck))) == 1
    assert len(failed_ids(handle_batch(hunt_event([key], receive=2), deps))) == 1  # in flight: not taken
    assert env.alerts() == [] and not items_of(env, hunt.KIND_FILE)
    env.clock.advance(deps.claim_stale_seconds + 1)
    assert failed_ids(handle_batch(hunt_event([key], receive=2), deps)) == []  # stale: taken over
    assert [a["count"] for a in env.alerts()] == [1]
    assert [v["alert_status"] for v in items_of(env, hunt.KIND_MATCH).values()] == ["sent"]


def test_two_hunts_are_apart(env: Env, deps: Any) -> None:
    start_hunt(env, "h1")
    start_hunt(env, "h2")
    key = env.put_log([evil()])
    handle_batch(hunt_event([key], "h1"), deps)
    handle_batch(hunt_event([key], "h2"), deps)
    assert sorted(v["hunt_id"] for v in items_of(env, hunt.KIND_MATCH).values()) == ["h1", "h2"]
    assert sorted(v["matches"] for v in items_of(env, hunt.KIND_FILE).values()) == [1, 1]


@pytest.mark.parametrize(
    "body",
    [
        '{"trailwatch": "hunt", "hunt_id": "BAD ID", "bucket": "b", "key": "k"}',
        '{"trailwatch": "hunt", "hunt_id": "h1", "bucket": "", "key": "k"}',
        '{"Records": []}',  # an S3 notification on the hunt queue
    ],
)
def test_a_malformed_message_on_the_hunt_queue_fails(env: Env, deps: Any, body: str) -> None:
    event = f.sqs_event(body)
    event["Records"][0]["eventSourceARN"] = HUNT_QUEUE_ARN
    assert len(failed_ids(handle_batch(event, deps))) == 1


def test_an_unknown_hunt_fails_the_message(env: Env, deps: Any) -> None:
    key = env.put_log([evil()])
    assert len(failed_ids(handle_batch(hunt_event([key], "nope"), deps))) == 1
    assert not items_of(env, hunt.KIND_MATCH)


@pytest.mark.parametrize("mode", ["error", "unprocessed"])
def test_a_marker_not_written_fails_its_message(
    env: Env, deps: Any, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files whose marker BatchWriteItem could not write come back (never silently unfinished)."""
    slept: list[float] = []  # the backoff between attempts (2.6 s of real sleep otherwise)
    monkeypatch.setattr(hunt_markers, "time", SimpleNamespace(sleep=slept.append))
    start_hunt(env, "h1")
    keys = [env.put_log([evil()]), env.put_log([f.record()])]
    ddb = deps.dynamodb

    class Refusing:
        def __getattr__(self, name: str) -> Any:
            return getattr(ddb, name)

        def batch_write_item(self, RequestItems: dict) -> dict:
            if mode == "error":
                raise ClientError(
                    {"Error": {"Code": "InternalServerError", "Message": "x"}}, "BatchWriteItem"
                )
            return {"UnprocessedItems": RequestItems}

    event = hunt_event(keys)
    failed = failed_ids(handle_batch(event, replace(deps, dynamodb=Refusing())))
    assert sorted(failed) == sorted(r["messageId"] for r in event["Records"])
    assert len(slept) == (hunt_markers.BATCH_WRITE_ATTEMPTS if mode == "unprocessed" else 0)
    assert not items_of(env, hunt.KIND_FILE)
    assert failed_ids(handle_batch(hunt_event(keys, receive=2), deps)) == []
    assert sorted(v["matches"] for v in items_of(env, hunt.KIND_FILE).values()) == [0, 1]
