"""Tampering seen through a trail's own SNS topic (attach mode, NotificationSource trail-sns).

CloudTrail's SNS message announces each delivered log file by key only (no version, no removal events), so:
- an announced key that is gone when read was removed after CloudTrail delivered it (S3 reads are strongly
  consistent; the topic and queue policies admit only the trail's topic): one tamper alert, once overall,
  and the message is done (failing it would only fill the dead-letter queue);
- an overwrite is found as for our own bucket (``tamper.check_overwrite``: a second version of the key),
  the processor role being granted ``s3:ListBucketVersions`` under ``AWSLogs/``;
- a removal after the file was processed announces nothing on this path: use NotificationSource
  s3-eventbridge (S3's "Object Deleted" events) to be told of it (README, attach mode).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .notifications import TRAIL_SNS, ObjectRef

if TYPE_CHECKING:
    from .deps import Deps


def announced_by_trail(ref: ObjectRef) -> bool:
    return ref.via == TRAIL_SNS


def report_missing(ref: ObjectRef, deps: Deps) -> int:
    """Alert (once overall) that a log file the trail announced is gone. Returns the alerts published."""
    from . import tamper

    if tamper.is_probe_key(ref.key):
        return 0
    detail = (
        f"Object {ref.key} in bucket {ref.bucket} was announced by the trail's SNS topic but does not exist "
        "when read: it was deleted after CloudTrail delivered it, before trailwatch read it.\n"
        "CloudTrail never deletes its log files: find who called DeleteObject on the trail bucket (S3 data "
        "events, or the bucket's access logs) and check the remaining versions of the key."
    )
    marker = tamper.marker_id("missing", ref.bucket, ref.key)
    title = "CloudTrail log object deleted"
    return tamper._alert_once(
        marker, title, detail, ref, deps, {"tamper": "removed", "version_id": "unknown"}
    )
