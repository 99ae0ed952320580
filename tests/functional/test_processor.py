"""The processor end to end on moto: input shapes, skips, store + alert exactly once (redelivery, crashes,
concurrency), failure isolation and every failure path."""

from __future__ import annotations

import gzip
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from trailwatch_processor import alerts, noise, processor, store
from trailwatch_processor.deps import Deps
from trailwatch_processor.handler import handle_batch
from trailwatch_processor.notifications import ObjectRef

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, TABLE, Env

CONFIG = {
    "monitored_events": ["CreateUser"],
    "rules": [
        {"id": "console-login", "title": "Console sign-in", "severity": "medium",
         "pattern": {"eventName": ["ConsoleLogin"]}},
        {"id": "root-usage", "title": "Root account used", "severity": "critical",
         "pattern": {"userIdentity": {"type": ["Root"]}}},
    ],
}  # fmt: skip


@pytest.fixture
def deps(deps: Any, env: Env) -> Any:
    """The conftest Deps, with this module's config in the bucket."""
    env.put_config(CONFIG)
    return deps


def _failed(response: dict) -> list[str]:
    return [entry["itemIdentifier"] for entry in response["batchItemFailures"]]


def _mixed_records() -> list[dict]:
    return [
        f.record("DescribeInstances"),
        f.root_login(),
        f.root_login(),
        f.record("CreateUser", eventSource="iam.amazonaws.com"),
        f.record("ConsoleLogin", eventSource="signin.amazonaws.com"),
        f.record("ListBuckets"),
    ]


def _events(env: Env) -> dict[str, dict]:
    """The event items (operational markers such as checkpoints carry a ``kind`` and are left out)."""
    return {k: v for k, v in env.items().items() if "kind" not in v}


def _by_rule(alerts_seen: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alert in alerts_seen:
        out.setdefault(alert["rule"], []).extend(alert["eventIDs"])
    return out


# --- input shapes and skips -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda key: f.s3_notification(BUCKET, key), id="s3-raw"),
        pytest.param(lambda key: f.sns_envelope(f.s3_notification(BUCKET, key)), id="sns-envelope"),
        pytest.param(lambda key: f.eventbridge_object_created(BUCKET, key), id="eventbridge"),
    ],
)
@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain-json"])
def test_each_shape_stores_and_alerts(env: Env, deps: Any, wrap: Any, compress: bool) -> None:
    recs = _mixed_records()
    suffix = ".json.gz" if compress else ".json"
    key = env.put_log(recs, f.log_key(prefix="odd prefix+x", suffix=suffix), compress=compress)
    response = handle_batch(f.sqs_event(wrap(key)), deps)
    assert _failed(response) == []
    items = _events(env)
    matched = [r for r in recs if r["eventName"] in ("ConsoleLogin", "CreateUser")]
    assert set(items) == {r["eventID"] for r in matched}
    by_rule = _by_rule(env.alerts())
    assert sorted(by_rule) == ["CreateUser", "console-login", "root-usage"]  # one message per primary rule
    assert sorted(by_rule["root-usage"]) == sorted(r["eventID"] for r in recs[1:3])
    assert by_rule["console-login"] == [recs[4]["eventID"]]
    assert all(item["alert_status"] == "sent" and item["alert_message_id"] for item in items.values())
    assert {items[r["eventID"]]["log_key"] for r in matched} == {key}


@pytest.mark.parametrize(
    "key",
    [
        "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/15/123456789012_CloudTrail-Digest_x.json.gz",
        "AWSLogs/123456789012/CloudTrail-Insight/us-east-1/2024/01/15/i.json.gz",
        "config/monitored_events.json",
        "some/other/file.txt",
    ],
)
def test_non_log_keys_are_skipped_without_reading(env: Env, deps: Any, key: str) -> None:
    # The objects do not even exist: a skip must not read them.
    response = handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)
    assert _failed(response) == []
    assert _events(env) == {} and env.alerts() == []


