"""The fast path on moto: a CloudTrail event from EventBridge (AWS's envelope, in an SQS body) is stored and
alerted like a log file's record, once however many deliveries and paths bring it; failures go to the
batch item failures, never crash the batch."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from trailwatch.local.eventbridge import envelope
from trailwatch_processor import fast_path, store
from trailwatch_processor.handler import handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, Env
from tests.functional.test_processor import FlakySns

CONFIG = {
    "monitored_events": ["CreateUser"],
    "rules": [
        {"id": "root-usage", "title": "Root account used", "severity": "critical",
         "pattern": {"userIdentity": {"type": ["Root"]}}},
        {"id": "denied", "title": "Access denied", "severity": "medium",
         "pattern": {"errorCode": [{"prefix": "AccessDenied"}]},
         "exclude": [{"sourceIPAddress": ["delivery.logs.amazonaws.com"]}]},
    ],
}  # fmt: skip


@pytest.fixture
def deps(deps: Any, env: Env) -> Any:
    env.put_config(CONFIG)
    return deps


def _at(env: Env, seconds_before: float) -> str:
    """An eventTime ``seconds_before`` the injected clock's now, as CloudTrail writes it."""
    return (env.clock.now() - timedelta(seconds=seconds_before)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _body(rec: dict) -> str:
    """The SQS body EventBridge delivers: the event itself (a new envelope id per delivery, as AWS's)."""
    return json.dumps(envelope(rec, f.ACCOUNT))


def _batch(*recs: dict, ids: list[str] | None = None) -> dict:
    return f.sqs_event(*(_body(r) for r in recs), message_ids=ids)


def _failed(response: dict) -> list[str]:
    return [entry["itemIdentifier"] for entry in response["batchItemFailures"]]


def _events(env: Env) -> dict[str, dict]:
    return {k: v for k, v in env.items().items() if "kind" not in v}


def test_event_is_stored_and_alerted_with_path_and_latency(env: Env, deps: Any) -> None:
    rec = f.root_login(eventTime=_at(env, 3))
    assert _failed(handle_batch(_batch(rec), deps)) == []
    item = _events(env)[rec["eventID"]]
    assert item["path"] == "eventbridge" and item["rule_id"] == "root-usage"
    assert item["alert_status"] == "sent" and "log_key" not in item and "log_bucket" not in item
    [alert] = env.alerts()
    assert alert["eventIDs"] == [rec["eventID"]] and alert["path"] == "eventbridge"
    assert alert["latency_seconds"] == 3.0 and alert["events"][0]["latency_seconds"] == 3.0
    assert alert["log_key"] is None


def test_email_text_says_path_and_latency(env: Env, deps: Any) -> None:
    rec = f.root_login(eventTime=_at(env, 2))
    deps.sns = spy = FlakySns(env.clients.sns, fail=0)
    fast_path.process_event(json.loads(_body(rec)), deps)
    [sent] = spy.published
    email = json.loads(sent["Message"])["email"]
    assert "Path:     eventbridge (EventBridge fast path), alerted 2.0 s after the event" in email
    assert "Latency:  2.0 s from the event to this alert" in email
    assert sent["MessageAttributes"]["path"]["StringValue"] == "eventbridge"


def test_duplicate_deliveries_store_and_alert_once(env: Env, deps: Any) -> None:
    rec = f.root_login()
    for _ in range(3):  # at-least-once: the same event again, each time in a new envelope
        assert _failed(handle_batch(_batch(rec, rec), deps)) == []
    assert list(_events(env)) == [rec["eventID"]]
    assert len(env.alerts()) == 1


def test_log_file_later_is_recognised_not_alerted_and_names_itself(env: Env, deps: Any) -> None:
    fast, other = f.root_login(), f.record("CreateUser", eventSource="iam.amazonaws.com")
    assert _failed(handle_batch(_batch(fast), deps)) == []
    assert len(env.alerts()) == 1
    key = env.put_log([fast, other, f.record("DescribeInstances")])
    assert _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)) == []
    alerts = env.alerts()[1:]
    # Only the event the fast path never delivered is alerted, from the file (path s3).
    assert [(a["rule"], a["eventIDs"], a["path"]) for a in alerts] == [
        ("CreateUser", [other["eventID"]], "s3")
    ]
    items = _events(env)
    assert items[fast["eventID"]]["path"] == "eventbridge" and items[other["eventID"]]["path"] == "s3"
    assert items[fast["eventID"]]["log_key"] == key and items[fast["eventID"]]["log_bucket"] == BUCKET
    assert items[fast["eventID"]]["alert_status"] == "sent"


