"""CloudTrail's key layout, written once for the sample data and the local AWS's delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from trailwatch import synth
from trailwatch.cloudtrail_keys import TrailKeys

WHEN = datetime(2026, 1, 15, 23, 59, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("prefix", "org_id", "root"),
    [
        (None, None, "AWSLogs/111122223333"),
        ("", None, "AWSLogs/111122223333"),
        ("/", None, "AWSLogs/111122223333"),
        ("/audit/trails/", None, "audit/trails/AWSLogs/111122223333"),
        ("audit", "o-abc123", "audit/AWSLogs/o-abc123/111122223333"),
    ],
)
def test_keys(prefix: str | None, org_id: str | None, root: str) -> None:
    keys = TrailKeys("111122223333", prefix, org_id)
    assert keys.log_file("eu-west-1", WHEN, "U" * 16) == (
        f"{root}/CloudTrail/eu-west-1/2026/01/15/111122223333_CloudTrail_eu-west-1_20260115T2359Z_"
        f"{'U' * 16}.json.gz"
    )
    assert keys.digest("eu-west-1", WHEN, "t", "us-east-1") == (
        f"{root}/CloudTrail-Digest/eu-west-1/2026/01/15/"
        "111122223333_CloudTrail-Digest_eu-west-1_t_us-east-1_20260115T235907Z.json.gz"
    )


def test_time_is_utc_whatever_the_zone() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=2)))  # 2026-01-16 01:59 there
    assert "/2026/01/15/" in TrailKeys("1").log_file("r", local, "u")
    assert "_20260115T235907Z" in TrailKeys("1").digest("r", local, "t", "r")


def test_synth_keys_are_cloudtrails() -> None:
    assert synth.log_key("1", "r", WHEN, unique="u", prefix="/p/") == TrailKeys("1", "p").log_file(
        "r", WHEN, "u"
    )
    assert synth.digest_key("1", "r", WHEN) == TrailKeys("1").digest("r", WHEN, "trailwatch", "r")