def test_skip_result_and_log_line(env: Env, deps: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    key = "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/15/d.json.gz"
    result = processor.process_object(ObjectRef(BUCKET, key), deps)
    assert result.skipped and result.kind == "digest"
    [line] = [r for r in caplog.records if getattr(r, "data", {}).get("key") == key]
    assert "skipped" in line.getMessage() and line.data["kind"] == "digest"


def test_test_event_is_acknowledged(env: Env, deps: Any) -> None:
    response = handle_batch(
        f.sqs_event(f.s3_test_event(BUCKET), f.sns_envelope(f.s3_test_event(BUCKET))), deps
    )
    assert _failed(response) == [] and env.alerts() == []


def test_one_structured_log_line_per_file(env: Env, deps: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    key = env.put_log(_mixed_records())
    result = processor.process_object(ObjectRef(BUCKET, key), deps)
    [line] = [r for r in caplog.records if getattr(r, "data", {}).get("key") == key]
    data = line.data
    assert {k: data[k] for k in ("records", "matched", "stored", "alerts")} == {
        "records": 6,
        "matched": 4,
        "stored": 4,
        "alerts": 3,
    }
    assert isinstance(data["ms"], float) and data == result.log_fields()


# --- exactly once -------------------------------------------------------------------------------------


def test_same_batch_three_times_same_table_no_extra_alert(env: Env, deps: Any) -> None:
    keys = [env.put_log(_mixed_records()) for _ in range(2)]
    batch = f.sqs_event(*(f.s3_notification(BUCKET, k) for k in keys))
    assert _failed(handle_batch(batch, deps)) == []
    first_items, first_alerts = _events(env), list(env.alerts())
    assert len(first_items) == 8 and len(first_alerts) == 6
    for _ in range(2):
        env.clock.advance(3600)
        assert _failed(handle_batch(batch, deps)) == []
    assert _events(env) == first_items
    assert len(env.alerts()) == 6


def test_same_event_in_two_files_is_stored_and_alerted_once(env: Env, deps: Any) -> None:
    rec = f.root_login()
    k1, k2 = env.put_log([rec]), env.put_log([rec, f.record("CreateUser")])
    assert (
        _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, k1), f.s3_notification(BUCKET, k2)), deps))
        == []
    )
    ids = [i for a in env.alerts() for i in a["eventIDs"]]
    assert sorted(ids) == sorted(set(ids)) and rec["eventID"] in ids and len(ids) == 2
    assert _events(env)[rec["eventID"]]["log_key"] == k1


def test_records_without_event_id_are_stored_and_alerted_once(env: Env, deps: Any) -> None:
    recs = [f.root_login(), f.root_login(sourceIPAddress="203.0.113.1")]
    for rec in recs:
        del rec["eventID"]
    key = env.put_log([*recs, dict(recs[0])])  # an exact duplicate inside the file too
    batch = f.sqs_event(f.s3_notification(BUCKET, key))
    for _ in range(2):
        assert _failed(handle_batch(batch, deps)) == []
    items = _events(env)
    assert len(items) == 2 and all(k.startswith("tw-") for k in items)
    [alert] = env.alerts()
    assert sorted(alert["eventIDs"]) == sorted(items) and alert["count"] == 2


class FlakySns:
    """Wraps the SNS client: ``fail`` publishes raise (a ClientError, or ``exc``) before reaching SNS;
    ``published`` holds the arguments of those that reached it."""

    def __init__(self, sns: Any, fail: int = 1, exc: BaseException | None = None) -> None:
        self.sns, self.fail, self.exc, self.calls = sns, fail, exc, 0
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict:
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            raise self.exc or ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "Publish")
        self.published.append(kwargs)
        return self.sns.publish(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sns, name)


def test_publish_failure_fails_the_message_and_the_retry_alerts_once(env: Env, deps: Any) -> None:
    key = env.put_log(_mixed_records())
    batch = f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["m1"])
    deps.sns = FlakySns(env.clients.sns, fail=1)
    assert _failed(handle_batch(batch, deps)) == ["m1"]
    first = env.alerts()
    assert len(first) == 2  # the other two rules' messages went out; the failed one did not
    pending = [i for i in _events(env).values() if i["alert_status"] != "sent"]
    assert pending and all(i["alert_status"] == "pending" for i in pending)  # claim released
    assert _failed(handle_batch(batch, deps)) == []
    assert _failed(handle_batch(batch, deps)) == []
    by_rule = _by_rule(env.alerts())
    assert len(env.alerts()) == 3 and sorted(by_rule) == ["CreateUser", "console-login", "root-usage"]
    assert all(i["alert_status"] == "sent" for i in _events(env).values())


class Killed(BaseException):
    """A crash of the invocation (timeout, OOM): nothing in the function gets to clean up."""


