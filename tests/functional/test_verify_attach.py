"""verify in attach mode: the newest real log object is found by listing the newest date folders (both
layouts, several accounts and regions) and read; the probe waits for the next real delivery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from trailwatch.cloudtrail_keys import TrailKeys
from trailwatch.verify_attach import check_log_object, newest_log_object, wait_for_next_delivery

BUCKET = "org-trail"
ACCOUNT = "123456789012"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def _put(s3: Any, keys: TrailKeys, region: str, when: datetime, unique: str) -> str:
    key = keys.log_file(region, when, unique)
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")
    return key


@pytest.mark.parametrize(
    ("prefix", "org"), [(None, None), ("o-exampleorg1", "o-exampleorg1"), ("logs", None)]
)
def test_newest_day_folder_and_object_are_found(s3: Any, prefix: str | None, org: str | None) -> None:
    old = datetime(2024, 1, 31, 23, 55, tzinfo=UTC)
    new = datetime(2024, 2, 1, 0, 5, tzinfo=UTC)
    for account in ("111111111111", "222222222222"):
        keys = TrailKeys(account, prefix=prefix, org_id=org)
        _put(s3, keys, "eu-west-1", old, "OLD")
        _put(s3, keys, "us-east-1", old, "OLD")
    newest = _put(s3, TrailKeys("222222222222", prefix=prefix, org_id=org), "us-east-1", new, "NEW")
    base = f"{prefix}/" if prefix else ""
    found = newest_log_object(s3, BUCKET, base, {}, ("us-east-1",))
    assert found is not None and found[0] == newest


def test_no_log_object_is_none(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="AWSLogs/111111111111/CloudTrail-Digest/x", Body=b"")
    assert newest_log_object(s3, BUCKET, "", {}) is None


def test_check_reads_the_newest_object(s3: Any) -> None:
    key = _put(s3, TrailKeys(ACCOUNT), "us-east-1", datetime(2024, 2, 1, tzinfo=UTC), "ONE")
    aws = SimpleNamespace(client=lambda name: s3, account_id=lambda: ACCOUNT, region="us-east-1")
    ctx = SimpleNamespace(aws=aws, newest_delivery=None)
    status, reason = check_log_object(ctx, {"ExistingBucketName": BUCKET, "ExistingBucketAccount": ACCOUNT})
    assert status == "pass" and key in reason
    assert ctx.newest_delivery is not None


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_probe_passes_when_the_marker_advances() -> None:
    clock = _Clock()
    markers = iter([{"processed_at": "2024-02-01T00:00:00Z", "object_key": "a"}] * 3
                   + [{"processed_at": "2024-02-01T00:06:00Z", "object_key": "b"}])  # fmt: skip
    lines: list[str] = []
    status, reason = wait_for_next_delivery(
        lambda: next(markers), 60, lines.append, clock=clock, sleep=clock.sleep, poll=5
    )
    assert status == "pass" and "b" in reason
    assert len(lines) == 2  # progress while waiting


@pytest.mark.parametrize("marker", [None, {"processed_at": "2024-02-01T00:00:00Z", "object_key": "a"}])
def test_probe_fails_after_the_timeout_without_a_new_delivery(marker: dict[str, str] | None) -> None:
    clock = _Clock()
    status, reason = wait_for_next_delivery(
        lambda: marker, 30, lambda _: None, clock=clock, sleep=clock.sleep, poll=5
    )
    assert status == "fail" and "--timeout 360" in reason
    assert clock.now == 30