def test_log_file_first_then_fast_path_alerts_once_and_keeps_path_s3(env: Env, deps: Any) -> None:
    rec = f.root_login()
    key = env.put_log([rec])
    assert _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)) == []
    assert _failed(handle_batch(_batch(rec), deps)) == []
    [alert] = env.alerts()
    assert alert["path"] == "s3"
    item = _events(env)[rec["eventID"]]
    assert item["path"] == "s3" and item["log_key"] == key


def test_a_file_never_overwrites_the_log_key_of_another(env: Env, deps: Any) -> None:
    rec = f.root_login()
    k1, k2 = env.put_log([rec]), env.put_log([rec])
    for key in (k1, k2):
        assert _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)) == []
    assert _events(env)[rec["eventID"]]["log_key"] == k1


def test_events_no_rule_matches_are_dropped_quietly(env: Env, deps: Any) -> None:
    """The rule's pattern is a superset (excludes are applied here): an excluded or unmatched event succeeds
    without an item or an alert."""
    excluded = f.record("GetObject", errorCode="AccessDenied", sourceIPAddress="delivery.logs.amazonaws.com")
    unmatched = f.record("DescribeInstances")
    assert _failed(handle_batch(_batch(excluded, unmatched), deps)) == []
    assert _events(env) == {} and env.alerts() == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            json.dumps({"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam"}), id="no-detail"
        ),
        pytest.param(
            json.dumps({"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "detail": [1]}),
            id="detail-not-object",
        ),
        pytest.param('{"detail-type": "AWS API Call via CloudTrail", "source": ', id="truncated-json"),
        pytest.param("[" * 100_000 + "]" * 100_000 + " via CloudTrail", id="too-deep"),
    ],
)
def test_malformed_bodies_fail_alone(env: Env, deps: Any, body: str) -> None:
    good = f.root_login()
    response = handle_batch(f.sqs_event(body, _body(good), message_ids=["bad", "good"]), deps)
    assert _failed(response) == ["bad"]
    assert list(_events(env)) == [good["eventID"]] and len(env.alerts()) == 1


def test_mixed_batch_of_both_paths(env: Env, deps: Any) -> None:
    in_file, fast = f.record("CreateUser", eventSource="iam.amazonaws.com"), f.root_login()
    key = env.put_log([in_file])
    batch = f.sqs_event(f.s3_notification(BUCKET, key), _body(fast))
    assert _failed(handle_batch(batch, deps)) == []
    assert sorted((a["rule"], a["path"]) for a in env.alerts()) == [
        ("CreateUser", "s3"),
        ("root-usage", "eventbridge"),
    ]


def test_publish_failure_fails_the_message_and_the_retry_alerts_once(env: Env, deps: Any) -> None:
    rec = f.root_login()
    batch = _batch(rec, ids=["m1"])
    deps.sns = FlakySns(env.clients.sns, fail=1)
    assert _failed(handle_batch(batch, deps)) == ["m1"]
    assert _events(env)[rec["eventID"]]["alert_status"] == "pending"  # the claim was released
    assert env.alerts() == []
    for _ in range(2):
        assert _failed(handle_batch(batch, deps)) == []
    assert len(env.alerts()) == 1


def test_publish_failure_then_the_log_file_alerts_it(env: Env, deps: Any) -> None:
    """The fast path is best effort: an event it stored but could not alert is alerted from the file."""
    rec = f.root_login()
    deps.sns = FlakySns(env.clients.sns, fail=1)
    assert _failed(handle_batch(_batch(rec, ids=["m1"]), deps)) == ["m1"]
    key = env.put_log([rec])
    assert _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)) == []
    [alert] = env.alerts()
    assert alert["path"] == "s3" and alert["eventIDs"] == [rec["eventID"]]
    assert _events(env)[rec["eventID"]]["path"] == "eventbridge"


