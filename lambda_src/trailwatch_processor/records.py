"""Facts about one CloudTrail record, tolerant of missing fields and unexpected types."""

from __future__ import annotations

import hashlib
import json
from typing import Any

# CloudTrail eventIDs are UUIDs. A longer one (not from CloudTrail) is hashed like a missing one, which keeps
# keys far below DynamoDB's 2048-byte limit and 50 of them small in an alert.
MAX_EVENT_ID_BYTES = 128
SUMMARY_FIELD_CHARS = 256


def event_id(record: dict) -> str:
    """``eventID``; else ``"tw-" + sha256`` of the record's canonical JSON (stable across runs and hosts)."""
    value = record.get("eventID")
    if isinstance(value, str) and value and len(value.encode("utf-8")) <= MAX_EVENT_ID_BYTES:
        return value
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "tw-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def principal(record: dict) -> tuple[str | None, str | None]:
    """(ARN, type) of who made the call. An AWS service acting for the account is named by ``invokedBy``."""
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        return None, None
    kind = _text(identity.get("type"))
    arn = _text(identity.get("arn"))
    if kind == "AWSService":
        arn = _text(identity.get("invokedBy")) or arn
    return arn, kind


def account_id(record: dict) -> str | None:
    """The account the event belongs to: ``recipientAccountId``, else ``userIdentity.accountId``."""
    value = _text(record.get("recipientAccountId"))
    if value:
        return value
    identity = record.get("userIdentity")
    return _text(identity.get("accountId")) if isinstance(identity, dict) else None


def who(record: dict) -> str | None:
    """A readable name of the caller for messages: the ARN, else user name or principal id."""
    arn, _ = principal(record)
    if arn:
        return arn
    identity = record.get("userIdentity")
    if isinstance(identity, dict):
        for name in ("userName", "principalId", "invokedBy", "accountId"):
            value = _text(identity.get(name))
            if value:
                return value
    return None


def summary(record: dict) -> dict[str, str]:
    """A short, JSON-able description of the record for alerts (absent fields omitted, values capped)."""
    arn, kind = principal(record)
    fields = {
        "eventID": event_id(record),
        "eventName": _text(record.get("eventName")),
        "eventSource": _text(record.get("eventSource")),
        "eventTime": _text(record.get("eventTime")),
        "awsRegion": _text(record.get("awsRegion")),
        "account": account_id(record),
        "principal": who(record),
        "principalType": kind,
        "principalArn": arn,
        "sourceIPAddress": _text(record.get("sourceIPAddress")),
        "userAgent": _text(record.get("userAgent")),
        "errorCode": _text(record.get("errorCode")),
        "errorMessage": _text(record.get("errorMessage")),
    }
    return {name: value if name == "eventID" else _cap(value) for name, value in fields.items() if value}


def _text(value: Any) -> str | None:
    """A string field as text; numbers and booleans as their JSON text; objects, arrays and null as None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


def _cap(value: str, limit: int = SUMMARY_FIELD_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."
