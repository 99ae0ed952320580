"""SecurityEvents items: building them under the 400 KB limit, idempotent writes, and the alert state.

Low-level DynamoDB client; items and expression values are written as plain Python and converted by boto3's
TypeSerializer (which refuses floats: none ever reach DynamoDB), and read back with its TypeDeserializer.

Alert state on each item (docs/architecture.md): ``pending`` -> ``sending`` (claimed: ``alert_claim``
token and ``alert_claimed_at``) -> ``sent`` (``alert_message_id``, ``alerted_at``). Only the invocation
whose conditional claim succeeds publishes. A claim older than the stale threshold (>= the function
timeout, so its owner is certainly dead) may be taken over.

Operational markers (``claim_marker``) share the table and the alert state so that an alert about trailwatch
itself (an invalid config version) is sent once overall, not once per Lambda container. They carry
``kind = operational`` and no ``event_day``/``rule_id``/``event_time``, so they stay out of both indexes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from . import records
from .config import severity_rank

if TYPE_CHECKING:
    from .config import Rule

# DynamoDB's limit is 400 KB; the decimal figure and a margin keep us below it whatever the exact accounting.
ITEM_LIMIT_BYTES = 400_000
ITEM_MARGIN_BYTES = 4_096
FIELD_MAX_CHARS = 1_024

PENDING = "pending"
SENDING = "sending"
SENT = "sent"

OPERATIONAL = "operational"
CONFIG_INVALID_PREFIX = "trailwatch#config-invalid#"

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]  # the wire form: {"name": {"S": "value"}}

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: dict[str, Any]) -> Item:
    """Plain Python values (str, int, bool, list, dict, None) -> DynamoDB attribute values."""
    return {name: _serializer.serialize(value) for name, value in values.items()}


def iso(moment: datetime) -> str:
    """Fixed-width UTC ISO time: string order is time order (the stale-claim condition relies on it)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def primary_rule(rules: Sequence[Rule]) -> Rule:
    """The highest-severity rule; ties go to the first in config order."""
    if not rules:
        raise ValueError("primary_rule: no rules")
    best = rules[0]
    for rule in rules[1:]:
        if severity_rank(rule.severity) > severity_rank(best.severity):
            best = rule
    return best


def build_item(
    record: dict,
    rules: Sequence[Rule],
    *,
    log_bucket: str,
    log_key: str,
    now: datetime,
    retention_days: int,
) -> Item:
    """The SecurityEvents item for one matched record (``rules``: every matching rule, config order).

    Every string is made encodable first: a lone surrogate (``"\\udc00"`` is valid JSON) cannot be sent
    to DynamoDB, so the fields get U+FFFD in its place and ``raw`` its ``\\uXXXX`` escape (the same JSON
    value, nothing lost). A ``records.PartialRecord`` (a record the reader could not hold or parse whole)
    stores the kept prefix of its text as ``raw`` with ``raw_truncated`` and says why in ``raw_issue``.
    """
    primary = primary_rule(rules)
    arn, kind = records.principal(record)
    stored_at = iso(now)
    event_time = _text(record.get("eventTime"))
    fields: dict[str, Any] = {
        "EventId": records.event_id(record),
        "event_time": _cap(event_time or stored_at, 64),
        "event_day": _event_day(event_time, now),
        "rule_ids": [rule.id for rule in rules],
        "rule_id": primary.id,
        "severity": primary.severity,
        "log_bucket": log_bucket,
        "log_key": log_key,
        "stored_at": stored_at,
        "expires_at": _epoch(now + timedelta(days=retention_days)),
        "alert_status": PENDING,
    }
    optional = {
        "event_name": _text(record.get("eventName")),
        "event_source": _text(record.get("eventSource")),
        "aws_region": _text(record.get("awsRegion")),
        "account_id": records.account_id(record),
        "principal_arn": arn,
        "principal_type": kind,
        "source_ip": _text(record.get("sourceIPAddress")),
        "user_agent": _text(record.get("userAgent")),
        "error_code": _text(record.get("errorCode")),
    }
    fields.update({name: _cap(value, FIELD_MAX_CHARS) for name, value in optional.items() if value})
    partial = isinstance(record, records.PartialRecord)
    if partial and record.issue is not None:
        fields["raw_issue"] = record.issue.kind
    item = to_item(fields)
    raw = record.raw_prefix if partial else json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    raw = records.escape_surrogates(raw)
    budget = ITEM_LIMIT_BYTES - ITEM_MARGIN_BYTES - item_size(item)
    budget -= item_size(to_item({"raw": "", "raw_truncated": True}))
    encoded = raw.encode("utf-8")
    truncated = partial or len(encoded) > budget
    if len(encoded) > budget:
        raw = encoded[: max(budget, 0)].decode("utf-8", errors="ignore")
    item.update(to_item({"raw": raw, "raw_truncated": truncated}))
    return item