def test_live_claim_elsewhere_fails_the_message_until_sent(env: Env, deps: Any) -> None:
    """A concurrent delivery holds the claim: this one fails (comes back), and never sends a second alert."""
    rec = f.root_login()
    item = store.build_item(
        rec,
        deps.config.matcher().match(rec),
        log_bucket=None,
        log_key=None,
        now=env.clock.now(),
        retention_days=30,
        path=store.PATH_EVENTBRIDGE,
    )
    store.put_event(
        env.clients.dynamodb,
        env.settings.events_table,
        store.with_claim(item, token=uuid.uuid4().hex, now=env.clock.now()),
    )
    batch = _batch(rec, ids=["m1"])
    assert _failed(handle_batch(batch, deps)) == ["m1"]
    assert env.alerts() == []
    env.clock.advance(
        deps.claim_stale_seconds + 1
    )  # the holder died: its claim goes stale, the retry takes it
    assert _failed(handle_batch(batch, deps)) == []
    assert len(env.alerts()) == 1


def test_result_and_delivery_time(env: Env, deps: Any) -> None:
    rec = f.root_login(eventTime=_at(env, 5))
    event = json.loads(_body(rec))
    received = env.clock.now() - timedelta(seconds=1)
    result = fast_path.process_event(event, deps, received_at=received)
    assert result.stored and result.alerted and not result.duplicate
    assert result.rule_ids == ["root-usage"] and result.delivery_seconds == 4.0
    assert result.latency_seconds == 5.0
    again = fast_path.process_event(event, deps)
    assert again.duplicate and not again.stored and not again.alerted


@pytest.mark.parametrize(
    ("body", "is_event"),
    [
        pytest.param(_body(f.root_login()), True, id="api-call"),
        pytest.param(
            json.dumps(
                {**json.loads(_body(f.root_login())), "detail-type": "AWS Service Event via CloudTrail"}
            ),
            True,
            id="service-event",
        ),
        pytest.param(
            f.eventbridge_object_created(BUCKET, "AWSLogs/x via CloudTrail.json.gz"),
            False,
            id="s3-object-created",
        ),
        pytest.param(f.s3_notification(BUCKET, "AWSLogs/via CloudTrail"), False, id="s3-notification"),
        pytest.param(
            json.dumps({"detail-type": "AWS API Call via CloudTrail", "source": "custom.app", "detail": {}}),
            False,
            id="not-aws-source",
        ),
    ],
)
def test_recognised_by_its_body(body: str, is_event: bool) -> None:
    assert (fast_path.cloudtrail_event(body) is not None) is is_event


def test_sent_at_reads_the_sqs_attribute() -> None:
    assert fast_path.sent_at({"attributes": {"SentTimestamp": "1705320000000"}}).isoformat() == (
        "2024-01-15T12:00:00+00:00"
    )
    assert fast_path.sent_at({"attributes": {"SentTimestamp": "soon"}}) is None
    assert fast_path.sent_at({}) is None


# --- the whole fast path on moto: the generated rule, the default bus, the SQS target, the handler ----------


