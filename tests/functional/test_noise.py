"""Noise control through the handler on moto: suppressions, dedup windows with one summary, thresholds counted
exactly once (duplicate delivery, concurrent writers), and the window-close message."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from trailwatch_processor import noise, noise_close, noise_state, processor
from trailwatch_processor.handler import handle_batch
from trailwatch_processor.noise import Plan

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, TABLE, Env

SCANNER = f"arn:aws:sts::{f.ACCOUNT}:assumed-role/scanner/session"
DENIED = {"errorCode": [{"prefix": "AccessDenied"}]}


def rule(rule_id: str = "denied", **extra: Any) -> dict:
    return {"id": rule_id, "title": "Denied call", "severity": "high", "pattern": DENIED, **extra}


def denied(arn: str = SCANNER, **overrides: Any) -> dict:
    identity = {"type": "AssumedRole", "arn": arn, "accountId": f.ACCOUNT}
    return f.record("DescribeStacks", userIdentity=identity, errorCode="AccessDenied", **overrides)


class RecordingSqs:
    """The window-close messages sent (body, delay), without waiting for SQS's DelaySeconds."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def send_message(self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0) -> dict:
        assert QueueUrl == "https://sqs.local/processing"
        self.sent.append((MessageBody, DelaySeconds))
        return {"MessageId": str(len(self.sent))}

    def take(self) -> list[tuple[str, int]]:
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture
def sqs() -> RecordingSqs:
    return RecordingSqs()


@pytest.fixture
def deps(deps: Any, sqs: RecordingSqs) -> Any:
    deps.sqs, deps.noise_queue_url = sqs, "https://sqs.local/processing"
    return deps


def run_file(env: Env, deps: Any, records: list[dict], key: str | None = None) -> str:
    key = env.put_log(records, key)
    response = handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)
    assert response["batchItemFailures"] == []
    return key


def close(deps: Any, body: str) -> dict:
    return handle_batch(f.sqs_event(body), deps)


def events(env: Env) -> dict[str, dict]:
    return {k: v for k, v in env.items().items() if "kind" not in v}


def noise_items(env: Env) -> dict[str, dict]:
    return {k: v for k, v in env.items().items() if v.get("kind") == "noise"}


# --- suppressions -------------------------------------------------------------------------------------


def suppression(**changes: Any) -> dict:
    return {
        "id": "scanner-denied",
        "pattern": {"userIdentity": {"arn": [{"suffix": ":assumed-role/scanner/session"}]}},
        "reason": "the scanner is always denied",
        "owner": "secops",
        "expires": "2024-02-01",
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "suppressed"),
    [
        pytest.param({}, True, id="active"),
        pytest.param({"expires": "2024-01-15T12:17:00Z"}, True, id="expires-in-a-minute"),
        pytest.param({"expires": "2024-01-15"}, False, id="expired"),
        pytest.param({"rules": ["other"]}, False, id="other-rule-only"),
        pytest.param({"rules": ["denied"]}, True, id="this-rule"),
    ],
)
def test_a_suppressed_event_is_stored_marked_and_not_alerted(
    env: Env, deps: Any, changes: dict, suppressed: bool
) -> None:
    env.put_config(
        {
            "rules": [rule(), rule("other", pattern={"eventName": ["X"]})],
            "suppressions": [suppression(**changes)],
        }
    )
    hidden, other = denied(), denied(f"arn:aws:iam::{f.ACCOUNT}:user/alice")
    run_file(env, deps, [hidden, other])
    items = events(env)
    alerted = [i for a in env.alerts() for i in a["eventIDs"]]
    if suppressed:
        assert items[hidden["eventID"]]["alert_status"] == "suppressed"
        assert items[hidden["eventID"]]["suppressed_by"] == "scanner-denied"
        assert alerted == [other["eventID"]]
    else:
        assert "suppressed_by" not in items[hidden["eventID"]]
        assert sorted(alerted) == sorted([hidden["eventID"], other["eventID"]])
    assert items[other["eventID"]]["alert_status"] == "sent"


def test_expiry_is_evaluated_at_processing_time(env: Env, deps: Any) -> None:
    env.put_config({"rules": [rule()], "suppressions": [suppression(expires="2024-01-15T12:20:00Z")]})
    first, second = denied(), denied()
    run_file(env, deps, [first])
    env.clock.advance(600)  # 12:26:40: expired, the same config still in force
    run_file(env, deps, [second])
    items = events(env)
    assert items[first["eventID"]]["alert_status"] == "suppressed"
    assert [i for a in env.alerts() for i in a["eventIDs"]] == [second["eventID"]]