def test_crash_between_store_and_alert_ends_with_exactly_one_alert(env: Env, deps: Any) -> None:
    recs = _mixed_records()
    key = env.put_log(recs)
    batch = f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["m1"])
    deps.sns = FlakySns(env.clients.sns, fail=1, exc=Killed())
    with pytest.raises(Killed):
        handle_batch(batch, deps)
    # New items are born claimed by the attempt that writes them: the crash left all four ``sending``.
    states = sorted(i["alert_status"] for i in _events(env).values())
    assert states == ["sending"] * 4 and env.alerts() == []
    # Redelivered while the dead claim is still fresh: nothing is sent twice, the message fails to come back.
    env.clock.advance(10)
    assert _failed(handle_batch(batch, deps)) == ["m1"]
    # Redelivered after the claim went stale (visibility timeout >= 6x the function timeout).
    env.clock.advance(deps.claim_stale_seconds + 1)
    assert _failed(handle_batch(batch, deps)) == []
    assert _failed(handle_batch(batch, deps)) == []
    by_rule = _by_rule(env.alerts())
    matched = sorted(r["eventID"] for r in recs if r["eventName"] in ("ConsoleLogin", "CreateUser"))
    assert sorted(i for ids in by_rule.values() for i in ids) == matched  # each event exactly once
    assert all(i["alert_status"] == "sent" for i in _events(env).values())


def test_crash_after_claims_before_publish_kill_point(env: Env, deps: Any, monkeypatch) -> None:
    key = env.put_log([f.root_login(), f.root_login()])
    batch = f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["m1"])
    real_build = alerts.build_alert

    def die(alert: alerts.Alert) -> alerts.SnsMessage:
        raise Killed()

    monkeypatch.setattr(alerts, "build_alert", die)
    with pytest.raises(Killed):
        handle_batch(batch, deps)
    assert {i["alert_status"] for i in _events(env).values()} == {"sending"}
    monkeypatch.setattr(alerts, "build_alert", real_build)
    env.clock.advance(deps.claim_stale_seconds + 1)
    assert _failed(handle_batch(batch, deps)) == []
    [alert] = env.alerts()
    assert alert["count"] == 2


def test_concurrent_duplicate_delivery_interleaved(env: Env, deps: Any) -> None:
    """Invocation B runs the same message while A is between claiming and publishing."""
    key = env.put_log([f.root_login(), f.record("CreateUser")])
    batch = f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["m1"])
    results: list[dict] = []

    class Interleave(FlakySns):
        def publish(self, **kwargs: Any) -> dict:
            if not results:
                results.append(handle_batch(batch, deps_b))
            return self.sns.publish(**kwargs)

    deps_b = Deps(**{**vars(deps)})
    deps.sns = Interleave(env.clients.sns, fail=0)
    assert _failed(handle_batch(batch, deps)) == []
    assert _failed(results[0]) == ["m1"]  # B saw A's live claims: it sent nothing and will come back
    assert _failed(handle_batch(batch, deps_b)) == []  # B's redelivery finds everything sent
    assert sorted(a["rule"] for a in env.alerts()) == ["CreateUser", "root-usage"]


class AtomicCalls:
    """Each API call runs alone, as each DynamoDB request is atomic in the service. moto in-process does not
    lock between a condition check and the write; our code still interleaves freely between calls."""

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            with self._lock:
                return real(**kwargs)

        return call


def test_concurrent_duplicate_delivery_threads(env: Env, deps: Any) -> None:
    recs = [f.root_login() for _ in range(5)] + [f.record("CreateUser") for _ in range(5)]
    key = env.put_log(recs)
    batch = f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["m1"])
    barrier = threading.Barrier(2)
    out: list[dict] = []
    deps.dynamodb = AtomicCalls(env.clients.dynamodb)

    def run() -> None:
        barrier.wait()
        out.append(handle_batch(batch, Deps(**{**vars(deps)})))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(out) == 2
    # Whoever failed comes back later (SQS) and must not alert again.
    for response in out:
        if _failed(response):
            assert _failed(handle_batch(batch, deps)) == []
    ids = [i for a in env.alerts() for i in a["eventIDs"]]
    assert sorted(ids) == sorted(r["eventID"] for r in recs)


# --- failure paths -------------------------------------------------------------------------------------


