"""Facts about one CloudTrail record, tolerant of missing fields and unexpected types."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .notifications import account_from_key

# CloudTrail eventIDs are UUIDs. A longer one (not from CloudTrail) is hashed like a missing one, which keeps
# keys far below DynamoDB's 2048-byte limit and 50 of them small in an alert.
MAX_EVENT_ID_BYTES = 128
SUMMARY_FIELD_CHARS = 256

# A Python str decoded from JSON holds a surrogate code point only when it was a lone one (``"\\udc00"``:
# valid JSON, not valid Unicode); the reader's ``surrogateescape`` decoding also turns invalid UTF-8 bytes
# into U+DC80..U+DCFF. Neither can be encoded as UTF-8, so neither may reach DynamoDB, SNS or a hash.
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class PartialRecord(dict):
    """The top-level members recovered from the first bytes of a record that could not be read whole
    (over the reader's size cap, nested too deeply, unparsable); matched on what was recovered.

    ``raw_prefix`` is the record's text as far as it was kept (at most the cap), ``issue`` says why
    (``logfile.RecordIssue``). ``store.build_item`` stores ``raw_prefix`` with ``raw_truncated`` set.
    """

    raw_prefix: str = ""
    issue: Any = None


def clean_text(value: str) -> str:
    """``value`` with every surrogate code point replaced by U+FFFD (the usual case returns ``value``)."""
    return _SURROGATE.sub(REPLACEMENT, value) if _SURROGATE.search(value) else value


def has_surrogates(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def escape_surrogates(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with each surrogate written as its ``\\uXXXX``
    escape: still the same JSON value, now encodable as UTF-8 (lossless, unlike ``clean_text``)."""
    if not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def clean_value(value: Any) -> Any:
    """A JSON value with every string (keys included) passed through ``clean_text``; iterative, so a
    record nested as deep as the parser allowed cannot overflow the stack here."""
    if isinstance(value, str):
        return clean_text(value)
    if not isinstance(value, dict | list):
        return value
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]  # (parent, slot, original)
    while stack:
        parent, slot, original = stack.pop()
        if isinstance(original, dict):
            copy: dict[str, Any] = {}
            parent[slot] = copy
            for key, item in original.items():
                key = clean_text(key) if isinstance(key, str) else key
                copy[key] = None
                stack.append((copy, key, item))
        elif isinstance(original, list):
            items: list[Any] = [None] * len(original)
            parent[slot] = items
            stack.extend((items, i, item) for i, item in enumerate(original))
        else:
            parent[slot] = clean_text(original) if isinstance(original, str) else original
    return root[0]


def event_id(record: dict) -> str:
    """``eventID``; else ``"tw-" + sha256`` of the record's canonical JSON (stable across runs and hosts)."""
    value = record.get("eventID")
    if (
        isinstance(value, str)
        and value
        and not has_surrogates(value)
        and len(value.encode("utf-8")) <= MAX_EVENT_ID_BYTES
    ):
        return value
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: a lone surrogate hashes as its own bytes; text without one hashes as plain UTF-8.
    return "tw-" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


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


def account_id(record: dict, log_key: str | None = None) -> str | None:
    """The account the event belongs to: ``recipientAccountId``, else the account in the log file's key
    (``AWSLogs/[o-org/]<account>/``: an organization trail's member account), else
    ``userIdentity.accountId`` (the caller's, which may be another account)."""
    value = _text(record.get("recipientAccountId"))
    if value:
        return value
    from_key = account_from_key(log_key) if log_key else None
    if from_key:
        return from_key
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


def summary(record: dict, log_key: str | None = None) -> dict[str, str]:
    """A short, JSON-able description of the record for alerts (absent fields omitted, values capped);
    `log_key`: the log file's key, for the account when the record names none."""
    arn, kind = principal(record)
    fields = {
        "eventID": event_id(record),
        "eventName": _text(record.get("eventName")),
        "eventSource": _text(record.get("eventSource")),
        "eventTime": _text(record.get("eventTime")),
        "awsRegion": _text(record.get("awsRegion")),
        "account": account_id(record, log_key),
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
    """A string field as text (surrogates replaced); numbers and booleans as their JSON text; objects,
    arrays and null as None."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


def _cap(value: str, limit: int = SUMMARY_FIELD_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."