def test_a_suppressed_event_delivered_again_is_not_alerted(env: Env, deps: Any) -> None:
    env.put_config({"rules": [rule()], "suppressions": [suppression()]})
    key = run_file(env, deps, [denied()])
    run_file(env, deps, [denied()], key)  # the same object notified again (at-least-once)
    assert env.alerts() == []


# --- dedup windows ------------------------------------------------------------------------------------


DEDUP = rule(dedup={"group_by": ["userIdentity.arn", "eventName"], "window_minutes": 60})


def test_a_burst_alerts_once_then_one_summary_with_the_count(env: Env, deps: Any, sqs: RecordingSqs) -> None:
    env.put_config({"rules": [DEDUP]})
    # 12 events in two files: the first alerts, the 11 later (in either file) come as one summary. The
    # count is what is checked, not a size (the window holds 2,000 ids): 50 events only cost moto time.
    burst = [denied() for _ in range(12)]
    run_file(env, deps, burst[:5])
    run_file(env, deps, burst[5:])
    [first_alert] = env.alerts()
    first = burst[0]["eventID"]
    assert first_alert["eventIDs"] == [first]
    assert first_alert["noise"] == [
        f"first of a 60 min window (userIdentity.arn={SCANNER!r}, eventName='DescribeStacks'): "
        "later ones come as one summary"
    ]
    items = events(env)
    assert items[first]["alert_status"] == "sent" and items[first]["noise_role"] == "window-first"
    assert items[first]["noise_window"] == items[burst[1]["eventID"]]["noise_window"]
    for rec in burst[1:]:
        assert items[rec["eventID"]]["alert_status"] == "grouped"
        assert items[rec["eventID"]]["grouped_into"] == first
    [(body, delay)] = sqs.take()
    assert delay == 900  # a 60 min window: SQS's longest delay, re-sent with the rest
    assert json.loads(body)["trailwatch"] == "window-close"

    env.clock.advance(900)
    assert close(deps, body)["batchItemFailures"] == []  # not due yet: re-sent, nothing alerted
    [(body2, delay2)] = sqs.take()
    assert delay2 == 900 and env.alerts() == [first_alert]  # 2700 s to go: 900 now, then the rest

    env.clock.advance(900)
    close(deps, body2)
    [(body3, delay3)] = sqs.take()
    assert delay3 == 900
    env.clock.advance(1800)
    assert close(deps, body3)["batchItemFailures"] == []
    [_first, summary] = env.alerts()
    assert summary["count"] == 11 and summary["rule"] == "denied" and summary["kind"] == "summary"
    assert summary["group"] == {"userIdentity.arn": SCANNER, "eventName": "DescribeStacks"}
    assert sorted(summary["eventIDs"]) == sorted(r["eventID"] for r in burst[1:])
    assert summary["window_start"] < summary["window_end"]
    assert summary["title"].startswith('11 more "Denied call" event(s) in the last 60 min')
    assert sqs.take() == []

    # A duplicate close message: still one summary.
    assert close(deps, body3)["batchItemFailures"] == []
    assert len(env.alerts()) == 2


def test_groups_are_separate_and_a_new_window_starts_after_the_close(
    env: Env, deps: Any, sqs: RecordingSqs
) -> None:
    env.put_config({"rules": [rule(dedup={"group_by": ["userIdentity.arn"], "window_minutes": 0.5})]})
    other = f"arn:aws:iam::{f.ACCOUNT}:user/bob"
    run_file(env, deps, [denied(), denied(), denied(), denied(other)])
    assert sum(a["count"] for a in env.alerts()) == 2  # one first event per group (one message per rule)
    closes = sqs.take()
    assert [delay for _, delay in closes] == [30, 30]
    env.clock.advance(31)
    for body, _ in closes:
        close(deps, body)
    summaries = [a for a in env.alerts() if a.get("kind") == "summary"]
    assert [s["count"] for s in summaries] == [2]  # bob's window had no later event: no summary
    late = denied()
    run_file(env, deps, [late])  # after the close: a new window, and its first event alerts
    assert env.alerts()[-1]["eventIDs"] == [late["eventID"]]
    assert len(sqs.take()) == 1