def test_generated_rule_delivers_through_the_bus_and_the_file_adds_nothing(
    env: Env, deps: Any, boto_session: Any
) -> None:
    """The config's pattern and state on a default-bus rule with an SQS target (moto, with the local AWS's
    matcher and CloudTrail delivery): what it delivers is stored and alerted once with path eventbridge;
    the log file with the same records then alerts only what the bus did not bring."""
    from trailwatch.local import eventbridge
    from trailwatch_processor import eventbridge_pattern
    from trailwatch_processor.config_schema import validate_config

    fp = eventbridge_pattern.event_pattern(validate_config(CONFIG))
    events, sqs = boto_session.client("events"), env.sqs
    url = sqs.create_queue(QueueName="fast-path")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="trailwatch-fast-path", EventPattern=fp.text, State=fp.state)
    events.put_targets(Rule="trailwatch-fast-path", Targets=[{"Id": "queue", "Arn": arn}])
    root_read = f.root_login(eventName="GetCallerIdentity", eventSource="sts.amazonaws.com", readOnly=True)
    root_read["eventType"] = "AwsApiCall"
    created = f.record("CreateUser", eventSource="iam.amazonaws.com")
    ignored = f.record("DescribeInstances")
    too_big = f.record("CreateUser", eventSource="iam.amazonaws.com", requestParameters={"x": "y" * 300_000})
    sent = [eventbridge.publish(r, f.ACCOUNT) for r in (root_read, created, ignored, too_big)]
    assert fp.read_only and sent == [1, 1, 0, 0]  # read-only root call: the state lets it through
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert _failed(handle_batch(f.sqs_event(*(m["Body"] for m in got)), deps)) == []
    fast = {(a["rule"], a["path"]) for a in env.alerts()}
    assert fast == {("root-usage", "eventbridge"), ("CreateUser", "eventbridge")}
    key = env.put_log([root_read, created, ignored, too_big])
    assert _failed(handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)) == []
    late = [(a["rule"], a["path"], a["eventIDs"]) for a in env.alerts()[2:]]
    assert late == [("CreateUser", "s3", [too_big["eventID"]])]  # over 256 KB: only the file brings it
    assert all(item["log_key"] == key for item in _events(env).values())


# --- noise control applies to the fast path as to log files ------------------------------------------------

NOISY = {
    "rules": [
        {"id": "denied", "title": "Access denied", "severity": "medium",
         "pattern": {"errorCode": [{"prefix": "AccessDenied"}]},
         "threshold": {"count": 3, "window_minutes": 5, "group_by": ["sourceIPAddress"]}},
        {"id": "root-usage", "title": "Root account used", "severity": "critical",
         "pattern": {"userIdentity": {"type": ["Root"]}}},
    ],
    "suppressions": [
        {"id": "break-glass",
         "pattern": {"userIdentity": {"type": ["Root"]}, "sourceIPAddress": ["198.51.100.7"]},
         "reason": "break-glass drill", "owner": "secops", "expires": "2999-01-01"},
    ],
}  # fmt: skip


def test_a_suppressed_event_from_eventbridge_is_stored_quiet_and_the_log_file_does_not_alert_it(
    env: Env, deps: Any
) -> None:
    env.put_config(NOISY)
    hidden = f.root_login(sourceIPAddress="198.51.100.7")
    shown = f.root_login(sourceIPAddress="203.0.113.9")
    assert _failed(handle_batch(_batch(hidden, shown), deps)) == []
    items = _events(env)
    assert items[hidden["eventID"]]["alert_status"] == "suppressed"
    assert items[hidden["eventID"]]["suppressed_by"] == "break-glass"
    assert [a["eventIDs"] for a in env.alerts()] == [[shown["eventID"]]]
    key = env.put_log([hidden, shown])  # the log file brings both again: nothing more is alerted
    assert handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)["batchItemFailures"] == []
    assert len(env.alerts()) == 1 and _events(env)[hidden["eventID"]]["alert_status"] == "suppressed"


def test_a_threshold_counts_fast_path_and_log_file_deliveries_once(env: Env, deps: Any) -> None:
    env.put_config(NOISY)
    ip = "203.0.113.9"
    denied = [f.record("PutObject", errorCode="AccessDenied", sourceIPAddress=ip) for _ in range(3)]
    assert _failed(handle_batch(_batch(*denied[:2]), deps)) == []
    assert env.alerts() == []  # two of three: below the threshold
    assert _failed(handle_batch(_batch(*denied[:2]), deps)) == []  # delivered again: still two
    assert env.alerts() == []
    key = env.put_log(denied)  # the file brings all three: the third crosses the threshold, once
    assert handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)["batchItemFailures"] == []
    [alert] = env.alerts()
    assert alert["rule"] == "denied" and alert["eventIDs"] == [denied[2]["eventID"]]
