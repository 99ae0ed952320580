"""SecurityEvents items: building them under the 400 KB limit, idempotent writes, and the alert state.

Low-level DynamoDB client and explicit attribute values: no Python floats ever reach DynamoDB.

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

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
Item = dict[str, AttributeValue]


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
    """The SecurityEvents item for one matched record (``rules``: every matching rule, config order)."""
    primary = primary_rule(rules)
    arn, kind = records.principal(record)
    stored_at = iso(now)
    event_time = _text(record.get("eventTime"))
    item: Item = {
        "EventId": {"S": records.event_id(record)},
        "event_time": {"S": _cap(event_time or stored_at, 64)},
        "event_day": {"S": _event_day(event_time, now)},
        "rule_ids": {"L": [{"S": rule.id} for rule in rules]},
        "rule_id": {"S": primary.id},
        "severity": {"S": primary.severity},
        "log_bucket": {"S": log_bucket},
        "log_key": {"S": log_key},
        "stored_at": {"S": stored_at},
        "expires_at": {"N": str(_epoch(now + timedelta(days=retention_days)))},
        "alert_status": {"S": PENDING},
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
    for name, value in optional.items():
        if value:
            item[name] = {"S": _cap(value, FIELD_MAX_CHARS)}
    raw = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    budget = ITEM_LIMIT_BYTES - ITEM_MARGIN_BYTES - item_size(item) - _attr_size("raw", {"S": ""})
    budget -= _attr_size("raw_truncated", {"BOOL": True})
    encoded = raw.encode("utf-8")
    truncated = len(encoded) > budget
    if truncated:
        raw = encoded[: max(budget, 0)].decode("utf-8", errors="ignore")
    item["raw"] = {"S": raw}
    item["raw_truncated"] = {"BOOL": truncated}
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
            existing = err.response.get("Item") or get_event(ddb, table, item["EventId"]["S"])
            if existing:
                return PutResult(False, existing)
            # Deleted between the put and the read (TTL): try the put again.
    raise RuntimeError(f"put_event: {item['EventId']['S']} neither writable nor readable in {table}")


def get_event(ddb: Any, table: str, event_id: str) -> Item | None:
    response = ddb.get_item(TableName=table, Key={"EventId": {"S": event_id}}, ConsistentRead=True)
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
            Key={"EventId": {"S": event_id}},
            UpdateExpression="SET alert_status = :sending, alert_claim = :token, alert_claimed_at = :now",
            ConditionExpression=(
                "attribute_exists(EventId) AND (alert_status = :pending OR "
                "(alert_status = :sending AND alert_claimed_at < :stale))"
            ),
            ExpressionAttributeValues={
                ":sending": {"S": SENDING},
                ":pending": {"S": PENDING},
                ":token": {"S": token},
                ":now": {"S": iso(now)},
                ":stale": {"S": iso(stale_before)},
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return Claim(True, SENDING)
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            raise
        current = err.response.get("Item") or get_event(ddb, table, event_id)
    return Claim(False, current.get("alert_status", {}).get("S") if current else None)


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
    item: Item = {
        "EventId": {"S": marker_id},
        "kind": {"S": OPERATIONAL},
        "stored_at": {"S": iso(now)},
        "expires_at": {"N": str(_epoch(now + timedelta(days=retention_days)))},
        "alert_status": {"S": SENDING},
        "alert_claim": {"S": token},
        "alert_claimed_at": {"S": iso(now)},
    }
    for name, value in details.items():
        item[name] = {"S": _cap(value, FIELD_MAX_CHARS)}
    try:
        ddb.put_item(
            TableName=table,
            Item=item,
            ConditionExpression=(
                "attribute_not_exists(EventId) OR alert_status = :pending OR expires_at < :epoch OR "
                "(alert_status = :sending AND alert_claimed_at < :stale)"
            ),
            ExpressionAttributeValues={
                ":pending": {"S": PENDING},
                ":sending": {"S": SENDING},
                ":stale": {"S": iso(stale_before)},
                ":epoch": {"N": str(_epoch(now))},
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return Claim(True, SENDING)
    except ClientError as err:
        if _code(err) != "ConditionalCheckFailedException":
            raise
        current = err.response.get("Item") or get_event(ddb, table, marker_id)
    return Claim(False, current.get("alert_status", {}).get("S") if current else None)


def release(ddb: Any, table: str, event_id: str, *, token: str) -> bool:
    """Give an unsent claim back (``sending`` -> ``pending``) so a retry need not wait for it to go stale."""
    return _conditional_update(
        ddb,
        table,
        event_id,
        update="SET alert_status = :pending REMOVE alert_claim, alert_claimed_at",
        condition="alert_status = :sending AND alert_claim = :token",
        values={":pending": {"S": PENDING}, ":sending": {"S": SENDING}, ":token": {"S": token}},
    )


def mark_sent(ddb: Any, table: str, event_id: str, *, token: str, message_id: str, now: datetime) -> bool:
    """``sending`` (our claim) -> ``sent``. False when our claim was taken over (it had gone stale)."""
    return _conditional_update(
        ddb,
        table,
        event_id,
        update="SET alert_status = :sent, alert_message_id = :mid, alerted_at = :now",
        condition="alert_status = :sending AND alert_claim = :token",
        values={
            ":sent": {"S": SENT},
            ":sending": {"S": SENDING},
            ":token": {"S": token},
            ":mid": {"S": message_id},
            ":now": {"S": iso(now)},
        },
    )


def _conditional_update(
    ddb: Any, table: str, event_id: str, *, update: str, condition: str, values: dict[str, AttributeValue]
) -> bool:
    try:
        ddb.update_item(
            TableName=table,
            Key={"EventId": {"S": event_id}},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
        return True
    except ClientError as err:
        if _code(err) == "ConditionalCheckFailedException":
            return False
        raise


def plain(item: Item) -> dict[str, Any]:
    """An item's attribute values as plain Python (S -> str, N -> int, BOOL -> bool, L -> list)."""
    return {name: _plain_value(value) for name, value in item.items()}


def _plain_value(value: AttributeValue) -> Any:
    (kind, data), *_ = value.items()
    if kind == "N":
        return int(data) if data.lstrip("-").isdigit() else data
    if kind == "L":
        return [_plain_value(v) for v in data]
    if kind == "M":
        return plain(data)
    if kind == "NULL":
        return None
    return data


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
    return value if isinstance(value, str) and value else None


def _cap(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))