def test_a_duplicate_delivery_does_not_count_twice(env: Env, deps: Any, sqs: RecordingSqs) -> None:
    env.put_config({"rules": [rule(dedup={"group_by": ["userIdentity.arn"], "window_minutes": 1})]})
    recs = [denied() for _ in range(5)]
    key = run_file(env, deps, recs)
    run_file(env, deps, recs, key)  # the same file again
    run_file(env, deps, recs[2:])  # the same events in another file
    [(body, _)] = sqs.take()
    env.clock.advance(61)
    close(deps, body)
    summary = env.alerts()[-1]
    assert summary["count"] == 4


def test_a_full_window_counts_beyond_its_id_list(
    env: Env, deps: Any, sqs: RecordingSqs, monkeypatch: Any
) -> None:
    monkeypatch.setattr(noise_state, "WINDOW_MAX_IDS", 3)
    env.put_config({"rules": [rule(dedup={"group_by": ["userIdentity.arn"], "window_minutes": 1})]})
    recs = [denied() for _ in range(6)]
    key = run_file(env, deps, recs)
    run_file(env, deps, recs, key)  # again: the listed ones are not counted twice
    [(body, _)] = sqs.take()
    env.clock.advance(61)
    close(deps, body)
    summary = env.alerts()[-1]
    assert summary["count"] == 5 and len(summary["eventIDs"]) == 3
    assert {events(env)[r["eventID"]]["alert_status"] for r in recs[1:]} == {"grouped"}


def test_a_failed_summary_publish_is_retried_and_sent_once(env: Env, deps: Any, sqs: RecordingSqs) -> None:
    env.put_config({"rules": [rule(dedup={"group_by": ["userIdentity.arn"], "window_minutes": 1})]})
    run_file(env, deps, [denied() for _ in range(3)])
    [(body, _)] = sqs.take()
    env.clock.advance(61)
    real = deps.sns

    class Failing:
        def publish(self, **kwargs: Any) -> dict:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "Publish")

    deps.sns = Failing()
    assert len(close(deps, body)["batchItemFailures"]) == 1  # the message comes back
    deps.sns = real
    assert close(deps, body)["batchItemFailures"] == []
    assert close(deps, body)["batchItemFailures"] == []
    summaries = [a for a in env.alerts() if a.get("kind") == "summary"]
    assert [s["count"] for s in summaries] == [2]


def test_an_event_arriving_while_the_window_closes_opens_the_next(
    env: Env, deps: Any, sqs: RecordingSqs
) -> None:
    env.put_config({"rules": [rule(dedup={"group_by": ["userIdentity.arn"], "window_minutes": 1})]})
    run_file(env, deps, [denied(), denied()])
    [(body, _)] = sqs.take()
    env.clock.advance(61)
    late = denied()
    real = deps.sns

    class Interleave:  # an event is processed between the close's claim and its publish
        def publish(self, **kwargs: Any) -> dict:
            deps.sns = real
            run_file(env, deps, [late])
            return real.publish(**kwargs)

    deps.sns = Interleave()
    close(deps, body)
    seen = env.alerts()
    assert [a["count"] for a in seen if a.get("kind") == "summary"] == [1]
    assert seen[-1]["eventIDs"] == [late["eventID"]] or seen[-2]["eventIDs"] == [late["eventID"]]
    assert events(env)[late["eventID"]]["alert_status"] == "sent"


