"""batch_writes on moto (the local AWS's TransactWriteItems, moto_patches installed by the ``env`` fixture):
events written and marked sent up to 100 per call, exactly once, whatever already exists or races.

Before: one conditional PutItem per new event and one UpdateItem per alerted event (a file of 12,000
matches could not be stored within a 30 s function). Each test says what it pins."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from trailwatch_processor import batch_writes, processor, store
from trailwatch_processor.handler import handle_batch
from trailwatch_processor.notifications import ObjectRef

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, TABLE, Env


@dataclass(frozen=True)
class _Rule:
    id: str = "denied"
    severity: str = "low"


class Counting:
    """A DynamoDB client that counts its calls (transactions by their actions' count too); ``before``:
    name -> a function run before each call of that name (a racing writer, a fault)."""

    def __init__(self, ddb: Any, before: dict[str, Any] | None = None) -> None:
        self.ddb, self.before = ddb, before or {}
        self.calls: Counter[str] = Counter()
        self.actions: list[int] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.ddb, name)

        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == "transact_write_items":
                self.actions.append(len(kwargs["TransactItems"]))
            hook = self.before.get(name)
            if hook is not None:
                hook(kwargs)
            return real(**kwargs)

        return call


def _items(env: Env, n: int, *, token: str = "A", raw_bytes: int = 0) -> list[store.Item]:
    now = env.clock.now()
    out = []
    for _ in range(n):
        rec = f.record("PutObject", errorCode="AccessDenied")
        if raw_bytes:
            rec["requestParameters"] = {"blob": "b" * raw_bytes}
        item = store.build_item(rec, [_Rule()], log_bucket=BUCKET, log_key="k", now=now, retention_days=1)
        out.append(store.with_claim(item, token=token, now=now))
    return out


def _id(item: store.Item) -> str:
    return item["EventId"]["S"]


def _stored(env: Env, event_id: str) -> dict[str, Any]:
    item = store.get_event(env.clients.dynamodb, TABLE, event_id)
    assert item is not None
    return store.plain(item)


# --- put_new_events ---------------------------------------------------------------------------------------


def test_new_events_are_written_100_per_call_born_claimed(env: Env) -> None:
    """150 events: a full call of 100 and the rest (a third call of 100 would show nothing more, at the
    cost of 100 more items through moto)."""
    ddb = Counting(env.clients.dynamodb)
    items = _items(env, 150)
    written = batch_writes.put_new_events(ddb, TABLE, items)
    assert ddb.actions == [100, 50] and ddb.calls["put_item"] == 0  # was 150 PutItem calls
    assert set(written) == {_id(i) for i in items}
    assert all(w.created and w.error is None for w in written.values())
    stored = _stored(env, _id(items[-1]))
    assert (stored["alert_status"], stored["alert_claim"]) == (store.SENDING, "A")


def test_a_transaction_holds_at_most_4_mb_of_items(env: Env) -> None:
    """Items near the 400 KB limit: ten of them pass 4 MB, so a group holds at most nine."""
    items = _items(env, 12, raw_bytes=380_000)
    groups = list(batch_writes.transact_groups(items))
    assert [len(g) for g in groups] == [9, 3]
    assert all(sum(store.item_size(i) for i in g) <= 4_000_000 for g in groups)
    ddb = Counting(env.clients.dynamodb)
    written = batch_writes.put_new_events(ddb, TABLE, items)
    assert ddb.actions == [9, 3] and all(w.created for w in written.values())


def test_an_event_given_twice_is_written_once(env: Env) -> None:
    """An item may appear once per transaction: the second copy is dropped, not sent."""
    [item] = _items(env, 1)
    ddb = Counting(env.clients.dynamodb)
    written = batch_writes.put_new_events(ddb, TABLE, [item, dict(item)])
    assert ddb.actions == [1] and written[_id(item)].created


def test_partial_cancellation_existing_events_are_reported_and_the_rest_written(env: Env) -> None:
    """Two of five exist (one pending from another writer, one sent): the first transaction is cancelled
    with ConditionalCheckFailed for those two (ALL_OLD: their stored items); the three others are written
    by the second; the existing items are returned as stored, never reset."""
    ddb = env.clients.dynamodb
    items = _items(env, 5, token="B")
    for index, status in ((1, store.PENDING), (3, store.SENT)):
        other = dict(items[index], alert_status={"S": status}, alert_claim={"S": "other"})
        assert store.put_event(ddb, TABLE, other).created
    counting = Counting(ddb)
    written = batch_writes.put_new_events(counting, TABLE, items)
    assert counting.actions == [5, 3]
    assert [written[_id(i)].created for i in items] == [True, False, True, False, True]
    assert store.plain(written[_id(items[1])].item)["alert_status"] == store.PENDING  # type: ignore[arg-type]
    assert store.plain(written[_id(items[3])].item)["alert_status"] == store.SENT  # type: ignore[arg-type]
    assert _stored(env, _id(items[3]))["alert_claim"] == "other"  # not reset to B's claim
    assert _stored(env, _id(items[0]))["alert_claim"] == "B"


def test_an_item_stored_with_our_own_claim_is_ours(env: Env) -> None:
    """A retried write that the table had applied (the idempotency token's job on AWS; moto ignores it):
    the existing item carries this write's claim token, so it counts as created, not as a racing writer's."""
    items = _items(env, 3, token="A")
    assert store.put_event(env.clients.dynamodb, TABLE, items[0]).created
    written = batch_writes.put_new_events(env.clients.dynamodb, TABLE, items)
    assert all(w.created for w in written.values())


def test_two_writers_one_event_exactly_one_claim(env: Env) -> None:
    """Two invocations both read the event as absent (their BatchGetItem came first), then both write it:
    the second's transaction is cancelled for that event and it gets the first's item, claim included."""
    [mine] = _items(env, 1, token="A")
    [theirs] = [dict(mine, alert_claim={"S": "B"})]
    others = _items(env, 2, token="B")
    assert store.batch_get_states(env.clients.dynamodb, TABLE, [_id(mine)]) == {}  # both saw it absent
    first = batch_writes.put_new_events(env.clients.dynamodb, TABLE, [mine])
    second = batch_writes.put_new_events(env.clients.dynamodb, TABLE, [theirs, *others])
    assert first[_id(mine)].created and not second[_id(mine)].created
    assert store.plain(second[_id(mine)].item)["alert_claim"] == "A"  # type: ignore[arg-type]
    assert all(second[_id(o)].created for o in others)
    assert _stored(env, _id(mine))["alert_claim"] == "A"


def test_racing_invocation_between_the_read_and_the_write_alerts_each_event_once(env: Env, deps: Any) -> None:
    """Invocation A reads the chunk's states (all absent); before its transaction, invocation B processes
    the whole file (stores, claims, alerts). A's transaction is cancelled for every event; A handles them as
    existing (sent: nothing to do). Each event is stored once and alerted once."""
    env.put_config({"rules": [{"id": "denied", "pattern": {"errorCode": ["AccessDenied"]}}]})
    recs = [f.record("PutObject", errorCode="AccessDenied") for _ in range(30)]
    key = env.put_log(recs)
    raced = []

    def other_invocation(_: dict) -> None:
        if not raced:
            raced.append(True)
            other = processor.Deps(**{**vars(deps), "dynamodb": env.clients.dynamodb})
            assert (
                handle_batch(f.sqs_event(f.s3_notification(BUCKET, key), message_ids=["b"]), other)[
                    "batchItemFailures"
                ]
                == []
            )

    deps.dynamodb = Counting(env.clients.dynamodb, before={"transact_write_items": other_invocation})
    result = processor.process_object(ObjectRef(BUCKET, key), deps, attempt=1)
    assert raced and result.stored == 0 and result.duplicates == len(recs)
    ids = Counter(i for a in env.alerts() for i in a["eventIDs"])
    assert ids == Counter({r["eventID"]: 1 for r in recs})
    assert {_stored(env, r["eventID"])["alert_status"] for r in recs} == {store.SENT}


class Cancelling:
    """TransactWriteItems cancelled ``times`` times with ``code`` for every action (moto models no
    conflicts), the reasons given in ``CancellationReasons`` or, with ``in_message``, only in the message."""

    def __init__(self, ddb: Any, code: str, times: int, *, in_message: bool = False) -> None:
        self.ddb, self.code, self.times, self.in_message = ddb, code, times, in_message
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        self.calls[name] += 1
        return getattr(self.ddb, name)

    def transact_write_items(self, TransactItems: list[dict]) -> Any:
        self.calls["transact_write_items"] += 1
        if self.times > 0:
            self.times -= 1
            codes = [self.code] * len(TransactItems)
            message = f"Transaction cancelled, please refer cancellation reasons [{', '.join(codes)}]"
            error: dict[str, Any] = {"Error": {"Code": "TransactionCanceledException", "Message": message}}
            if not self.in_message:
                error["CancellationReasons"] = [{"Code": code} for code in codes]
            raise ClientError(error, "TransactWriteItems")  # type: ignore[arg-type]
        return self.ddb.transact_write_items(TransactItems=TransactItems)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_writes.time, "sleep", lambda seconds: None)


@pytest.mark.parametrize("in_message", [False, True], ids=["reasons", "reasons-in-message"])
def test_conflicts_are_retried(env: Env, no_sleep: None, in_message: bool) -> None:
    ddb = Cancelling(env.clients.dynamodb, "TransactionConflict", 2, in_message=in_message)
    items = _items(env, 4)
    written = batch_writes.put_new_events(ddb, TABLE, items)
    assert ddb.calls["transact_write_items"] == 3 and ddb.calls["put_item"] == 0
    assert all(w.created for w in written.values())


def test_conflicts_that_persist_fall_back_to_one_put_each(env: Env, no_sleep: None) -> None:
    ddb = Cancelling(env.clients.dynamodb, "TransactionConflict", 100)
    items = _items(env, 3)
    written = batch_writes.put_new_events(ddb, TABLE, items)
    assert ddb.calls["transact_write_items"] == batch_writes.TRANSACT_ATTEMPTS
    assert ddb.calls["put_item"] == 3 and all(w.created for w in written.values())


def test_a_cancellation_without_readable_reasons_falls_back_to_one_put_each(env: Env) -> None:
    class Unreadable(Cancelling):
        def transact_write_items(self, TransactItems: list[dict]) -> Any:
            self.calls["transact_write_items"] += 1
            error = {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}}
            raise ClientError(error, "TransactWriteItems")  # type: ignore[arg-type]

    ddb = Unreadable(env.clients.dynamodb, "None", 0)
    items = _items(env, 3)
    written = batch_writes.put_new_events(ddb, TABLE, items)
    assert ddb.calls["transact_write_items"] == 1 and ddb.calls["put_item"] == 3
    assert all(w.created for w in written.values())


def test_an_item_the_table_refuses_is_returned_with_its_error(env: Env) -> None:
    """A ValidationError reason: that item goes to PutItem alone, whose error is kept for its record."""
    items = _items(env, 3)
    bad = _id(items[1])

    class Refuse:
        def __getattr__(self, name: str) -> Any:
            return getattr(env.clients.dynamodb, name)

        def transact_write_items(self, TransactItems: list[dict]) -> Any:
            ids = [a["Put"]["Item"]["EventId"]["S"] for a in TransactItems]
            if bad in ids:
                reasons = [{"Code": "ValidationError" if i == bad else "None"} for i in ids]
                error = {"Error": {"Code": "TransactionCanceledException"}, "CancellationReasons": reasons}
                raise ClientError(error, "TransactWriteItems")  # type: ignore[arg-type]
            return env.clients.dynamodb.transact_write_items(TransactItems=TransactItems)

        def put_item(self, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "ValidationException"}}, "PutItem")

    written = batch_writes.put_new_events(Refuse(), TABLE, items)
    assert written[bad].error is not None and not written[bad].created
    assert [written[_id(i)].created for i in items] == [True, False, True]


def test_a_transient_error_is_raised(env: Env) -> None:
    class Throttled:
        def transact_write_items(self, **kwargs: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException"}}, "TransactWriteItems"
            )

    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        batch_writes.put_new_events(Throttled(), TABLE, _items(env, 2))


# --- mark_sent_many ---------------------------------------------------------------------------------------


def _claimed(env: Env, n: int, token: str = "A") -> list[str]:
    items = _items(env, n, token=token)
    assert all(w.created for w in batch_writes.put_new_events(env.clients.dynamodb, TABLE, items).values())
    return [_id(i) for i in items]


def test_mark_sent_many_100_per_call_and_a_taken_over_claim_is_lost(env: Env) -> None:
    """150 events of claim A, one taken over by B (stale): transactions of 100 and 50, the one with B's
    event cancelled and sent again without it; that one is reported lost and keeps B's claim."""
    ids = _claimed(env, 150)
    now: datetime = env.clock.now()
    later = now.replace(year=now.year + 1)
    taken = ids[120]
    assert store.claim(env.clients.dynamodb, TABLE, taken, token="B", now=now, stale_before=later).claimed
    ddb = Counting(env.clients.dynamodb)
    lost = batch_writes.mark_sent_many(ddb, TABLE, ids, token="A", message_id="m-A", now=now)
    assert lost == [taken]
    assert ddb.actions == [100, 50, 49] and ddb.calls["update_item"] == 0  # was 150 UpdateItem calls
    assert _stored(env, taken)["alert_claim"] == "B" and _stored(env, taken)["alert_status"] == store.SENDING
    for event_id in (ids[0], ids[99], ids[100], ids[119], ids[121], ids[-1]):
        stored = _stored(env, event_id)
        assert (stored["alert_status"], stored["alert_message_id"]) == (store.SENT, "m-A")


def test_mark_sent_many_falls_back_to_one_update_each(env: Env, no_sleep: None) -> None:
    ids = _claimed(env, 3)
    ddb = Cancelling(env.clients.dynamodb, "TransactionConflict", 100)
    lost = batch_writes.mark_sent_many(ddb, TABLE, ids, token="A", message_id="m", now=env.clock.now())
    assert lost == [] and ddb.calls["update_item"] == 3
    assert {_stored(env, i)["alert_status"] for i in ids} == {store.SENT}


def test_mark_sent_many_of_another_token_marks_nothing(env: Env) -> None:
    ids = _claimed(env, 5)
    lost = batch_writes.mark_sent_many(
        env.clients.dynamodb, TABLE, ids, token="X", message_id="m", now=env.clock.now()
    )
    assert lost == ids and {_stored(env, i)["alert_status"] for i in ids} == {store.SENDING}
