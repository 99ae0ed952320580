"""Through ``handle_batch``: bounded work per message, progress that survives a retry,
poison files isolated, and alerts that go out while a file is read.

The Lambda service is simulated around the real handler (``FakeLambda``): the context's remaining time follows
the test clock, each AWS call costs a fixed latency on that clock, the invocation is killed (``Killed``, which
nothing in the function may catch) when the clock passes its timeout -- then every message of the batch comes
back, as when a real invocation times out -- and messages come back with a growing ApproximateReceiveCount
until maxReceiveCount moves them to the DLQ.
"""

from __future__ import annotations

import math
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from trailwatch_processor import batch_writes, file_run, handler, markers, processor, store
from trailwatch_processor.handler import handle_batch
from trailwatch_processor.notifications import ObjectRef

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, TABLE, Env

CONFIG = {
    "rules": [
        {"id": "trail-stopped", "title": "CloudTrail logging stopped", "severity": "critical",
         "pattern": {"eventName": ["StopLogging"]}},
        {"id": "iam-user-created", "title": "IAM user created", "severity": "high",
         "pattern": {"eventName": ["CreateUser"]}},
        {"id": "access-denied", "title": "Access denied", "severity": "low",
         "pattern": {"errorCode": [{"prefix": "AccessDenied"}]}},
    ],
}  # fmt: skip

TIMEOUT = 30.0  # a short FunctionTimeout
MAX_RECEIVE = 5
# The many-matches tests run at 1:SCALE (fixture ``scaled``): the batch sizes (100 ids per BatchGetItem and
# per TransactWriteItems, alerts every 500 events) and the record counts divided by SCALE, the latency per
# item a call carries multiplied by it. Every call then costs the clock what it costs at full size, so the
# same calls, shares, stops and checkpoints happen, with 1/SCALE of the items for moto to store and scan.
SCALE = 20


class Killed(BaseException):
    """The Lambda service ends the invocation at its timeout: nothing in the function gets to clean up."""


@dataclass
class Message:
    id: str
    body: str
    receives: int = 0


@dataclass
class FakeLambda:
    """The SQS event source mapping and the Lambda runtime around ``handle_batch``, on the test clock."""

    env: Env
    deps: Any
    latency: float = 0.01  # seconds per AWS call
    slower: dict[str, float] = field(default_factory=dict)  # operation name -> its latency instead
    # seconds per item a batch call carries (TransactWriteItems actions, BatchGetItem keys): a call of 100
    # items is one round trip, but not free
    item_latency: float = 0.0
    slow_reads: dict[str, float] = field(default_factory=dict)  # object key -> seconds per read of its body
    queue: list[Message] = field(default_factory=list)
    dlq: list[Message] = field(default_factory=list)
    deadline: float = math.inf
    invocations: int = 0
    killed: int = 0

    def __post_init__(self) -> None:
        deps = self.deps
        deps.settings = replace(deps.settings, max_receive_count=MAX_RECEIVE)
        deps.dynamodb = Timed(self.env.clients.dynamodb, self)
        deps.sns = Timed(self.env.clients.sns, self)
        deps.s3 = Timed(self.env.clients.s3, self)
        deps.monotonic = self.env.clock.monotonic

    def send(self, key: str) -> str:
        message = Message(str(uuid.uuid4()), f.s3_notification(BUCKET, key))
        self.queue.append(message)
        return message.id

    def tick(self, seconds: float) -> None:
        """Time passes; past the deadline the invocation is killed."""
        self.env.clock.advance(seconds)
        if self.env.clock.seconds > self.deadline:
            raise Killed()

    def remaining_ms(self) -> int:
        return max(0, int((self.deadline - self.env.clock.seconds) * 1000))

    def invoke(self) -> set[str]:
        """One invocation with up to 10 visible messages; returns the ids that come back."""
        batch = self.queue[:10]
        for message in batch:
            message.receives += 1
        event = f.sqs_event(*(m.body for m in batch), message_ids=[m.id for m in batch])
        for record, message in zip(event["Records"], batch, strict=True):
            record["attributes"]["ApproximateReceiveCount"] = str(message.receives)
        self.deadline = self.env.clock.seconds + TIMEOUT
        self.invocations += 1
        try:
            response = handle_batch(event, self.deps, Context(self))
            failed = {entry["itemIdentifier"] for entry in response["batchItemFailures"]}
        except Killed:
            self.killed += 1
            failed = {m.id for m in batch}
        finally:
            self.deadline = math.inf
        for message in batch:
            if message.id in failed and message.receives >= MAX_RECEIVE:
                self.queue.remove(message)
                self.dlq.append(message)
            elif message.id not in failed:
                self.queue.remove(message)
        self.env.clock.advance(6 * TIMEOUT)  # the visibility timeout (6x the function timeout)
        return failed & {m.id for m in self.queue}

    def drain(self, limit: int = 20) -> None:
        while self.queue and limit:
            self.invoke()
            limit -= 1