def test_without_a_queue_dedup_alerts_every_event(env: Env, deps: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("NOISE_QUEUE_URL", raising=False)
    deps.noise_queue_url = None
    env.put_config({"rules": [DEDUP]})
    run_file(env, deps, [denied(), denied()])
    assert sum(a["count"] for a in env.alerts()) == 2  # never silently dropped


# --- thresholds ---------------------------------------------------------------------------------------


THRESHOLD = rule(threshold={"count": 5, "window_minutes": 5, "group_by": ["sourceIPAddress"]})


def at(minute: int, second: int = 0, **overrides: Any) -> dict:
    return denied(eventTime=f"2024-01-15T10:{minute:02d}:{second:02d}Z", **overrides)


def test_a_threshold_alerts_exactly_once_when_crossed(env: Env, deps: Any) -> None:
    env.put_config({"rules": [THRESHOLD]})
    first = [at(0, i) for i in range(4)]
    key = run_file(env, deps, first)
    assert env.alerts() == []
    assert {events(env)[r["eventID"]]["alert_status"] for r in first} == {"below-threshold"}
    run_file(env, deps, first, key)  # delivered again: still 4
    run_file(env, deps, first[1:])  # the same events in another file: still 4
    assert env.alerts() == []
    more = [at(1, i) for i in range(3)]
    run_file(env, deps, more)
    [alert] = env.alerts()
    assert alert["eventIDs"] == [more[0]["eventID"]]  # the fifth event crosses
    assert alert["noise"] == ["threshold: 5 events within 5 min (sourceIPAddress='198.51.100.7')"]
    items = events(env)
    assert [items[r["eventID"]]["alert_status"] for r in more] == ["sent", "grouped", "grouped"]
    assert items[more[1]["eventID"]]["grouped_into"] == more[0]["eventID"]
    assert items[more[0]["eventID"]]["noise_role"] == "threshold-crossed"
    # Another source is another group; after the window (event time) the count starts again.
    run_file(env, deps, [at(2, i, sourceIPAddress="203.0.113.9") for i in range(4)])
    run_file(env, deps, [at(6, i) for i in range(4)])
    assert len(env.alerts()) == 1


def test_threshold_counting_is_exact_under_concurrent_duplicate_delivery(env: Env, deps: Any) -> None:
    from tests.functional.test_processor import AtomicCalls

    env.put_config({"rules": [rule(threshold={"count": 6, "window_minutes": 5})]})
    recs = [at(0, i) for i in range(6)]
    key = env.put_log(recs)
    batch = f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["m1"])
    deps.dynamodb = AtomicCalls(env.clients.dynamodb)
    barrier = threading.Barrier(2)
    out: list[dict] = []

    def run() -> None:
        barrier.wait()
        out.append(handle_batch(batch, processor.Deps(**{**vars(deps)})))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for response in out:
        if response["batchItemFailures"]:
            assert handle_batch(batch, deps)["batchItemFailures"] == []
    [alert] = env.alerts()
    assert alert["count"] == 1
    [state] = noise_items(env).values()
    assert len(state["event_ids"]) == 6 and state["alerted_by"] == alert["eventIDs"][0]