class ThrottledDynamo:
    """Wraps DynamoDB: the first ``fail`` calls of ``method`` are throttled (after botocore's own retries)."""

    def __init__(self, ddb: Any, method: str, fail: int = 1) -> None:
        self.ddb, self.method, self.fail = ddb, method, fail

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.ddb, name)
        if name != self.method:
            return real

        def call(**kwargs: Any) -> Any:
            if self.fail > 0:
                self.fail -= 1
                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                    name,
                )
            return real(**kwargs)

        return call


@pytest.mark.parametrize(
    ("method", "fail"), [("transact_write_items", 1), ("transact_write_items", 3), ("batch_get_item", 1)]
)
def test_throttled_dynamodb_fails_the_message_and_retry_completes(
    env: Env, deps: Any, method: str, fail: int
) -> None:
    recs = _mixed_records()
    key = env.put_log(recs)
    batch = f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["m1"])
    deps.dynamodb = ThrottledDynamo(env.clients.dynamodb, method, fail)
    attempts = 0
    while _failed(handle_batch(batch, deps)):
        attempts += 1
        assert attempts < 5
    assert attempts >= 1
    assert all(i["alert_status"] == "sent" for i in _events(env).values()) and len(_events(env)) == 4
    ids = [i for a in env.alerts() for i in a["eventIDs"]]
    assert sorted(ids) == sorted(_events(env))


def test_one_bad_message_never_fails_its_batch(env: Env, deps: Any, caplog: pytest.LogCaptureFixture) -> None:
    good = env.put_log([f.root_login()])
    corrupt = f.log_key()
    env.clients.s3.put_object(Bucket=BUCKET, Key=corrupt, Body=gzip.compress(b'{"Records": [{"a": 1}, tru'))
    not_gzip = f.log_key()
    env.clients.s3.put_object(Bucket=BUCKET, Key=not_gzip, Body=b"\x1f\x8bthis is not gzip")
    missing = f.log_key()
    batch = f.sqs_event(
        f.s3_notification(BUCKET, good),
        "this is not json",
        f.s3_notification(BUCKET, corrupt),
        f.s3_notification(BUCKET, missing),
        f.s3_notification(BUCKET, not_gzip),
        json.dumps({"unexpected": True}),
        message_ids=["good", "bad-body", "corrupt", "missing", "not-gzip", "unknown-shape"],
    )
    response = handle_batch(batch, deps)
    assert _failed(response) == ["bad-body", "corrupt", "missing", "not-gzip", "unknown-shape"]
    assert len(env.alerts()) == 1
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert f"corrupt log file in message corrupt: s3://{BUCKET}/{corrupt}: " in text
    assert "DLQ after maxReceiveCount" in text
    assert f"message missing is gone: s3://{BUCKET}/{missing}: " in text and "NoSuchKey" in text
    assert "unparseable message bad-body" in text


def test_corrupt_file_still_alerts_what_was_stored_before_the_fault(env: Env, deps: Any) -> None:
    """A truncated file: whatever was read and stored is alerted; the message still fails (to the DLQ)."""
    rec = f.root_login()
    head = json.dumps({"Records": [rec]})[:-2]  # cut inside the closing of the list
    key = f.log_key()
    env.clients.s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(head.encode() + b', {"x":'))
    response = handle_batch(f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["m"]), deps)
    assert _failed(response) == ["m"]
    stored = _events(env)
    assert list(stored) == [rec["eventID"]] and stored[rec["eventID"]]["alert_status"] == "sent"
    assert [i for a in env.alerts() for i in a["eventIDs"]] == [rec["eventID"]]


def test_not_an_sqs_event_raises(deps: Any) -> None:
    with pytest.raises(ValueError, match="not an SQS batch"):
        handle_batch({"foo": 1}, deps)


def test_message_without_body_fails_alone(env: Env, deps: Any) -> None:
    event = f.sqs_event(f.s3_test_event(BUCKET), message_ids=["ok"])
    event["Records"].append({"messageId": "nobody"})
    assert _failed(handle_batch(event, deps)) == ["nobody"]


# --- limits -------------------------------------------------------------------------------------------


