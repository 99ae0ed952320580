"""SecurityEvents items: building them under the 400 KB limit, idempotent writes, and the alert state.

Low-level DynamoDB client; items and expression values are written as plain Python and converted by boto3's
TypeSerializer (which refuses floats: none ever reach DynamoDB), and read back with its TypeDeserializer.

Alert state on each item (docs/architecture.md): ``pending`` -> ``sending`` (claimed: ``alert_claim``
token and ``alert_claimed_at``) -> ``sent`` (``alert_message_id``, ``alerted_at``). Only the invocation
whose conditional claim succeeds publishes. A claim older than the stale threshold (>= the function
timeout, so its owner is certainly dead) may be taken over. The table's other items (operational markers,
checkpoints, config state) are markers.py's.
"""

from __future__ import annotations

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

# How an event reached the table first (its item's ``path``): a CloudTrail log file in S3, or the fast path
# (an EventBridge rule on the default bus, through its own SQS queue; see fast_path.py).
PATH_S3 = "s3"
PATH_EVENTBRIDGE = "eventbridge"

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
    log_bucket: str | None,
    log_key: str | None,
    now: datetime,
    retention_days: int,
    path: str = PATH_S3,
) -> Item:
    """The SecurityEvents item for one matched record (``rules``: every matching rule, config order).

    Every string is made encodable first: a lone surrogate (``"\\udc00"`` is valid JSON) cannot be sent
    to DynamoDB, so the fields get U+FFFD in its place and ``raw`` its ``\\uXXXX`` escape (the same JSON
    value, nothing lost). A ``records.PartialRecord`` (a record the reader could not hold or parse whole)
    stores the kept prefix of its text as ``raw`` with ``raw_truncated`` and says why in ``raw_issue``.
    ``path`` says which way in stored it; a fast-path item has no log file yet (``log_bucket``/``log_key``
    None: omitted, added by ``add_log_file`` when the file brings the event).
    """
    primary = primary_rule(rules)
    arn, kind = records.principal(record)
    stored_at = iso(now)
    event_time = _text(record.get("eventTime"))
    fields: dict[str, Any] = {
        "EventId": records.event_id(record),
        "event_time": cap(event_time or stored_at, 64),
        "event_day": _event_day(event_time, now),
        "rule_ids": [rule.id for rule in rules],
        "rule_id": primary.id,
        "severity": primary.severity,
        "path": path,
        "stored_at": stored_at,
        "expires_at": epoch(now + timedelta(days=retention_days)),
        "alert_status": PENDING,
    }
    optional = {
        "log_bucket": log_bucket,
        "log_key": log_key,
        "event_name": _text(record.get("eventName")),
        "event_source": _text(record.get("eventSource")),
        "aws_region": _text(record.get("awsRegion")),
        "account_id": records.account_id(record, log_key),
        "principal_arn": arn,
        "principal_type": kind,
        "source_ip": _text(record.get("sourceIPAddress")),
        "user_agent": _text(record.get("userAgent")),
        "error_code": _text(record.get("errorCode")),
    }
    fields.update({name: cap(value, FIELD_MAX_CHARS) for name, value in optional.items() if value})
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
            if error_code(err) != "ConditionalCheckFailedException":
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
        return refused_claim(ddb, table, event_id, err)


def refused_claim(ddb: Any, table: str, event_id: str, err: ClientError) -> Claim:
    """The outcome of a conditional claim that ``err`` refused: the item's current status (from the refusal's
    ALL_OLD item, else read; None when it is gone). Any error but a failed condition is raised."""
    if error_code(err) != "ConditionalCheckFailedException":
        raise err
    current = err.response.get("Item") or get_event(ddb, table, event_id)
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


def add_log_file(ddb: Any, table: str, event_id: str, *, bucket: str, key: str) -> bool:
    """Name the log file on an item stored before its file arrived (by the fast path): one conditional
    update, only where ``log_key`` is absent (a file never overwrites another's). False: nothing to do."""
    try:
        ddb.update_item(
            TableName=table,
            Key=to_item({"EventId": event_id}),
            UpdateExpression="SET log_bucket = :bucket, log_key = :key",
            ConditionExpression="attribute_exists(EventId) AND attribute_not_exists(log_key)",
            ExpressionAttributeValues=to_item({":bucket": bucket, ":key": cap(key, FIELD_MAX_CHARS)}),
        )
        return True
    except ClientError as err:
        if error_code(err) == "ConditionalCheckFailedException":
            return False
        raise


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
        if error_code(err) == "ConditionalCheckFailedException":
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


def epoch(moment: datetime) -> int:
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


def cap(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


# --- bulk reads and writes: fewer round trips per event ------------------------------------------------

BATCH_GET_MAX = 100  # BatchGetItem's limit per request
BATCH_GET_ATTEMPTS = 8  # rounds for UnprocessedKeys before giving up (raises: the message is retried)
_STATE_ATTRIBUTES = "EventId, alert_status, rule_id, severity, alert_claimed_at, log_key"


def batch_get_states(ddb: Any, table: str, event_ids: Sequence[str]) -> dict[str, Item]:
    """The alert state (``_STATE_ATTRIBUTES``) of those of ``event_ids`` that are stored, by EventId."""
    return batch_get(ddb, table, event_ids, _STATE_ATTRIBUTES, who="batch_get_states")


def batch_get(
    ddb: Any, table: str, event_ids: Sequence[str], projection: str, *, who: str
) -> dict[str, Item]:
    """The ``projection`` attributes of those of ``event_ids`` that are stored, by EventId.

    One BatchGetItem per 100 ids, strongly consistent; UnprocessedKeys (throttling) are asked again with a
    short backoff, and an error (naming ``who``) is raised when they stay unprocessed (never reported as
    absent: an absent item is written, and a write that lost a race only costs a conditional put)."""
    found: dict[str, Item] = {}
    unique = list(dict.fromkeys(event_ids))
    for start in range(0, len(unique), BATCH_GET_MAX):
        keys = [to_item({"EventId": event_id}) for event_id in unique[start : start + BATCH_GET_MAX]]
        request: dict[str, Any] = {
            table: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": projection}
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
            raise RuntimeError(f"{who}: keys still unprocessed after {BATCH_GET_ATTEMPTS} rounds")
    return found


def with_claim(item: Item, *, token: str, now: datetime) -> Item:
    """``item`` born claimed (``sending`` with our token): its creator needs no separate claim call. Only a
    conditional put that creates the item may use this, so a stored item's state is never reset."""
    claimed = dict(item)
    claimed.update(to_item({"alert_status": SENDING, "alert_claim": token, "alert_claimed_at": iso(now)}))
    return claimed
