"""Poison records (issue 15): each is logged with its position, and a file's are reported once overall.

The reader (logfile.py) isolates records it cannot hold or parse whole, the matcher's failures and the
processor's per-record store failures as ``logfile.RecordIssue`` (record index, byte offset, kind, detail),
and reads on. ``report`` logs every issue on every attempt (so the log of each attempt is complete) and
sends one operational alert per file and set of issues, claimed like the config alerts
(``markers.claim_marker``): a retry of the same file, or another container, finds the marker and does not
alert again. Matched records among them are also stored and alerted as events (truncated ones with
``raw_truncated``/``raw_issue``); the operational alert is what reports the ones that matched nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from . import alerts
from .records import clean_text

if TYPE_CHECKING:
    from .deps import Deps
    from .logfile import RecordIssue
    from .notifications import ObjectRef

log = logging.getLogger(__name__)

MARKER_PREFIX = "trailwatch#record-issues#"
ISSUES_IN_ALERT = 20


def is_record_fault(err: BaseException) -> bool:
    """An error that one record causes and a retry cannot cure: DynamoDB refusing the item
    (ValidationException), or the item or message not buildable from it. Anything else (throttling,
    network, a missing table) fails the message as before."""
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code")) == "ValidationException"
    return isinstance(err, ValueError | TypeError | RecursionError | OverflowError)


def marker_id(ref: ObjectRef, issues: Sequence[RecordIssue], count: int) -> str:
    """Same object version and same issues -> same marker, in every container and every retry."""
    version = getattr(ref, "version_id", None) or getattr(ref, "etag", None) or ""
    where = ";".join(f"{i.index}:{i.offset}:{i.kind}" for i in issues)
    digest = hashlib.sha256(f"{ref.bucket}/{ref.key}/{version}/{count}/{where}".encode()).hexdigest()
    return MARKER_PREFIX + digest


def report(ref: ObjectRef, issues: Sequence[RecordIssue], count: int, deps: Deps) -> bool:
    """Log each issue; send the file's operational alert unless it was sent (or is being sent) already.
    True when this call published it. A failed publish releases the claim and raises (the message fails
    and its retry reports again)."""
    if not count:
        return False
    source = f"s3://{ref.bucket}/{ref.key}"
    for issue in issues:
        log.warning(
            "poison record %d at byte %d of %s (%s): %s",
            issue.index,
            issue.offset,
            source,
            issue.kind,
            clean_text(issue.detail),
            extra={"data": {"bucket": ref.bucket, "key": ref.key, **issue.as_dict()}},
        )
    marker = marker_id(ref, issues, count)
    outcome, token, now = deps.claim_marker(
        marker,
        # Not log_bucket/log_key: those name an event's file, and readers of the table select events by them.
        {"source": source, "record_issues": str(count)},
    )
    if not outcome.claimed:
        log.info("%s: record issues alert is %s", source, outcome.status or "gone")
        return False
    message = alerts.operational_alert(
        f"{count} record(s) of a log file could not be read, matched or stored whole",
        _detail(source, issues, count),
        source=source,
        severity="high",
    )
    if not deps.publish_claimed(marker, token, now, message):
        log.warning("%s: record issues marker taken over before it was marked sent", source)
    return True


def _detail(source: str, issues: Sequence[RecordIssue], count: int) -> str:
    lines = [f"{source}: {count} record(s) isolated; the rest of the file was processed."]
    lines += [
        f"record {i.index} at byte {i.offset}: {i.kind}: {clean_text(i.detail)[:300]}"
        for i in issues[:ISSUES_IN_ALERT]
    ]
    if count > min(len(issues), ISSUES_IN_ALERT):
        lines.append(f"... and {count - min(len(issues), ISSUES_IN_ALERT)} more (see the function's log)")
    return "\n".join(lines)
