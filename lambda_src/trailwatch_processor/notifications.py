"""SQS message body -> the S3 objects it announces, and what kind of object a key names.

Accepted bodies: an S3 event notification (SNS raw delivery or straight from S3), the same inside an SNS
envelope (raw delivery off), ``s3:TestEvent`` (nothing to do), an EventBridge ``Object Created`` or
``Object Deleted`` event, and a trail's own SNS notification ``{"s3Bucket": ..., "s3ObjectKey": [...]}``
(attach mode, raw or in an SNS envelope; CloudTrail sends it after each delivered file; keys are plain).
S3 notification keys are URL-encoded (``+`` for spaces) and are decoded with ``unquote_plus``; EventBridge
keys are delivered as the plain key and are used as they are.

Each reference carries the event's ``versionId``: the processor reads exactly the version that was announced,
so overwriting a log object before it is processed cannot hide the first version's events. Removals
(``ObjectRemoved:*``) are returned too (``ObjectRef.removed``): a deleted log object is a tamper alert.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import unquote_plus

log = logging.getLogger(__name__)


class NotificationError(ValueError):
    """The message body is not a notification this function understands."""


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    event_time: str | None = None
    version_id: str | None = None  # None: an unversioned bucket (read the latest)
    sequencer: str | None = None  # S3's per-key ordering of events (hex, compare after left-padding)
    event_name: str | None = None  # e.g. ObjectCreated:Put, ObjectRemoved:DeleteMarkerCreated
    via: str | None = None  # TRAIL_SNS: announced by a trail's SNS topic (attach mode: key only)

    @property
    def removed(self) -> bool:
        """The event announces a removal (a delete marker, or a version deleted): nothing to read."""
        return bool(self.event_name and self.event_name.startswith(REMOVED_PREFIX))


CREATED_PREFIX = "ObjectCreated"
TRAIL_SNS = "trail-sns"
REMOVED_PREFIX = "ObjectRemoved"
REMOVED_DELETE = "ObjectRemoved:Delete"  # a version deleted for good (or an object of an unversioned bucket)
REMOVED_MARKER = "ObjectRemoved:DeleteMarkerCreated"  # DeleteObject without VersionId on a versioned bucket


class KeyKind(Enum):
    LOG = "log"
    DIGEST = "digest"
    INSIGHT = "insight"
    CONFIG = "config"
    OTHER = "other"


# [prefix/]AWSLogs/[o-orgid/]<account>/<kind>/<region>/YYYY/MM/DD/<file>
_AWSLOGS = r"(?:^|/)AWSLogs/(?:o-[a-z0-9]{10,32}/)?\d{12}/"
_LOG_RE = re.compile(_AWSLOGS + r"CloudTrail/[a-z0-9-]+/\d{4}/\d{2}/\d{2}/[^/]+\.json(?:\.gz)?$")
_DIGEST_RE = re.compile(_AWSLOGS + r"CloudTrail-Digest/")
_INSIGHT_RE = re.compile(_AWSLOGS + r"CloudTrail-Insight/")


_ACCOUNT_RE = re.compile(r"(?:^|/)AWSLogs/(?:o-[a-z0-9]{10,32}/)?(\d{12})/CloudTrail")


def account_from_key(key: str) -> str | None:
    """The member account a trail-bucket key belongs to (either layout, any prefix); None if not a trail key.

    The fallback when a record carries no ``recipientAccountId``."""
    match = _ACCOUNT_RE.search(key)
    return match.group(1) if match else None


def classify_key(key: str) -> KeyKind:
    """What a trail-bucket key holds; only ``LOG`` keys are CloudTrail event logs.

    The CloudTrail layouts are tested first: a trail whose S3KeyPrefix is ``config`` still has logs."""
    if _DIGEST_RE.search(key):
        return KeyKind.DIGEST
    if _INSIGHT_RE.search(key):
        return KeyKind.INSIGHT
    if _LOG_RE.search(key):
        return KeyKind.LOG
    if key.startswith("config/"):
        return KeyKind.CONFIG
    return KeyKind.OTHER


def parse_body(body: str) -> list[ObjectRef]:
    """The objects announced by one SQS message body. Raises NotificationError naming what was found."""
    doc = _load_json(body, "message body")
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        message = doc["Message"]
        if not isinstance(message, str):
            raise NotificationError(f"SNS envelope: Message is {type(message).__name__}, expected a string")
        doc = _load_json(message, "SNS envelope Message")
    return _parse_document(doc)


def _load_json(text: str, where: str) -> Any:
    if not isinstance(text, str):
        raise NotificationError(f"{where}: expected a JSON string, got {type(text).__name__}")
    snippet = text[:80].replace("\n", " ")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        at = f"line {err.lineno} col {err.colno}"
        raise NotificationError(f"{where}: not JSON ({err.msg} at {at}): {snippet!r}") from None
    except RecursionError:  # valid JSON nested deeper than the parser's stack: no notification looks so
        raise NotificationError(f"{where}: JSON nested too deeply: {snippet!r}") from None
    except ValueError as err:  # e.g. an integer over the interpreter's digit limit
        raise NotificationError(f"{where}: JSON not loadable ({str(err)[:100]}): {snippet!r}") from None


def _parse_document(doc: Any) -> list[ObjectRef]:
    if not isinstance(doc, dict):
        raise NotificationError(f"expected a JSON object, found {type(doc).__name__}")
    if doc.get("Event") == "s3:TestEvent":
        log.info("s3:TestEvent for bucket %s acknowledged", doc.get("Bucket"))
        return []
    if "Records" in doc:
        return _parse_s3_records(doc["Records"])
    if doc.get("source") == "aws.s3" and "detail-type" in doc:
        return _parse_eventbridge(doc)
    if "s3Bucket" in doc and "s3ObjectKey" in doc:
        return _parse_trail_sns(doc)
    if doc.get("Type") in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        raise NotificationError(f"SNS {doc['Type']}, not a notification (topic {doc.get('TopicArn')})")
    keys = ", ".join(sorted(str(k) for k in doc)[:10]) or "none"
    raise NotificationError(f"unrecognised message: an object with keys {keys}")


def _parse_s3_records(records: Any) -> list[ObjectRef]:
    if not isinstance(records, list):
        raise NotificationError(f"Records is {type(records).__name__}, expected a list")
    refs: list[ObjectRef] = []
    for i, rec in enumerate(records):
        where = f"Records[{i}]"
        if not isinstance(rec, dict):
            raise NotificationError(f"{where}: expected an object, found {type(rec).__name__}")
        event_name = str(rec.get("eventName", ""))
        if rec.get("eventSource") != "aws:s3":
            raise NotificationError(f"{where}: eventSource {rec.get('eventSource')!r}, expected 'aws:s3'")
        if not event_name.startswith((CREATED_PREFIX, REMOVED_PREFIX)):
            log.info(
                "%s: ignoring S3 event %s (only ObjectCreated/ObjectRemoved concern logs)", where, event_name
            )
            continue
        bucket, key, obj = _bucket_key(
            rec.get("s3"), f"{where}: s3.bucket.name / s3.object.key missing or not strings"
        )
        refs.append(
            ObjectRef(
                bucket=bucket,
                key=unquote_plus(key),
                size=_int_or_none(obj.get("size")),
                etag=_str_or_none(obj.get("eTag")),
                event_time=_str_or_none(rec.get("eventTime")),
                version_id=_str_or_none(obj.get("versionId")) or None,
                sequencer=_str_or_none(obj.get("sequencer")),
                event_name=event_name,
            )
        )
    return refs


def _parse_eventbridge(doc: dict) -> list[ObjectRef]:
    detail_type = doc.get("detail-type")
    if detail_type not in ("Object Created", "Object Deleted"):
        log.info("ignoring EventBridge S3 event %r (only Object Created/Deleted concern logs)", detail_type)
        return []
    detail = doc.get("detail")
    bucket, key, obj = _bucket_key(
        detail, f"EventBridge {detail_type}: detail.bucket.name / detail.object.key missing"
    )
    if detail_type == "Object Created":
        event_name = f"{CREATED_PREFIX}:{_str_or_none(detail.get('reason')) or 'Put'}"
    elif _dig(detail, "reason") == "Lifecycle Expiration":
        log.info("ignoring EventBridge Object Deleted by lifecycle expiration of %s", key)
        return []
    else:  # deletion-type: "Permanently Deleted" or "Delete Marker Created"
        marker = detail.get("deletion-type") == "Delete Marker Created"
        event_name = REMOVED_MARKER if marker else REMOVED_DELETE
    return [
        ObjectRef(
            bucket=bucket,
            key=key,
            size=_int_or_none(obj.get("size")),
            etag=_str_or_none(obj.get("etag", obj.get("eTag"))),
            event_time=_str_or_none(doc.get("time")),
            version_id=_str_or_none(obj.get("version-id")) or None,
            sequencer=_str_or_none(obj.get("sequencer")),
            event_name=event_name,
        )
    ]


def _parse_trail_sns(doc: dict) -> list[ObjectRef]:
    """A trail's delivery notification: every key named is a new log file (no version, size or etag given).

    The key list is read as CloudTrail sends it (plain keys, not URL-encoded); a lone string is tolerated."""
    bucket = doc.get("s3Bucket")
    keys = doc.get("s3ObjectKey")
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(bucket, str) or not bucket:
        raise NotificationError("trail notification: s3Bucket missing or not a string")
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise NotificationError("trail notification: s3ObjectKey is not a list of non-empty strings")
    return [
        ObjectRef(bucket=bucket, key=key, event_name=f"{CREATED_PREFIX}:Put", via=TRAIL_SNS) for key in keys
    ]


def _bucket_key(doc: Any, problem: str) -> tuple[str, str, dict]:
    """``doc``'s bucket.name, object.key (both non-empty strings, else NotificationError(problem)) and
    object."""
    bucket = _dig(doc, "bucket", "name")
    key = _dig(doc, "object", "key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        raise NotificationError(problem)
    return bucket, key, doc["object"]


def _dig(doc: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(name)
    return doc


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