def item_size(item: Item) -> int:
    """Item size as DynamoDB counts it (UTF-8 names + values), rounded up where the rules are fuzzy."""
    return sum(_attr_size(name, value) for name, value in item.items())


def _attr_size(name: str, value: AttributeValue) -> int:
    return len(name.encode("utf-8")) + _value_size(value)


def _value_size(value: AttributeValue) -> int:
    (kind, data), *_ = value.items()
    if kind == "S":
        return len(data.encode("utf-8"))
    if kind == "N":
        return len(data) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + _value_size(v) for k, v in data.items())
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in data)
    raise ValueError(f"item_size: unsupported attribute type {kind}")


@dataclass(frozen=True)
class PutResult:
    created: bool
    item: Item  # the item now in the table: ours when created, else the existing one


def put_event(ddb: Any, table: str, item: Item) -> PutResult:
    """Conditional put on ``EventId``; when the event is already stored, return the stored item instead."""
    for _ in range(3):
        try:
            ddb.put_item(
                TableName=table,
                Item=item,
                ConditionExpression="attribute_not_exists(EventId)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return PutResult(True, item)
        except ClientError as err:
            if _code(err) != "ConditionalCheckFailedException":
                raise
            existing = err.response.get("Item") or get_event(ddb, table, plain(item)["EventId"])
            if existing:
                return PutResult(False, existing)
            # Deleted between the put and the read (TTL): try the put again.
    raise RuntimeError(f"put_event: {plain(item)['EventId']} neither writable nor readable in {table}")


def get_event(ddb: Any, table: str, event_id: str) -> Item | None:
    response = ddb.get_item(TableName=table, Key=to_item({"EventId": event_id}), ConsistentRead=True)
    return response.get("Item")


@dataclass(frozen=True)
class Claim:
    claimed: bool
    status: str | None  # the item's alert_status when not claimed (None: the item is gone)


def claim(ddb: Any, table: str, event_id: str, *, token: str, now: datetime, stale_before: datetime) -> Claim:
    """``pending`` (or stale ``sending``) -> ``sending`` with our token; else report the current status."""
    try:
        ddb.update_item(
            TableName=table,
            Key=to_item({"EventId": event_id}),
            UpdateExpression="SET alert_status = :sending, alert_claim = :token, alert_claimed_at = :now",
            ConditionExpression=(
                "attribute_exists(EventId) AND (alert_status = :pending OR "
                "(alert_status = :sending AND alert_claimed_at < :stale))"
            ),
            ExpressionAttributeValues=to_item(
                {
                    ":sending": SENDING,
                    ":pending": PENDING,
                    ":token": token,
                    ":now": iso(now),
                    ":stale": iso(stale_before),
                }
            ),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return Claim(True, SENDING)
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            raise
        current = err.response.get("Item") or get_event(ddb, table, event_id)
    return Claim(False, plain(current).get("alert_status") if current else None)


def config_invalid_marker_id(bucket: str, key: str, etag: str | None) -> str:
    """The marker of one invalid config version: every container computes the same id for it."""
    digest = hashlib.sha256(f"{bucket}/{key}/{etag or ''}".encode()).hexdigest()
    return CONFIG_INVALID_PREFIX + digest


def claim_marker(
    ddb: Any,
    table: str,
    marker_id: str,
    *,
    token: str,
    now: datetime,
    stale_before: datetime,
    retention_days: int,
    details: dict[str, str],
) -> Claim:
    """Create (or re-claim) an operational marker in ``sending`` with our token, in one conditional put.

    Claimable: no marker yet, a ``pending`` one (a failed publish released it), a stale ``sending`` one (its
    owner died), or an expired one TTL has not deleted yet. Otherwise report the current status.
    """
    fields: dict[str, Any] = {
        "EventId": marker_id,
        "kind": OPERATIONAL,
        "stored_at": iso(now),
        "expires_at": _epoch(now + timedelta(days=retention_days)),
        "alert_status": SENDING,
        "alert_claim": token,
        "alert_claimed_at": iso(now),
    }
    fields.update({name: _cap(value, FIELD_MAX_CHARS) for name, value in details.items()})
    item = to_item(fields)
    try:
        ddb.put_item(
            TableName=table,
            Item=item,
            ConditionExpression=(
                "attribute_not_exists(EventId) OR alert_status = :pending OR expires_at < :epoch OR "
                "(alert_status = :sending AND alert_claimed_at < :stale)"
            ),
            ExpressionAttributeValues=to_item(
                {":pending": PENDING, ":sending": SENDING, ":stale": iso(stale_before), ":epoch": _epoch(now)}
            ),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return Claim(True, SENDING)
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            raise
        current = err.response.get("Item") or get_event(ddb, table, marker_id)
    return Claim(False, plain(current).get("alert_status") if current else None)


def release(ddb: Any, table: str, event_id: str, *, token: str) -> bool:
    """Give an unsent claim back (``sending`` -> ``pending``) so a retry need not wait for it to go stale."""
    return _conditional_update(
        ddb,
        table,
        event_id,
        update="SET alert_status = :pending REMOVE alert_claim, alert_claimed_at",
        condition="alert_status = :sending AND alert_claim = :token",
        values={":pending": PENDING, ":sending": SENDING, ":token": token},
    )


def mark_sent(ddb: Any, table: str, event_id: str, *, token: str, message_id: str, now: datetime) -> bool:
    """``sending`` (our claim) -> ``sent``. False when our claim was taken over (it had gone stale)."""
    return _conditional_update(
        ddb,
        table,
        event_id,
        update="SET alert_status = :sent, alert_message_id = :mid, alerted_at = :now",
        condition="alert_status = :sending AND alert_claim = :token",
        values={":sent": SENT, ":sending": SENDING, ":token": token, ":mid": message_id, ":now": iso(now)},
    )


def _conditional_update(
    ddb: Any, table: str, event_id: str, *, update: str, condition: str, values: dict[str, str]
) -> bool:
    try:
        ddb.update_item(
            TableName=table,
            Key=to_item({"EventId": event_id}),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=to_item(values),
        )
        return True
    except ClientError as err:
        if _code(err) == "ConditionalCheckFailedException":
            return False
        raise


def plain(item: Item) -> dict[str, Any]:
    """An item's attribute values as plain Python (TypeDeserializer; whole numbers as int, not Decimal)."""
    return {name: _whole(_deserializer.deserialize(value)) for name, value in item.items()}


def _whole(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, list):
        return [_whole(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    return value


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _event_day(event_time: str | None, now: datetime) -> str:
    if event_time:
        try:
            moment = datetime.fromisoformat(event_time)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.astimezone(UTC).strftime("%Y-%m-%d")
        except (ValueError, OverflowError):
            pass
    return now.astimezone(UTC).strftime("%Y-%m-%d")


def _text(value: Any) -> str | None:
    return records.clean_text(value) if isinstance(value, str) and value else None


def _cap(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


# --- config versions (H8): the digest of the config in force, and one marker per announced version --------

CONFIG_STATE_PREFIX = "trailwatch#config-state#"
CONFIG_LOADED_PREFIX = "trailwatch#config-loaded#"


@dataclass(frozen=True)
class ConfigState:
    """The config version last announced (ETag, or ``default:<digest id>``), its rule digest and a counter
    that grows by one per announced version (so A -> B -> A -> B is announced every time)."""

    version: str
    digest: dict[str, str]
    seq: int


def config_state_id(bucket: str, key: str) -> str:
    return CONFIG_STATE_PREFIX + hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()


def config_loaded_marker_id(bucket: str, key: str, seq: int, version: str) -> str:
    """The marker of one transition (state ``seq`` -> ``version``): every container computes the same id."""
    digest = hashlib.sha256(f"{bucket}/{key}/{seq}/{version}".encode()).hexdigest()
    return CONFIG_LOADED_PREFIX + digest


def get_config_state(ddb: Any, table: str, state_id: str) -> ConfigState | None:
    item = get_event(ddb, table, state_id)
    if item is None or "config_version" not in item:
        return None
    try:
        digest = json.loads(item.get("digest", {}).get("S", "{}"))
        seq = int(item.get("seq", {}).get("N", "0"))
    except ValueError:
        return None
    if not isinstance(digest, dict):
        return None
    return ConfigState(item["config_version"]["S"], {str(k): str(v) for k, v in digest.items()}, seq)


def put_config_state(
    ddb: Any, table: str, state_id: str, *, version: str, digest: dict[str, str], seq: int, now: datetime
) -> bool:
    """Record ``version`` as the config in force with counter ``seq``, only if the stored counter is
    ``seq - 1`` (or there is none): False when another container already moved it on. No TTL: the state
    must outlive the events, or the next version would look like the first."""
    try:
        ddb.put_item(
            TableName=table,
            Item={
                "EventId": {"S": state_id},
                "kind": {"S": OPERATIONAL},
                "stored_at": {"S": iso(now)},
                "config_version": {"S": version},
                "digest": {"S": json.dumps(digest, sort_keys=True, separators=(",", ":"))},
                "seq": {"N": str(seq)},
            },
            ConditionExpression="attribute_not_exists(EventId) OR seq = :previous",
            ExpressionAttributeValues={":previous": {"N": str(seq - 1)}},
        )
        return True
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            raise
        return False


# --- last processed log file : the marker `trailwatch verify` reads -----------------

LAST_PROCESSED_PREFIX = "trailwatch#last-processed#"
LAST_PROCESSED_EVERY = timedelta(minutes=1)
_last_processed_noted: dict[str, datetime] = {}  # per container: marker id -> when this container wrote it


def last_processed_id(bucket: str) -> str:
    return LAST_PROCESSED_PREFIX + bucket


def note_processed(ddb: Any, table: str, bucket: str, key: str, now: datetime) -> bool:
    """Record ``key`` as the last log file processed from ``bucket``, at most once a minute per container
    (one write per minute, not one per file). The stored time only moves forward. A failed write is logged
    and ignored: the file itself was processed. True when written."""
    marker = last_processed_id(bucket)
    last = _last_processed_noted.get(marker)
    if last is not None and now - last < LAST_PROCESSED_EVERY:
        return False
    _last_processed_noted[marker] = now
    stamp = iso(now)
    try:
        ddb.put_item(
            TableName=table,
            Item=to_item({"EventId": marker, "kind": OPERATIONAL, "object_key": key, "processed_at": stamp}),
            ConditionExpression="attribute_not_exists(processed_at) OR processed_at < :now",
            ExpressionAttributeValues={":now": {"S": stamp}},
        )
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            import logging

            logging.getLogger(__name__).warning("last-processed marker not written: %s", err)
        return False
    return True


# --- bulk reads and writes: fewer round trips per event ------------------------------------------------

BATCH_GET_MAX = 100  # BatchGetItem's limit per request
BATCH_GET_ATTEMPTS = 8  # rounds for UnprocessedKeys before giving up (raises: the message is retried)
_STATE_ATTRIBUTES = "EventId, alert_status, rule_id, severity, alert_claimed_at"


def batch_get_states(ddb: Any, table: str, event_ids: Sequence[str]) -> dict[str, Item]:
    """The alert state (``_STATE_ATTRIBUTES``) of those of ``event_ids`` that are stored, by EventId.

    One BatchGetItem per 100 ids, strongly consistent; UnprocessedKeys (throttling) are asked again with a
    short backoff, and an error is raised when they stay unprocessed (never reported as absent: an absent
    item is written, and a write that lost a race only costs a conditional put)."""
    found: dict[str, Item] = {}
    unique = list(dict.fromkeys(event_ids))
    for start in range(0, len(unique), BATCH_GET_MAX):
        keys = [to_item({"EventId": event_id}) for event_id in unique[start : start + BATCH_GET_MAX]]
        request: dict[str, Any] = {
            table: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": _STATE_ATTRIBUTES}
        }
        for attempt in range(BATCH_GET_ATTEMPTS):
            response = ddb.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                found[item["EventId"]["S"]] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(min(0.05 * 2**attempt, 1.0))
        else:
            raise RuntimeError(f"batch_get_states: keys still unprocessed after {BATCH_GET_ATTEMPTS} rounds")
    return found


def with_claim(item: Item, *, token: str, now: datetime) -> Item:
    """``item`` born claimed (``sending`` with our token): its creator needs no separate claim call. Only a
    conditional put that creates the item may use this, so a stored item's state is never reset."""
    claimed = dict(item)
    claimed.update(to_item({"alert_status": SENDING, "alert_claim": token, "alert_claimed_at": iso(now)}))
    return claimed


# --- checkpoints and poison files ----------------------------------------------------------------------

CHECKPOINT_PREFIX = "trailwatch#checkpoint#"
POISON_PREFIX = "trailwatch#poison-file#"
CHECKPOINT_TTL_DAYS = 15  # longer than SQS's longest retention (14 days): no message outlives its checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """How far the attempts at one log object got: the first ``matches_done`` matched records (under the
    config whose fingerprint is ``config``) are stored and alerted; ``stalls`` counts consecutive failed
    attempts that got no further."""

    matches_done: int
    records: int
    config: str
    stalls: int


def _object_digest(bucket: str, key: str, version: str | None) -> str:
    return hashlib.sha256(f"{bucket}/{key}/{version or ''}".encode()).hexdigest()


def checkpoint_id(bucket: str, key: str, version: str | None) -> str:
    """The checkpoint of one object version (versionId, or the ETag when the notification has none)."""
    return CHECKPOINT_PREFIX + _object_digest(bucket, key, version)


def poison_marker_id(bucket: str, key: str, version: str | None) -> str:
    return POISON_PREFIX + _object_digest(bucket, key, version)


def get_checkpoint(ddb: Any, table: str, marker_id: str) -> Checkpoint | None:
    item = get_event(ddb, table, marker_id)
    if item is None:
        return None
    values = plain(item)
    try:
        return Checkpoint(
            int(values.get("matches_done", 0)),
            int(values.get("records_seen", 0)),
            str(values.get("config_fingerprint", "")),
            int(values.get("stalls", 0)),
        )
    except (TypeError, ValueError):
        return None


def put_checkpoint(
    ddb: Any,
    table: str,
    marker_id: str,
    checkpoint: Checkpoint,
    *,
    bucket: str,
    key: str,
    now: datetime,
) -> bool:
    """Write the checkpoint unless a concurrent attempt already recorded more progress under the same config
    (progress never moves back). False when that happened. The object is named ``object_bucket`` and
    ``object_key``, not ``log_key``: readers that select events by their log file must not see markers."""
    fields = {
        "EventId": marker_id,
        "kind": OPERATIONAL,
        "object_bucket": bucket,
        "object_key": _cap(key, FIELD_MAX_CHARS),
        "matches_done": checkpoint.matches_done,
        "records_seen": checkpoint.records,
        "config_fingerprint": checkpoint.config,
        "stalls": checkpoint.stalls,
        "stored_at": iso(now),
        "expires_at": _epoch(now + timedelta(days=CHECKPOINT_TTL_DAYS)),
    }
    try:
        ddb.put_item(
            TableName=table,
            Item=to_item(fields),
            ConditionExpression=(
                "attribute_not_exists(EventId) OR config_fingerprint <> :config OR matches_done <= :done"
            ),
            ExpressionAttributeValues=to_item(
                {":config": checkpoint.config, ":done": checkpoint.matches_done}
            ),
        )
        return True
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            raise
        return False