class Context:
    aws_request_id = "req"

    def __init__(self, runtime: FakeLambda) -> None:
        self.runtime = runtime

    def get_remaining_time_in_millis(self) -> int:
        return self.runtime.remaining_ms()


class Timed:
    """A boto3 client whose every call costs ``latency`` on the test clock; S3 bodies of ``slow_reads``
    keys cost their seconds per read."""

    def __init__(self, client: Any, runtime: FakeLambda) -> None:
        self.client, self.runtime = client, runtime
        self.calls: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()  # transactions told apart by their action (Put, Update)

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            kind, items = _batch_kind(name, kwargs)
            latency = self.runtime.slower.get(kind, self.runtime.slower.get(name, self.runtime.latency))
            self.runtime.tick(latency + items * self.runtime.item_latency)
            self.calls[name] += 1
            self.kinds[kind] += 1
            response = real(**kwargs)
            slow = self.runtime.slow_reads.get(kwargs["Key"]) if name == "get_object" else None
            if slow:
                response["Body"] = SlowBody(response["Body"], self.runtime, slow)
            return response

        return call


def _batch_kind(name: str, kwargs: dict[str, Any]) -> tuple[str, int]:
    """(``transact_write_items:Put`` or ``:Update`` for a transaction, else the operation name; the number of
    items the call carries)."""
    if name == "transact_write_items":
        actions = kwargs["TransactItems"]
        return f"{name}:{next(iter(actions[0]))}", len(actions)
    if name == "batch_get_item":
        return name, sum(len(request["Keys"]) for request in kwargs["RequestItems"].values())
    return name, 0


class SlowBody:
    def __init__(self, body: Any, runtime: FakeLambda, seconds: float) -> None:
        self.body, self.runtime, self.seconds = body, runtime, seconds

    def read(self, size: int = -1) -> bytes:
        self.runtime.tick(self.seconds)
        return self.body.read(size)

    def close(self) -> None:
        self.body.close()


@pytest.fixture
def deps(deps: Any, env: Env) -> Any:
    env.put_config(CONFIG)
    return deps


