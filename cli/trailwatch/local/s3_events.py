"""S3 event notifications as S3 sends them for a versioned bucket, where moto falls short.

moto's notification omits ``versionId`` and ``sequencer``, and DeleteObject on a versioned bucket (a delete
marker) sends nothing. AWS sends both fields on every event of a versioned bucket and announces the marker as
``ObjectRemoved:DeleteMarkerCreated``. The processor reads the version a notification names and alerts on
removals, so the local AWS must say what AWS says. Installed through moto_patches' table.

Not covered: deleting one version of several (moto announces a version delete only when the key's last
version goes, naming the latest version); the processor's handling of that event is tested on moto directly.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from moto.s3 import notifications
from moto.s3.models import S3Backend

_sequence = itertools.count()
_moto_set_delete_marker = S3Backend._set_delete_marker  # the original, called by the replacement below


def sequencer() -> str:
    """A hex value growing with each event, like S3's per-key sequencer (fixed width: compare as text)."""
    return f"{time.time_ns():016X}{next(_sequence) % 0x10000:04X}"


def get_s3_event(
    event_name: str, bucket: Any, key: Any, notification_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Replaces moto.s3.notifications._get_s3_event: the same record, plus ``versionId`` (versioned buckets
    only; moto says "null" otherwise) and ``sequencer``; a removal carries neither size nor eTag."""
    short_name = event_name[3:]  # s3:ObjectCreated:Put -> ObjectCreated:Put
    now = datetime.now(UTC)  # AWS's form: UTC, milliseconds, "Z" (moto's is local time without a zone)
    event_time = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    obj: dict[str, Any] = {"key": quote_plus(key.name)}
    if not short_name.startswith("ObjectRemoved"):
        obj["size"] = key.size
        obj["eTag"] = key.etag.replace('"', "")
    version_id = str(getattr(key, "version_id", None) or "null")
    if version_id != "null":
        obj["versionId"] = version_id
    obj["sequencer"] = sequencer()
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": bucket.region_name,
                "eventTime": event_time,
                "eventName": short_name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": notification_id,
                    "bucket": {"name": bucket.name, "arn": bucket.arn},
                    "object": obj,
                },
            }
        ]
    }


def set_delete_marker(self: S3Backend, bucket_name: str, key_name: str) -> Any:
    """Replaces S3Backend._set_delete_marker: the marker, announced as S3 does."""
    marker = _moto_set_delete_marker(self, bucket_name, key_name)
    notifications.send_event(
        self.account_id,
        notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
        self.get_bucket(bucket_name),
        marker,
    )
    return marker
