"""Tampering with the trail bucket's log objects: a removal or an overwrite is one operational alert.

CloudTrail writes each log object once and never deletes it (our lifecycle rule expires old ones, and S3
announces that as ``s3:LifecycleExpiration:*``, which the bucket does not notify). So under ``AWSLogs/``:
- an ``ObjectRemoved:*`` event (DeleteObject made a delete marker, or a version was deleted for good) is
  someone removing evidence;
- a second version of a log key is someone overwriting evidence. The processor reads the version each
  notification names, so both versions are processed; ``check_overwrite`` finds the overwrite with one
  ``ListObjectVersions(Prefix=key, MaxKeys=2)`` per created log file (about one call per region every
  5 minutes).

Each finding is sent once overall, whatever the number of deliveries or containers: the marker claim of
markers.py, as for an invalid config (one marker per removal event, one per latest version of an overwritten
key). A marker claimed by another live invocation fails the message so that it
comes back and confirms the alert went out (deps.AlertsInFlightError, logged as a retry, not as an
error); a failed publish releases the claim and raises.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from typing import TYPE_CHECKING

from . import alerts, store
from .deps import AlertsInFlightError
from .notifications import REMOVED_MARKER, KeyKind, ObjectRef, classify_key

if TYPE_CHECKING:
    from .deps import Deps

log = logging.getLogger(__name__)

TAMPER_PREFIX = "trailwatch#tamper#"
SEVERITY = "high"
# `trailwatch verify --probe` writes a log file and deletes it afterwards. Its id part (CloudTrail's is 16
# characters) marks it, so that its cleanup is no tamper alert. Skipping such keys hides nothing: CloudTrail
# never writes one, and a probe file holds only the probe's synthetic record.
PROBE_ID_PREFIX = "TWPROBE"
_PROBE_RE = re.compile(r"_CloudTrail_[a-z0-9-]+_\d{8}T\d{4}Z_" + PROBE_ID_PREFIX + r"[0-9A-F]{16}\.json\.gz$")


def marker_id(*parts: str) -> str:
    """The marker of one finding: every container computes the same id for it."""
    return TAMPER_PREFIX + hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def probe_id() -> str:
    """The id part of a `verify --probe` log file name (see PROBE_ID_PREFIX)."""
    return PROBE_ID_PREFIX + uuid.uuid4().hex[:16].upper()


def is_probe_key(key: str) -> bool:
    return _PROBE_RE.search(key) is not None


def report_removal(ref: ObjectRef, deps: Deps) -> int:
    """Alert (once overall) that ``ref`` was removed. Returns the alerts this call published (0 or 1)."""
    if classify_key(ref.key) is KeyKind.CONFIG or is_probe_key(ref.key):
        log.info("removal of s3://%s/%s (config or verify probe): no tamper alert", ref.bucket, ref.key)
        return 0
    how = "a delete marker was created" if ref.event_name == REMOVED_MARKER else "a version was deleted"
    version = ref.version_id or "(none: unversioned bucket)"
    detail = (
        f"Object {ref.key} in bucket {ref.bucket} was deleted ({ref.event_name}: {how}).\n"
        f"Version: {version}\nEvent time: {ref.event_time or 'unknown'}\n"
        f"Sequencer: {ref.sequencer or 'unknown'}\n"
        "CloudTrail never deletes its log files: find who called DeleteObject on the trail bucket "
        "(S3 data events, or the bucket's access logs) and check the remaining versions of the key."
    )
    # A version id names one removal for good (a marker's id is new, a deleted version goes once); without
    # one (unversioned) the sequencer tells two deletions of the key apart.
    once = f"version:{ref.version_id}" if ref.version_id else f"sequencer:{ref.sequencer or ''}"
    marker = marker_id("removed", ref.bucket, ref.key, ref.event_name or "", once)
    title = "CloudTrail log object deleted"
    return _alert_once(marker, title, detail, ref, deps, {"tamper": "removed", "version_id": version})


def check_overwrite(ref: ObjectRef, deps: Deps) -> int:
    """Alert (once per latest version) when the created log key has more than one version.

    Only for versioned references (an unversioned bucket is never ours and cannot show an overwrite).
    Returns the alerts this call published (0 or 1)."""
    if ref.version_id is None or ref.removed:
        return 0
    owned = {"ExpectedBucketOwner": deps.bucket_owner} if deps.bucket_owner else {}
    listing = deps.s3.list_object_versions(Bucket=ref.bucket, Prefix=ref.key, MaxKeys=2, **owned)
    # Prefix=key also lists longer keys; they sort after this key, whose versions come newest first.
    versions = [v for v in listing.get("Versions", []) if v.get("Key") == ref.key]
    if len(versions) < 2:
        return 0
    latest, previous = versions[0], versions[1]
    lines = [
        f"Object {ref.key} in bucket {ref.bucket} has more than one version: it was overwritten.",
        f"Latest version: {latest.get('VersionId')} ({latest.get('LastModified')}, "
        f"{latest.get('Size')} bytes)",
        f"Earlier version: {previous.get('VersionId')} ({previous.get('LastModified')}, "
        f"{previous.get('Size')} bytes)",
        f"Notified version being processed: {ref.version_id}",
        "CloudTrail writes each log file once. Every version is processed (each notification names its "
        "version); find who called PutObject on the trail bucket.",
    ]
    marker = marker_id("overwritten", ref.bucket, ref.key, str(latest.get("VersionId")))
    details = {"tamper": "overwritten", "version_id": str(latest.get("VersionId"))}
    return _alert_once(marker, "CloudTrail log object overwritten", "\n".join(lines), ref, deps, details)


def _alert_once(
    marker: str, title: str, detail: str, ref: ObjectRef, deps: Deps, details: dict[str, str]
) -> int:
    source = f"s3://{ref.bucket}/{ref.key}"
    outcome, token, now = deps.claim_marker(
        marker,
        {"object_bucket": ref.bucket, "object_key": ref.key, **details},
    )
    if not outcome.claimed:
        if outcome.status == store.SENT:
            log.info("tamper alert for %s already sent", source)
            return 0
        raise AlertsInFlightError(f"tamper alert for {source} is {outcome.status or 'gone'} elsewhere")
    message = alerts.build_alert(  # operational_alert's shape, with the finding's fields for machines
        alerts.Alert(
            rule_id=alerts.OPERATIONAL_RULE,
            title=title,
            severity=SEVERITY,
            event_ids=[],
            events=[],
            description=detail,
            log_bucket=ref.bucket,
            log_key=ref.key,
            extra={"source": source, **details},
        )
    )
    if not deps.publish_claimed(marker, token, now, message):
        log.warning("tamper marker %s taken over before it was marked sent (possible duplicate)", marker)
    log.warning("tamper alert sent: %s (%s)", title, source, extra={"data": {"object": source, **details}})
    return 1