@pytest.fixture
def scaled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's batch sizes divided by SCALE (the tests divide their record counts by it too)."""
    for module, name in (
        (store, "BATCH_GET_MAX"),
        (file_run, "STORE_CHUNK"),
        (batch_writes, "TRANSACT_MAX_ACTIONS"),
        (file_run, "ALERT_EVERY_EVENTS"),
    ):
        full = getattr(module, name)
        assert full % SCALE == 0, (name, full)
        monkeypatch.setattr(module, name, full // SCALE)


def _events(env: Env) -> dict[str, dict]:
    return {k: v for k, v in env.items().items() if "kind" not in v}


def _alerted_ids(env: Env) -> list[str]:
    return [i for a in env.alerts() for i in a["eventIDs"] if a["rule"] != "trailwatch-operational"]


def _assert_exactly_once(env: Env, recs: list[dict]) -> None:
    """Every matched record stored once and covered by exactly one alert (items + alert counts agree)."""
    events = _events(env)
    assert set(events) == {r["eventID"] for r in recs}
    assert {i["alert_status"] for i in events.values()} == {"sent"}
    event_alerts = [a for a in env.alerts() if a["rule"] != "trailwatch-operational"]
    assert sum(a["count"] for a in event_alerts) == len(recs)  # a duplicate alert would add to this
    per_message = Counter(i["alert_message_id"] for i in events.values())
    assert sum(per_message.values()) == len(recs) and len(per_message) == len(event_alerts)


def _denied(n: int) -> list[dict]:
    return [f.record("PutObject", errorCode="AccessDenied", eventSource="s3.amazonaws.com") for _ in range(n)]


# --- one slow file must not blind nine others -------------------------------------------------------------


def test_one_slow_file_and_nine_good_files(env: Env, deps: Any, scaled: None) -> None:
    """The old handler spent the whole invocation on the slow file (3 DynamoDB calls per event): killed
    at the timeout five times, all ten messages to the DLQ, the nine good files never stored. The slow file
    stays slower than one invocation with batched writes: 10 ms per item of a batch call, 45 s for its
    1,500 events (read, written, marked sent); at 1:SCALE."""
    runtime = FakeLambda(env, deps, latency=0.02, item_latency=0.01 * SCALE)
    slow_recs = _denied(1500 // SCALE)
    slow_id = runtime.send(env.put_log(slow_recs))
    good = [[f.record("CreateUser", eventSource="iam.amazonaws.com")] for _ in range(9)]
    good_ids = [runtime.send(env.put_log(recs)) for recs in good]

    assert runtime.invoke() == {slow_id}
    assert runtime.killed == 0
    events = _events(env)
    for recs in good:
        assert events[recs[0]["eventID"]]["alert_status"] == "sent"
    assert set(_alerted_ids(env)) >= {recs[0]["eventID"] for recs in good}
    assert not set(good_ids) & {m.id for m in runtime.queue}
    first_part = [r["eventID"] for r in slow_recs if r["eventID"] in events]
    assert 0 < len(first_part) < len(slow_recs)  # checkpointed part-way, what was stored is alerted
    assert all(events[i]["alert_status"] == "sent" for i in first_part)

    runtime.drain()
    assert runtime.queue == [] and runtime.dlq == [] and runtime.killed == 0
    assert runtime.invocations <= MAX_RECEIVE
    _assert_exactly_once(env, slow_recs + [recs[0] for recs in good])


# --- many matches alerted as the file is read, exactly once across retries --------------------------------


def test_stop_logging_among_denied_calls_at_30_s(env: Env, deps: Any, scaled: None) -> None:
    """Before the budget, one file (StopLogging + 12,000 AccessDenied + CreateUser at FunctionTimeout=30) gave
    0 alerts, StopLogging pending forever, CreateUser never stored, the file in the DLQ. Scaled to 2,000
    records (moto costs ~10 ms of real time per call on this machine) with the latency raised to keep the
    proportions: 54 s of calls for the old processor (3 per event); with the writes batched 100 per call,
    9 ms per item a call carries keeps it at 54 s, more than one 30 s invocation (run at 1:SCALE). The old
    handler is killed every time; now StopLogging is alerted by the first invocation and the retries resume
    from the checkpoint until everything is stored and alerted exactly once."""
    runtime = FakeLambda(env, deps, latency=0.009, item_latency=0.009 * SCALE)
    stop = f.record("StopLogging", eventSource="cloudtrail.amazonaws.com")
    create = f.record("CreateUser", eventSource="iam.amazonaws.com")
    recs = [stop, *_denied(2000 // SCALE), create]
    runtime.send(env.put_log(recs))

    runtime.invoke()
    assert runtime.killed == 0
    [first] = [a for a in env.alerts() if a["rule"] == "trail-stopped"]
    assert first["eventIDs"] == [stop["eventID"]] and first["severity"] == "critical"

    runtime.drain()
    assert runtime.queue == [] and runtime.dlq == [] and runtime.killed == 0
    assert 1 < runtime.invocations <= MAX_RECEIVE  # it took several invocations: the checkpoint carried it
    _assert_exactly_once(env, recs)
    assert [a["rule"] for a in env.alerts()].count("trail-stopped") == 1


def test_calls_after_the_stop_slower_than_the_puts_do_not_kill_the_invocation(
    env: Env, deps: Any, scaled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owed alerts were costed at the measured put time only: with mark_sent twice as slow as a put
    (a loaded service) and the stop coming before a periodic flush (the local proof: a 6 s function, 5 s
    between flushes), the invocation was killed while it alerted, every attempt, and the last receive's
    kill left the stored events `sending` forever with no poison alert (slow-file-in-batch, many-matches).
    Now the owed time counts double and is flushed early: no kill, everything alerted once (at 1:SCALE)."""
    monkeypatch.setattr(file_run, "ALERT_EVERY_EVENTS", 10**6)
    monkeypatch.setattr(file_run, "ALERT_EVERY_SECONDS", 10.0**6)
    # A mark-sent transaction of 100 twice as slow as a put transaction of 100 (1.01 s).
    runtime = FakeLambda(
        env, deps, latency=0.01, item_latency=0.01 * SCALE, slower={"transact_write_items:Update": 1.01}
    )
    _one_file_ends_alerted_once(env, runtime, 2000 // SCALE)


def test_a_flush_after_a_stop_mid_chunk_does_not_skip_the_rest_of_the_chunk(
    env: Env, deps: Any, scaled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose store stopped part-way (share over) was followed by a due flush; with nothing owed
    any more the read went on, stored later records and checkpointed past the dropped rest of the chunk:
    those events were never stored, the message deleted (lost). It takes a flush cheaper than estimated
    (a put slower than a mark_sent) to leave time after it; flushing after every chunk makes it happen at
    each stop. At 1:SCALE."""
    monkeypatch.setattr(file_run, "ALERT_EVERY_SECONDS", 0.0)
    # A put transaction of 100 (1.5 s) slower than a mark-sent one (0.5 s); 37 s of calls in all.
    runtime = FakeLambda(
        env, deps, latency=0.01, item_latency=0.005 * SCALE, slower={"transact_write_items:Put": 1.0}
    )
    _one_file_ends_alerted_once(env, runtime, 1500 // SCALE)


def _one_file_ends_alerted_once(env: Env, runtime: FakeLambda, denied: int) -> None:
    """One file of ``denied`` AccessDenied records through ``runtime``: never killed, nothing left in a
    queue, every event stored and alerted once."""
    recs = _denied(denied)
    runtime.send(env.put_log(recs))
    runtime.drain()
    assert runtime.killed == 0 and runtime.dlq == [] and runtime.queue == []
    _assert_exactly_once(env, recs)


def test_alerts_go_out_while_the_file_is_read(env: Env, deps: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flushes every ALERT_EVERY_EVENTS events: a file that fails late has alerted what it read before.
    The old processor alerted only after the whole file (one message per rule)."""
    runtime = FakeLambda(env, deps, latency=0.0)
    monkeypatch.setattr(file_run, "STORE_CHUNK", 25)
    monkeypatch.setattr(file_run, "ALERT_EVERY_EVENTS", 50)
    recs = _denied(120)
    key = env.put_log(recs)
    processor.process_object(ObjectRef(BUCKET, key), deps)
    counts = [a["count"] for a in env.alerts()]
    assert counts == [50, 50, 20]
    assert runtime.invocations == 0


def test_a_file_that_never_progresses_is_poison_alone(env: Env, deps: Any) -> None:
    """Its every read outlasts its share: each attempt stops with nothing handled. After two such attempts
    one operational alert names it (once, whatever the retries and containers), the others in its batches
    are never held back, and it still ends in the DLQ as evidence."""
    runtime = FakeLambda(env, deps, latency=0.01)
    # ~5 MB of gzip that hardly compresses (random hex), each 256 KB read of it costing 2 s: more than any
    # share; the matching records come last.
    noise = [f.record(requestParameters={"blob": os.urandom(5000).hex()}) for _ in range(1000)]
    stuck_key = env.put_log([*noise, *_denied(10)])
    runtime.slow_reads[stuck_key] = 2.0
    stuck_id = runtime.send(stuck_key)
    good = [[f.record("CreateUser")] for _ in range(2)]
    for recs in good:
        runtime.send(env.put_log(recs))

    assert runtime.invoke() == {stuck_id}
    assert {recs[0]["eventID"] for recs in good} <= set(_alerted_ids(env))
    runtime.drain()
    assert [m.id for m in runtime.dlq] == [stuck_id] and runtime.queue == [] and runtime.killed == 0
    poison = [a for a in env.alerts() if a["rule"] == "trailwatch-operational"]
    assert len(poison) == 1
    assert stuck_key in poison[0]["source"] and "no progress" in poison[0]["description"]
    [marker] = [v for k, v in env.items().items() if k.startswith(markers.POISON_PREFIX)]
    assert marker["alert_status"] == "sent" and marker["object_key"] == stuck_key
    _assert_exactly_once(env, [recs[0] for recs in good])


def test_last_receive_declares_a_slow_but_progressing_file_poison(env: Env, deps: Any, scaled: None) -> None:
    """A file that progresses but cannot finish within maxReceiveCount receives: its last receive sends the
    poison alert (it is about to reach the DLQ unfinished). At 1:SCALE."""
    # 40 ms per item of a batch call, ~12 s per 100 events: ~200 events per 27 s share, 5 receives too few
    runtime = FakeLambda(env, deps, latency=0.01, item_latency=0.04 * SCALE)
    recs = _denied(2000 // SCALE)
    _poison_on_the_last_receive(env, runtime, recs)


def test_last_receive_keeps_time_for_the_poison_report(
    env: Env, deps: Any, scaled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reserve after the shares covered the checkpoint and the response; on the last receive the poison
    report (a marker claim, a publish, a mark-sent) comes on top. With single-item writes slow (checkpoint
    and claim 0.2 s, mark-sent 6 s: 6.4 s, more than the 3 s reserve and the ~2.7 s the share leaves at its
    stop) the last receive was killed: the file went to the DLQ with no poison alert and its last stored
    events never alerted. Now the last receive's share keeps the reserve back once more. At 1:SCALE."""
    # One event per chunk: a share stops within one chunk's time (1.6 s) of its end, not 100 events' time.
    monkeypatch.setattr(file_run, "STORE_CHUNK", 1)
    # 2.4 s of batch calls per event: ~11 events per share, 70 cannot finish in 5 receives.
    runtime = FakeLambda(env, deps, item_latency=0.04 * SCALE, slower={"put_item": 0.2, "update_item": 6.0})
    recs = _denied(1400 // SCALE)
    _poison_on_the_last_receive(env, runtime, recs)


def _poison_on_the_last_receive(env: Env, runtime: FakeLambda, recs: list[dict]) -> None:
    """One file of ``recs`` through ``runtime``: never killed, its last receive declares it poison (one
    operational alert naming it) and it ends in the DLQ, with what it stored alerted."""
    key = env.put_log(recs)
    runtime.send(key)
    runtime.drain()
    assert len(runtime.dlq) == 1 and runtime.killed == 0
    [poison] = [a for a in env.alerts() if a["rule"] == "trailwatch-operational"]
    assert key in poison["source"] and f"receive {MAX_RECEIVE} of {MAX_RECEIVE}" in poison["description"]
    events = _events(env)
    assert 0 < len(events) < len(recs) and {i["alert_status"] for i in events.values()} == {"sent"}


# --- round trips per event --------------------------------------------------------------------------------


def test_dynamodb_calls_per_event(env: Env, deps: Any) -> None:
    """Measured with a counting client. Before: put + claim + mark_sent = 3 calls per new event, and a
    redelivery of a handled file still 1 put per event; then 2 (the conditional put, born claimed, and
    mark_sent). Now, per 100 new events: one BatchGetItem, one TransactWriteItems of conditional puts and one
    of conditional mark-sent updates, about 0.03 calls per event; about 0.01 for a redelivery (BatchGetItem
    only)."""
    runtime = FakeLambda(env, deps, latency=0.0)
    recs = _denied(200)  # the product's batch sizes (not scaled): two chunks of 100
    key = env.put_log(recs)
    calls, kinds = deps.dynamodb.calls, deps.dynamodb.kinds
    processor.process_object(ObjectRef(BUCKET, key), deps, attempt=1)
    first = sum(calls.values())
    assert first / len(recs) <= 0.04, calls
    assert kinds["transact_write_items:Put"] == kinds["transact_write_items:Update"] == 2
    assert calls["batch_get_item"] == 2 and calls["update_item"] == 0
    calls.clear()
    processor.process_object(ObjectRef(BUCKET, key), deps, attempt=1)
    assert sum(calls.values()) / len(recs) <= 0.02, calls
    assert runtime.invocations == 0
    _assert_exactly_once(env, recs)


# --- the pieces -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "left", "expected", "last"),
    [
        (30.0, 10, (3.0, 2.7), False),  # reserve 10% of 30 s; (30 - 3) / 10
        (30.0, 1, (3.0, 27.0), False),
        (30.0, 100, (3.0, 1.0), False),  # floor: 5% of 30 s, at most 1 s
        (900.0, 10, (5.0, 89.5), False),  # reserve capped at 5 s
        (3.0, 10, (0.5, 0.25), False),  # a 3 s function: reserve 0.5 s, (3 - 0.5) / 10
        (0.6, 1, (0.5, None), False),  # less than the floor (0.2 s) left after the reserve: not started
        (30.0, 1, (3.0, 24.0), True),  # a last receive keeps the reserve back once more: 30 - 3 - 3
        (30.0, 10, (3.0, 1.0), True),  # ... down to the floor
        (3.0, 1, (0.5, 2.0), True),
    ],
)
def test_batch_budget_shares(
    remaining: float, left: int, expected: tuple[float, float | None], last: bool
) -> None:
    budget = handler.BatchBudget(lambda: remaining)
    share = budget.share(left, last_receive=last)
    reserve, seconds = expected
    assert budget.reserve == pytest.approx(reserve)
    if seconds is None:
        assert share is None
    else:
        assert share is not None and remaining - share.stop_at == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"ApproximateReceiveCount": "3"}, 3),
        ({}, None),
        ({"ApproximateReceiveCount": "x"}, None),
        (None, None),
    ],
)
def test_receive_count(attributes: Any, expected: int | None) -> None:
    assert handler.receive_count({"attributes": attributes}) == expected


def test_checkpoint_never_moves_back_under_the_same_config(env: Env) -> None:
    ddb, now = env.clients.dynamodb, env.clock.now()
    marker = markers.checkpoint_id(BUCKET, "k", "v1")
    assert marker != markers.checkpoint_id(BUCKET, "k", "v2")  # per object version

    def put(done: int, config: str = "c1") -> bool:
        checkpoint = markers.Checkpoint(done, done * 2, config, 0)
        return markers.put_checkpoint(ddb, TABLE, marker, checkpoint, bucket=BUCKET, key="k", now=now)

    assert put(10) and put(10) and put(20)
    assert not put(5)  # a slower concurrent attempt
    assert markers.get_checkpoint(ddb, TABLE, marker) == markers.Checkpoint(20, 40, "c1", 0)
    assert put(5, "c2")  # other rules: the count means something else
    assert markers.get_checkpoint(ddb, TABLE, marker) == markers.Checkpoint(5, 10, "c2", 0)
    assert markers.get_checkpoint(ddb, TABLE, markers.checkpoint_id(BUCKET, "other", None)) is None


class Unprocessed:
    """BatchGetItem that leaves all but one key unprocessed on each call (as under throttling)."""

    def __init__(self, ddb: Any) -> None:
        self.ddb, self.calls = ddb, 0

    def batch_get_item(self, RequestItems: dict) -> dict:
        self.calls += 1
        [(table, request)] = RequestItems.items()
        first, rest = request["Keys"][:1], request["Keys"][1:]
        response = self.ddb.batch_get_item(RequestItems={table: {**request, "Keys": first}})
        response["UnprocessedKeys"] = {table: {**request, "Keys": rest}} if rest else {}
        return response


def test_batch_get_states_follows_unprocessed_keys(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store.time, "sleep", lambda seconds: None)
    ddb, now = env.clients.dynamodb, env.clock.now()
    ids = []
    for rec in _denied(5):
        item = store.build_item(rec, [_Rule()], log_bucket=BUCKET, log_key="k", now=now, retention_days=1)
        store.put_event(ddb, TABLE, item)
        ids.append(rec["eventID"])
    flaky = Unprocessed(ddb)
    found = store.batch_get_states(flaky, TABLE, [*ids[:3], "absent", *ids[3:]])
    assert sorted(found) == sorted(ids) and flaky.calls == 6
    assert {store.plain(i)["alert_status"] for i in found.values()} == {"pending"}
    flaky_forever = Unprocessed(ddb)
    monkeypatch.setattr(store, "BATCH_GET_ATTEMPTS", 2)
    with pytest.raises(RuntimeError, match="unprocessed"):
        store.batch_get_states(flaky_forever, TABLE, ids)


@dataclass(frozen=True)
class _Rule:
    id: str = "r"
    severity: str = "low"


def test_mark_sent_many_marks_all_it_still_holds(env: Env) -> None:
    ddb, now = env.clients.dynamodb, env.clock.now()
    ids = []
    for rec in _denied(3):
        item = store.build_item(rec, [_Rule()], log_bucket=BUCKET, log_key="k", now=now, retention_days=1)
        assert store.put_event(ddb, TABLE, store.with_claim(item, token="A", now=now)).created
        ids.append(rec["eventID"])
    # The second claim went stale and was taken over by B.
    assert store.claim(ddb, TABLE, ids[1], token="B", now=now, stale_before=now + _second()).claimed
    lost = batch_writes.mark_sent_many(ddb, TABLE, ids, token="A", message_id="m-A", now=now)
    assert lost == [ids[1]]
    states = {i: store.plain(store.get_event(ddb, TABLE, i)) for i in ids}
    assert [states[i]["alert_status"] for i in ids] == ["sent", "sending", "sent"]
    assert states[ids[1]]["alert_claim"] == "B"


def _second() -> Any:
    from datetime import timedelta

    return timedelta(seconds=1)


def test_with_claim_only_for_new_items(env: Env) -> None:
    """A racing writer's stored item is never reset by a born-claimed put: the put is conditional."""
    ddb, now = env.clients.dynamodb, env.clock.now()
    rec = _denied(1)[0]
    item = store.build_item(rec, [_Rule()], log_bucket=BUCKET, log_key="k", now=now, retention_days=1)
    assert store.put_event(ddb, TABLE, item).created
    store.claim(ddb, TABLE, rec["eventID"], token="A", now=now, stale_before=now)
    store.mark_sent(ddb, TABLE, rec["eventID"], token="A", message_id="m", now=now)
    again = store.put_event(ddb, TABLE, store.with_claim(item, token="B", now=now))
    assert not again.created and store.plain(again.item)["alert_status"] == "sent"


@pytest.mark.parametrize("same_rules", [True, False], ids=["resumes", "rules-changed-restarts"])
def test_checkpoint_is_followed_only_under_the_rules_it_was_made_with(
    env: Env, deps: Any, same_rules: bool
) -> None:
    recs = _denied(8)
    key = env.put_log(recs)
    ref = ObjectRef(BUCKET, key, etag="e1")
    fingerprint = file_run.config_fingerprint(deps.config.matcher())
    marker = markers.checkpoint_id(BUCKET, key, "e1")
    checkpoint = markers.Checkpoint(5, 5, fingerprint if same_rules else "other-rules", 0)
    markers.put_checkpoint(
        env.clients.dynamodb, TABLE, marker, checkpoint, bucket=BUCKET, key=key, now=env.clock.now()
    )
    result = processor.process_object(ref, deps, attempt=2)
    expected = recs[5:] if same_rules else recs  # the checkpointed five were handled by "earlier attempts"
    assert set(_events(env)) == {r["eventID"] for r in expected}
    assert result.resumed_from == (5 if same_rules else 0) and result.records == 8
    # The first receive never reads a checkpoint (none can exist yet): all eight.
    processor.process_object(ref, deps, attempt=1)
    assert set(_events(env)) == {r["eventID"] for r in recs}


def test_a_stop_among_stored_events_leaves_the_rest_of_the_chunk_to_the_retry(
    env: Env, deps: Any, scaled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events an earlier attempt stored and never alerted (``pending``) are claimed one call each (1 s
    here), so the share runs out in the middle of a chunk. The chunk's stored events left unclaimed go to
    the retry: the new events after them in the chunk are written and alerted, but the checkpoint stays
    before the first one left. Chunks of 3 stored and 2 new events; every event ends alerted once."""
    monkeypatch.setattr(file_run, "ALERT_EVERY_SECONDS", 0.0)  # a flush after every chunk, and at the stop
    runtime = FakeLambda(env, deps, latency=0.01, item_latency=0.01 * SCALE, slower={"update_item": 1.0})
    recs = _denied(1200 // SCALE)
    key = env.put_log(recs)
    ddb, now = env.clients.dynamodb, env.clock.now()
    for rec in [r for i, r in enumerate(recs) if i % file_run.STORE_CHUNK < 3]:  # 3 of each chunk's 5
        item = store.build_item(
            rec, [_Rule("access-denied")], log_bucket=BUCKET, log_key=key, now=now, retention_days=1
        )
        assert store.put_event(ddb, TABLE, item).created
    runtime.send(key)
    runtime.drain()
    assert runtime.killed == 0 and runtime.dlq == [] and runtime.queue == []
    assert runtime.invocations > 1  # the share ran out among the stored events
    _assert_exactly_once(env, recs)
