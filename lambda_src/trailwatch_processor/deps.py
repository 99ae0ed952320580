"""What processing one object needs and reports: ``Deps`` (every client, setting and clock, and the
claim-then-publish of one operational marker), ``FileResult``, and the failures a file can end with.

Pure of globals, so that the tests and the local stack pass their own clients and clocks.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import ClientError

from . import alerts, markers, store
from .aws import Settings
from .notifications import ObjectRef

log = logging.getLogger(__name__)

DEFAULT_CLAIM_STALE_SECONDS = 900.0  # the longest Lambda timeout


class ObjectMissingError(Exception):
    """The notified object does not exist (deleted before processing, or a forged notification)."""


def get_object(s3: Any, ref: ObjectRef, owner: str | None = None) -> Any:
    """The body of the version the notification named (latest when it named none: an unversioned bucket),
    so that overwriting or deleting the key before we read it hides nothing; a missing object (or version)
    is ObjectMissingError. ``owner`` is checked by S3 (ExpectedBucketOwner) when given."""
    params: dict[str, str] = {"ExpectedBucketOwner": owner} if owner else {}
    if ref.version_id:
        params["VersionId"] = ref.version_id
    try:
        return s3.get_object(Bucket=ref.bucket, Key=ref.key, **params)["Body"]
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code"))
        if code in ("NoSuchKey", "NoSuchVersion", "404"):
            raise ObjectMissingError(f"the object does not exist ({code})") from err
        raise


class BudgetExhausted(Exception):
    """The file's share of the invocation ran out: it stopped at a record boundary, alerted what it stored
    and saved a checkpoint; the retry resumes from there."""


class Budget(Protocol):
    def left(self) -> float:
        """Seconds left of the file's share."""
        ...


class AlertsInFlightError(Exception):
    """Some events are claimed by another live invocation: fail the message so that it comes back and
    confirms they were sent (if that invocation dies, its claim goes stale and the retry takes it over)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_token() -> str:
    return uuid.uuid4().hex


@dataclass
class Deps:
    s3: Any
    dynamodb: Any
    sns: Any
    settings: Settings
    config: Any  # ConfigCache, or anything with .matcher()
    now: Callable[[], datetime] = _utcnow
    claim_stale_seconds: float = DEFAULT_CLAIM_STALE_SECONDS
    new_token: Callable[[], str] = _new_token
    bucket_owner: str | None = None  # this account: ExpectedBucketOwner of every log GET (None: unchecked)
    monotonic: Callable[[], float] = time.monotonic  # paces the alert flushes
    sqs: Any = None  # noise control's window-close messages (None: created when first needed)
    noise_queue_url: str | None = None  # None: the NOISE_QUEUE_URL environment variable

    def last_receive(self, attempt: int | None) -> bool:
        """This receive is the queue's last (maxReceiveCount): if the message fails now it goes to the DLQ."""
        limit = self.settings.max_receive_count
        return attempt is not None and limit is not None and attempt >= limit

    def claim_marker(self, marker_id: str, details: dict[str, str]) -> tuple[store.Claim, str, datetime]:
        """markers.claim_marker on the events table with a new token, taking over claims older than
        claim_stale_seconds: (outcome, token, now), the token and time to release or mark it sent with."""
        token, now = self.new_token(), self.now()
        outcome = markers.claim_marker(
            self.dynamodb,
            self.settings.events_table,
            marker_id,
            token=token,
            now=now,
            stale_before=now - timedelta(seconds=self.claim_stale_seconds),
            retention_days=self.settings.retention_days,
            details=details,
        )
        return outcome, token, now

    def publish_claimed(self, marker_id: str, token: str, now: datetime, message: alerts.SnsMessage) -> bool:
        """Publish the alert of a marker claimed with `token` and mark it sent. False: another invocation
        took the claim over meanwhile (possible duplicate). A failed publish releases the claim (best effort:
        else it goes stale and a retry takes it over) and raises."""
        try:
            message_id = alerts.publish(self.sns, self.settings.alert_topic_arn, message)
        except Exception:
            release_claims([marker_id], token, self)
            raise
        return store.mark_sent(
            self.dynamodb, self.settings.events_table, marker_id, token=token, message_id=message_id, now=now
        )


@dataclass
class FileResult:
    bucket: str
    key: str
    kind: str
    skipped: bool = False
    records: int = 0
    matched: int = 0
    stored: int = 0  # new items
    duplicates: int = 0  # already in the table
    alerts: int = 0  # SNS messages sent
    alerted_events: int = 0
    in_flight: int = 0  # events being alerted by another invocation
    ms: float = 0.0
    fast_path: bool = False
    resumed_from: int = 0  # matched records handled by earlier attempts (the checkpoint read)
    stopped: bool = False  # the time share ran out
    checkpoint: int | None = None  # matched records handled, as saved after a failed attempt
    record_issues: list = field(default_factory=list)  # logfile.RecordIssue: poison records isolated
    record_issue_count: int = 0

    def log_fields(self) -> dict[str, Any]:
        """Every field in order, but the isolated records only counted (as ``record_issues``) and ``ms``
        rounded, last."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        del values["record_issues"], values["record_issue_count"], values["ms"]
        return {**values, "record_issues": self.record_issue_count, "ms": round(self.ms, 1)}


def object_version(ref: ObjectRef) -> str | None:
    """What names the notified version of the object: its versionId, else its ETag."""
    return getattr(ref, "version_id", None) or ref.etag


def release_claims(claimed: list[str], token: str, deps: Deps) -> None:
    """Best effort: a claim that cannot be released goes stale and is re-claimed by the retry."""
    for event_id in claimed:
        try:
            store.release(deps.dynamodb, deps.settings.events_table, event_id, token=token)
        except Exception as err:
            log.warning("event %s: releasing the alert claim failed (%s); it will go stale", event_id, err)