def test_the_crossing_event_alerts_when_a_racing_writer_stored_it_below_the_threshold(
    env: Env, deps: Any
) -> None:
    """Two invocations on one file: A added every event to the window (the count reached only by its last),
    then B's duplicate add of an earlier event X found the count reached and set ``alerted_by`` = X; A
    stored its items first, X as ``below-threshold``. B's write lost to them, and no one alerted the window
    (about 1 run in 7 of the concurrent test above). Now B takes X over and alerts it, once."""
    env.put_config({"rules": [rule(threshold={"count": 3, "window_minutes": 5})]})
    recs = [at(0, i) for i in range(3)]
    key = env.put_log(recs)
    real = deps.dynamodb

    class RacedByA:
        """Before B's write of the new events, A's items land: the same events, X below the threshold."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def transact_write_items(self, TransactItems: list, **kwargs: Any) -> Any:
            puts = [a["Put"]["Item"] for a in TransactItems if "Put" in a]
            for item in puts:
                if item.get("noise_role", {}).get("S") == "threshold-crossed":
                    item = {k: v for k, v in item.items() if not k.startswith("alert_") and k != "noise_role"}
                    item["alert_status"] = {"S": "below-threshold"}
                real.put_item(TableName=TABLE, Item=item)
            return real.transact_write_items(TransactItems=TransactItems, **kwargs)

    response = handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), replace(deps, dynamodb=RacedByA()))
    assert response["batchItemFailures"] == []
    [alert] = env.alerts()
    [state] = noise_items(env).values()
    assert alert["eventIDs"] == [state["alerted_by"]] and alert["count"] == 1
    crossed = events(env)[state["alerted_by"]]
    assert (crossed["alert_status"], crossed["noise_role"]) == ("sent", "threshold-crossed")
    run_file(env, deps, recs)  # a redelivery alerts nothing more
    assert len(env.alerts()) == 1


@pytest.mark.parametrize("repeat", range(5))
def test_two_concurrent_writers_cross_once(env: Env, deps: Any, repeat: int) -> None:
    """Two events decided at the same moment by two invocations, both reaching the count: one alerts."""
    from tests.functional.test_processor import AtomicCalls

    deps.dynamodb = AtomicCalls(env.clients.dynamodb)
    moment = env.clock.now()
    plan = Plan("r", kind="threshold", group=(), window_minutes=5, count=2, moment=moment)
    assert noise_state.decide(deps, plan, "e0").status == noise.BELOW_THRESHOLD
    barrier = threading.Barrier(2)
    decisions: dict[str, Any] = {}

    def run(event_id: str) -> None:
        barrier.wait()
        decisions[event_id] = noise_state.decide(deps, plan, event_id)

    threads = [threading.Thread(target=run, args=(e,)) for e in ("e1", "e2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = sorted(str(d.status) for d in decisions.values())
    assert statuses == ["None", "grouped"]  # one alerts (None: as usual), the other is covered by it
    winner = next(e for e, d in decisions.items() if not d.quiet)
    # The winner asked again (a retry before its item was written) still alerts; the other stays grouped.
    assert not noise_state.decide(deps, plan, winner).quiet
    assert noise_state.decide(deps, plan, "e0").status == noise.GROUPED


def test_two_concurrent_first_events_open_one_dedup_window(env: Env, deps: Any, sqs: RecordingSqs) -> None:
    from tests.functional.test_processor import AtomicCalls

    deps.dynamodb = AtomicCalls(env.clients.dynamodb)
    plan = Plan("r", kind="dedup", group_by=("a",), group=("x",), window_minutes=1, title="T")
    barrier = threading.Barrier(4)
    decisions: dict[str, Any] = {}

    def run(event_id: str) -> None:
        barrier.wait()
        decisions[event_id] = noise_state.decide(deps, plan, event_id)

    threads = [threading.Thread(target=run, args=(f"e{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    alerting = [e for e, d in decisions.items() if not d.quiet]
    assert len(alerting) == 1
    assert {dict(d.marks)["grouped_into"] for d in decisions.values() if d.quiet} == set(alerting)
    [(body, _)] = sqs.take()
    env.clock.advance(61)
    assert noise_close.close_window(deps, json.loads(body)["window"]) == "sent"
    assert env.alerts()[-1]["count"] == 3


def test_window_close_bodies_are_recognised_exactly() -> None:
    window = noise_state.WINDOW_PREFIX + "ab"
    assert (
        noise_close.window_close_request(json.dumps({"trailwatch": "window-close", "window": window}))
        == window
    )
    for body in (
        json.dumps({"trailwatch": "window-close", "window": "trailwatch#config-state#x"}),
        json.dumps({"trailwatch": "other", "window": window}),
        f.s3_notification(BUCKET, f.log_key()),
        "not json window-close",
    ):
        assert noise_close.window_close_request(body) is None


def test_a_close_for_a_vanished_window_is_acknowledged(env: Env, deps: Any) -> None:
    body = json.dumps({"trailwatch": "window-close", "window": noise_state.WINDOW_PREFIX + "gone"})
    assert close(deps, body)["batchItemFailures"] == []
    assert env.alerts() == []


def test_state_items_stay_out_of_the_indexes(env: Env, deps: Any, sqs: RecordingSqs) -> None:
    env.put_config(
        {
            "rules": [
                DEDUP,
                rule("t", pattern={"eventName": ["X"]}, threshold={"count": 2, "window_minutes": 1}),
            ]
        }
    )
    run_file(env, deps, [denied(), denied(), f.record("X")])
    state = noise_items(env)
    assert len(state) == 3  # group pointer, window, threshold window
    for item in state.values():
        assert not {"event_day", "rule_id", "event_time"} & set(item)
        assert item["expires_at"] > int((env.clock.now() + timedelta(hours=1)).timestamp())


# --- the config-change announcement -----------------------------------------------------------------------


def test_adding_a_suppression_is_announced_as_weakening(env: Env) -> None:
    from trailwatch_processor.handler import build_deps

    container = build_deps(env.settings, env.clients)  # with its config announcement, as deployed
    container.config.clock, container.now = env.clock.monotonic, env.clock.now
    env.put_config({"rules": [rule()]})
    container.config.matcher()
    env.put_config({"rules": [rule()], "suppressions": [suppression()]})
    env.clock.advance(61)
    container.config.matcher()
    first, change = [a for a in env.alerts() if a["rule"] == "trailwatch-operational"]
    assert first["title"] == "trailwatch config in force: 1 rule(s)"  # suppressions are not rules
    assert change["severity"] == "high"
    assert change["title"].endswith("suppressions added/changed")
    assert "+ suppression scanner-denied (added: WEAKENED, hides events)" in change["description"]
    assert "1 rule(s) in force (was 1)" in change["description"]
