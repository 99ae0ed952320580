"""Trail delivery for the local CloudTrail: the emulator's trails and the log and digest files it writes.

`TrailDelivery.deliver` writes one trail's queued records as gzip log files (one per region) in CloudTrail's
key layout into the trail's bucket through moto's S3 backend, whose `put_object` fires the bucket's event
notifications (S3 -> SNS/SQS/Lambda) as a real delivery does. These writes do not pass through the recorder's
middleware, so they are not recorded, like CloudTrail's own deliveries.

Log file validation: trails with it on get a digest file per region that had log files in the delivery period
(AWS: one per region and hour, also when empty; the emulator writes none for an idle period) in the
`CloudTrail-Digest/` layout. Its signature is an HMAC with a key local to this process, not AWS's RSA
signature: no AWS tool will validate it (the digest says so in `localEmulatorNote`).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from trailwatch.cloudtrail_keys import TrailKeys
from trailwatch.local.cloudtrail_records import TIME_FORMAT, utc_now
from trailwatch.local.cloudtrail_selectors import truthy

LogFn = Callable[[str], None]
_RANDOM_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class TrailRef:
    account_id: str
    region: str
    name: str


def iter_trails(account_id: str) -> list[tuple[TrailRef, Any]]:
    """The trails of an account in moto's CloudTrail backend (every region it has state for)."""
    from moto.cloudtrail.models import cloudtrail_backends

    by_region = dict.get(cloudtrail_backends, account_id) or {}
    out = []
    for region, backend in list(dict.items(by_region)):
        for trail in list(backend.trails.values()):
            out.append((TrailRef(account_id, region, trail.trail_name), trail))
    return out


def logging_trails(account_id: str) -> set[TrailRef]:
    return {ref for ref, trail in iter_trails(account_id) if trail.status.is_logging}


def organization_id(trail: Any) -> str | None:
    """The organization id an organization trail puts in its keys (None: not an org trail, or no org)."""
    if not truthy(getattr(trail, "is_org_trail", False), False):
        return None
    from moto.organizations.models import organizations_backends

    for backend in list(dict.values(dict.get(organizations_backends, trail.account_id) or {})):
        if getattr(backend, "org", None) is not None:
            return str(backend.org.id)
    return None


@dataclass
class _DigestChain:
    """Per trail and region: the previous digest (CloudTrail chains digests) and the period's log files."""

    start: datetime = field(default_factory=utc_now)
    previous: tuple[str, str, str, str] | None = None  # bucket, key, sha256 hex, signature
    files: list[dict[str, Any]] = field(default_factory=list)


class TrailDelivery:
    """Writes trails' log files and, for trails with log file validation, their chained digests.

    Not thread-safe: the recorder calls it under its delivery lock."""

    def __init__(self, log: LogFn) -> None:
        self.log = log
        self._digests: dict[tuple[TrailRef, str], _DigestChain] = {}
        self._signing_key = secrets.token_bytes(32)

    def deliver(
        self, ref: TrailRef, trail: Any, records: list[dict], when: datetime
    ) -> list[tuple[str, str]]:
        """Write `records` (of any regions) to `trail`; the (bucket, key) of each log and digest file."""
        keys = TrailKeys(ref.account_id, trail.s3_key_prefix, organization_id(trail))
        by_region: dict[str, list[dict]] = {}
        for record in records:
            by_region.setdefault(record["awsRegion"], []).append(record)
        written = []
        for region, items in by_region.items():
            rand = "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(16))
            key = keys.log_file(region, when, rand)
            data = gzip.compress(json.dumps({"Records": items}, separators=(",", ":")).encode(), mtime=0)
            try:
                self._put(trail, key, data)
            except Exception as err:
                self.log(f"cloudtrail: delivery to s3://{trail.bucket_name}/{key} failed: {err!r}")
                continue
            written.append((trail.bucket_name, key))
            self.log(f"cloudtrail: {len(items)} record(s) of {region} -> s3://{trail.bucket_name}/{key}")
            if truthy(getattr(trail, "log_validation", False), False):
                times = sorted(r["eventTime"] for r in items)
                chain = self._digests.setdefault((ref, region), _DigestChain())
                chain.files.append(
                    {
                        "s3Bucket": trail.bucket_name,
                        "s3Object": key,
                        "hashValue": hashlib.sha256(data).hexdigest(),
                        "hashAlgorithm": "SHA-256",
                        "newestEventTime": times[-1],
                        "oldestEventTime": times[0],
                    }
                )
                written.append(self._write_digest(ref, trail, region, chain, when))
        return written

    def _write_digest(
        self, ref: TrailRef, trail: Any, region: str, chain: _DigestChain, when: datetime
    ) -> tuple[str, str]:
        """A digest per the CloudTrail digest file structure, chained to the previous one."""
        # Keys carry seconds: two deliveries within a second must not overwrite the previous digest.
        when = max(when.replace(microsecond=0), chain.start.replace(microsecond=0) + timedelta(seconds=1))
        keys = TrailKeys(ref.account_id, trail.s3_key_prefix, organization_id(trail))
        key = keys.digest(region, when, ref.name, ref.region)
        previous = chain.previous
        digest = {
            "awsAccountId": ref.account_id,
            "digestStartTime": chain.start.strftime(TIME_FORMAT),
            "digestEndTime": when.strftime(TIME_FORMAT),
            "digestS3Bucket": trail.bucket_name,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": hashlib.md5(self._signing_key, usedforsecurity=False).hexdigest(),
            "digestSignatureAlgorithm": "HMAC-SHA256 (local emulator)",
            "newestEventTime": max(f["newestEventTime"] for f in chain.files),
            "oldestEventTime": min(f["oldestEventTime"] for f in chain.files),
            "previousDigestS3Bucket": previous[0] if previous else None,
            "previousDigestS3Object": previous[1] if previous else None,
            "previousDigestHashValue": previous[2] if previous else None,
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous[3] if previous else None,
            "logFiles": chain.files,
            "localEmulatorNote": (
                "written by the trailwatch local emulator: the signature (S3 metadata 'signature') is an "
                "HMAC with a process-local key, not CloudTrail's RSA signature; AWS validation will reject it"
            ),
        }
        data = gzip.compress(json.dumps(digest, separators=(",", ":")).encode(), mtime=0)
        signature = hmac.new(self._signing_key, data, hashlib.sha256).hexdigest()
        self._put(trail, key, data, {"signature": signature, "signature-algorithm": "HMAC-SHA256"})
        chain.previous = (trail.bucket_name, key, hashlib.sha256(data).hexdigest(), signature)
        chain.files = []
        chain.start = when
        return (trail.bucket_name, key)

    def _put(self, trail: Any, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Write through moto's S3 backend: its put_object sends the bucket's ObjectCreated notifications."""
        from moto.s3.models import s3_backends
        from moto.utilities.utils import get_partition

        backend = s3_backends[trail.account_id][get_partition(trail.region_name)]
        kms_key = getattr(trail, "kms_key_id", None)
        if kms_key:  # SSE-KMS with the trail's key, as CloudTrail writes when KMSKeyId is set
            obj = backend.put_object(trail.bucket_name, key, data, encryption="aws:kms", kms_key_id=kms_key)
        else:
            obj = backend.put_object(trail.bucket_name, key, data)
        if metadata:
            obj.set_metadata({f"x-amz-meta-{k}": v for k, v in metadata.items()})