def test_500_kb_record_is_stored_truncated(env: Env, deps: Any) -> None:
    rec = f.root_login(requestParameters={"blob": "z" * 500_000})
    key = env.put_log([rec])
    assert _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)) == []
    item = _events(env)[rec["eventID"]]
    assert item["raw_truncated"] is True and len(item["raw"]) > 300_000
    raw = env.clients.dynamodb.get_item(TableName=TABLE, Key={"EventId": {"S": rec["eventID"]}})["Item"]
    assert store.item_size(raw) <= store.ITEM_LIMIT_BYTES
    [alert] = env.alerts()
    assert alert["eventIDs"] == [rec["eventID"]]


def test_long_unicode_rule_title_gives_a_valid_subject(env: Env, deps: Any) -> None:
    title = "Connexion « root » détectée — ⚠️ vérifiez immédiatement\nligne 2 " * 5
    env.put_config({"rules": [{"id": "root-usage", "title": title, "severity": "critical",
                               "pattern": {"userIdentity": {"type": ["Root"]}}}]})  # fmt: skip
    key = env.put_log([f.root_login()])
    deps.sns = spy = FlakySns(env.clients.sns, fail=0)
    assert _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)) == []
    [call] = spy.published
    subject = call["Subject"]
    assert len(subject) <= 100 and subject.isascii() and "\n" not in subject
    assert subject.startswith(f"[trailwatch] CRITICAL root-usage {f.ACCOUNT}: Connexion")
    assert subject.endswith("(1)")
    [alert] = env.alerts()
    assert alert["title"].startswith("Connexion « root »")


def test_many_matches_one_message_per_rule(env: Env, deps: Any) -> None:
    recs = [f.root_login() for _ in range(60)]
    key = env.put_log(recs)
    assert _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)) == []
    [alert] = env.alerts()
    assert alert["count"] == 60 and sorted(alert["eventIDs"]) == sorted(r["eventID"] for r in recs)
    assert {i["alert_message_id"] for i in _events(env).values()} == {alert_id(env, recs[0])}


def test_env_items_is_what_a_scan_returns(env: Env, deps: Any) -> None:
    """The fixture reads moto's table directly (a Scan costs ~3 ms of CPU per item in moto): the same items,
    markers and event items with every kind of attribute the processor writes, as a paginated Scan."""
    from trailwatch_processor import markers

    key = env.put_log([*_mixed_records(), f.root_login(requestParameters={"a": [1, {"b": None}]})])
    assert _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)) == []
    scanned: dict[str, dict] = {}
    for page in env.clients.dynamodb.get_paginator("scan").paginate(TableName=TABLE, Limit=3):
        for item in page["Items"]:
            if not item["EventId"]["S"].startswith(markers.LAST_PROCESSED_PREFIX):
                scanned[item["EventId"]["S"]] = store.plain(item)
    assert len(scanned) >= 4 and env.items() == scanned


def alert_id(env: Env, rec: dict) -> str:
    return _events(env)[rec["eventID"]]["alert_message_id"]


@pytest.mark.parametrize(
    "config",
    [None, {"monitored_events": ["ConsoleLogin", "CreateUser", "PutBucketPolicy", "AssumeRole"]}],
    ids=["bundled-default", "monitored-events"],
)
def test_shared_cloudtrail_files_go_through(env: Env, deps: Any, config: dict | None) -> None:
    from tests.conftest import shared_cloudtrail_files

    if config is None:
        env.clients.s3.delete_object(Bucket=BUCKET, Key="config/monitored_events.json")
    else:
        env.put_config(config)
    bodies = []
    for path in shared_cloudtrail_files():
        key = f.log_key()
        env.clients.s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(path.read_bytes()))
        bodies.append(f.s3_notification(BUCKET, key))
    assert _failed(handle_batch(f.sqs_event(*bodies), deps)) == []
    events = _events(env)
    assert len(events) > 0
    # Every stored event is alerted, but those the pack's noise control keeps quiet (CIS 4.6's threshold).
    quiet = [e for e in events.values() if e["alert_status"] in noise.QUIET_STATUSES]
    assert all(e["alert_status"] == "sent" for e in events.values() if e not in quiet)
    assert sum(a["count"] for a in env.alerts()) == len(events) - len(quiet)


# --- entry point and settings ----------------------------------------------------------------------------


class FakeContext:
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def test_lambda_entry_point_takes_its_settings_from_the_environment(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler Lambda calls reads table, topic, config, retention and log level from the environment, and
    sets up logging once per container, not per invocation."""
    from trailwatch_processor import handler as entry

    for name, value in {
        "EVENTS_TABLE": TABLE,
        "ALERT_TOPIC_ARN": env.settings.alert_topic_arn,
        "CONFIG_BUCKET": BUCKET,
        "CONFIG_KEY": "config/monitored_events.json",
        "RETENTION_DAYS": "7",
        "LOG_LEVEL": "debug",
    }.items():
        monkeypatch.setenv(name, value)
    levels: list[str] = []
    monkeypatch.setattr(entry, "setup_logging", levels.append)
    monkeypatch.setattr(entry, "_container_deps", None)  # a cold container: earlier tests warmed this one
    key = env.put_log([f.root_login()])
    event = f.sqs_event(f.s3_notification(BUCKET, key))
    assert entry.handler(event, FakeContext()) == {"batchItemFailures": []}
    assert entry.handler(event, FakeContext()) == {"batchItemFailures": []}
    assert levels == ["DEBUG"]
    [item] = [v for k, v in _events(env).items() if not k.startswith("trailwatch#")]  # not config markers
    stored_at = datetime.strptime(item["stored_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert item["expires_at"] == int(stored_at.timestamp()) + 7 * 86400
    # The event's alert, and the one announcement of the config the container put in force.
    assert sorted(a["severity"] for a in env.alerts()) == ["critical", "info"]


def test_json_log_lines() -> None:
    from trailwatch_processor.handler import JsonFormatter

    record = logging.LogRecord(
        "trailwatch_processor", logging.INFO, __file__, 1, "processed %s", ("k",), None
    )
    record.data = {"key": "k", "records": 3}
    assert json.loads(JsonFormatter().format(record)) == {
        "level": "INFO",
        "logger": "trailwatch_processor",
        "message": "processed k",
        "key": "k",
        "records": 3,
    }


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "EVENTS_TABLE, ALERT_TOPIC_ARN, CONFIG_BUCKET"),
        (
            {"EVENTS_TABLE": "t", "ALERT_TOPIC_ARN": "a", "CONFIG_BUCKET": "b", "RETENTION_DAYS": "x"},
            "RETENTION_DAYS",
        ),
        (
            {"EVENTS_TABLE": "t", "ALERT_TOPIC_ARN": "a", "CONFIG_BUCKET": "b", "RETENTION_DAYS": "0"},
            "positive",
        ),
    ],
)
def test_settings_errors_name_the_variable(environ: dict, message: str) -> None:
    from trailwatch_processor.aws import Settings, SettingsError

    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_settings_defaults() -> None:
    from trailwatch_processor.aws import Settings

    s = Settings.from_env({"EVENTS_TABLE": "t", "ALERT_TOPIC_ARN": "a", "CONFIG_BUCKET": "b"})
    assert (s.config_key, s.retention_days, s.log_level, s.claim_stale_seconds) == (
        "config/monitored_events.json",
        90,
        "INFO",
        None,
    )


# --- store on DynamoDB (moto) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """What build_item reads of a rule."""

    id: str
    severity: str = "high"


def _item(record: dict, now: datetime) -> store.Item:
    return store.build_item(record, [_Rule("r")], log_bucket=BUCKET, log_key="k", now=now, retention_days=1)


def test_conditional_put_and_claim_state_machine(env: Env) -> None:
    ddb, now = env.clients.dynamodb, env.clock.now()
    item = _item(f.root_login(), now)
    event_id = item["EventId"]["S"]
    assert store.put_event(ddb, TABLE, item).created is True
    again = store.put_event(ddb, TABLE, dict(item, log_key={"S": "other"}))
    assert again.created is False and again.item["log_key"]["S"] == "k"  # the first write stands

    stale_before = now - timedelta(seconds=300)
    assert store.claim(ddb, TABLE, event_id, token="A", now=now, stale_before=stale_before).claimed
    lost = store.claim(ddb, TABLE, event_id, token="B", now=now, stale_before=stale_before)
    assert (lost.claimed, lost.status) == (False, "sending")
    later = now + timedelta(seconds=301)
    # Not stale yet one second before the threshold, stale after it.
    early = now + timedelta(seconds=299)
    assert not store.claim(
        ddb, TABLE, event_id, token="B", now=early, stale_before=now - timedelta(seconds=1)
    ).claimed
    assert store.claim(
        ddb, TABLE, event_id, token="B", now=later, stale_before=now + timedelta(seconds=1)
    ).claimed
    assert not store.mark_sent(ddb, TABLE, event_id, token="A", message_id="m-A", now=later)  # A lost it
    assert not store.release(ddb, TABLE, event_id, token="A")
    assert store.mark_sent(ddb, TABLE, event_id, token="B", message_id="m-B", now=later)
    much_later = later + timedelta(days=9)
    sent = store.claim(ddb, TABLE, event_id, token="C", now=much_later, stale_before=much_later)
    assert (sent.claimed, sent.status) == (False, "sent")  # sent is never claimed again, however old
    final = store.plain(store.get_event(ddb, TABLE, event_id))
    assert (final["alert_status"], final["alert_message_id"], final["alert_claim"]) == ("sent", "m-B", "B")
    missing = store.claim(ddb, TABLE, "nope", token="D", now=later, stale_before=later)
    assert (missing.claimed, missing.status) == (False, None)


def test_release_returns_a_claim_to_pending(env: Env) -> None:
    ddb, now = env.clients.dynamodb, env.clock.now()
    item = _item(f.record(), now)
    store.put_event(ddb, TABLE, item)
    event_id = item["EventId"]["S"]
    assert store.claim(ddb, TABLE, event_id, token="A", now=now, stale_before=now).claimed
    assert store.release(ddb, TABLE, event_id, token="A")
    assert store.claim(ddb, TABLE, event_id, token="B", now=now, stale_before=now).claimed


def test_clients_use_standard_retries_and_timeouts(aws: None) -> None:
    from trailwatch_processor.aws import Clients

    clients = Clients.create()
    for client in (clients.s3, clients.dynamodb, clients.sns):
        config = client.meta.config
        assert config.retries["mode"] == "standard" and config.retries["total_max_attempts"] >= 3
        assert config.connect_timeout <= 10 and config.read_timeout <= 60


def test_message_attributes_drive_subscription_filter_policies(env: Env, deps: Any) -> None:
    queue_url = env.sqs.create_queue(QueueName="critical-only")["QueueUrl"]
    attributes = env.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    arn = attributes["Attributes"]["QueueArn"]
    env.clients.sns.subscribe(
        TopicArn=env.settings.alert_topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={
            "RawMessageDelivery": "true",
            "FilterPolicy": json.dumps({"severity": ["critical"], "account": ["123456789012"]}),
        },
    )
    key = env.put_log(_mixed_records())
    assert _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)) == []
    got = env.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["rule"] for m in got] == ["root-usage"]
    assert len(env.alerts()) == 3


@pytest.mark.parametrize(
    ("name", "level"), [("DEBUG", logging.DEBUG), ("warning", logging.WARNING), ("loud", logging.INFO)]
)
def test_setup_logging_levels(monkeypatch: pytest.MonkeyPatch, name: str, level: int) -> None:
    from trailwatch_processor.handler import JsonFormatter, setup_logging

    root = logging.getLogger()
    handler = logging.StreamHandler()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(logging.getLogger("botocore"), "level", logging.getLogger("botocore").level)
    setup_logging(name)
    assert root.level == level and isinstance(handler.formatter, JsonFormatter)


@pytest.mark.parametrize("raw_delivery", [True, False], ids=["raw", "sns-envelope"])
def test_bodies_generated_by_s3_sns_and_sqs(env: Env, deps: Any, raw_delivery: bool) -> None:
    """Not our factories: the bodies moto's S3 -> SNS -> SQS chain produces (test event included)."""
    sns, sqs, s3 = env.clients.sns, env.sqs, env.clients.s3
    suffix = [{"Name": "suffix", "Value": ".json.gz"}]
    queue_url = f.log_delivery_queue(s3, sns, sqs, BUCKET, suffix, raw=raw_delivery)
    rec = f.root_login()
    key = env.put_log([rec], f.log_key(prefix="team a+b=c"))
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert messages, "moto delivered no notification"
    shapes = {json.loads(m["Body"]).get("Type") for m in messages}
    assert shapes == ({None} if raw_delivery else {"Notification"})
    event = {"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages]}
    assert _failed(handle_batch(event, deps)) == []
    assert _events(env)[rec["eventID"]]["log_key"] == key
    [alert] = env.alerts()
    assert alert["eventIDs"] == [rec["eventID"]]
