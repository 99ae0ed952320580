"""A small trail bucket for the `trailwatch scan s3://` tests (moto and the local AWS), and the comparison of
`scan s3://...` with `scan` over the same objects downloaded to a folder.

The corpus: CloudTrail-layout log files of two accounts, two regions and three days (the bundled config's
monitored events among a background mix), one event delivered in two files, a digest file, the vendored
real-world record files beside the trail's folder, a truncated gzip object, and an object that is no log.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import Result
from trailwatch import synth

from tests.conftest import shared_cloudtrail_files

BUCKET = "tw-scan-corpus"
ACCOUNTS = ("111111111111", "222222222222")
REGIONS = ("us-east-1", "eu-west-1")
DAYS = tuple(datetime(2026, 11, 28, 10, 5, tzinfo=UTC) + timedelta(days=n) for n in range(3))
CORRUPT_KEY = synth.log_key(ACCOUNTS[0], REGIONS[0], DAYS[1], unique="CORRUPT000000000")


def corpus() -> dict[str, bytes]:
    """key -> body of every object of the corpus (deterministic)."""
    rng = random.Random(19)
    objects: dict[str, bytes] = {}
    duplicate: dict | None = None
    for account in ACCOUNTS:
        for region in REGIONS:
            for day in DAYS:
                records = synth.background_records(120, rng, monitored_fraction=0.08, when=day)
                if duplicate is None:
                    duplicate = next(r for r in records if r["eventName"] in synth.MONITORED_NAMES)
                elif day == DAYS[-1]:
                    records.append(duplicate)  # CloudTrail may deliver an event twice
                key = synth.log_key(account, region, day, unique=f"{rng.getrandbits(64):016X}")
                objects[key] = synth.gzip_log(records)
        objects[synth.digest_key(account, REGIONS[0], DAYS[0])] = synth.digest_body(
            account, REGIONS[0], DAYS[0]
        )
    for path in shared_cloudtrail_files():
        objects[f"vendored/{path.name}"] = path.read_bytes()
    objects[CORRUPT_KEY] = gzip.compress(synth.log_json([synth.make_record("CreateUser")]))[:-40]
    objects["notes/README.txt"] = b"not a log"
    return objects


def upload(s3: Any, objects: dict[str, bytes], bucket: str = BUCKET) -> None:
    s3.create_bucket(Bucket=bucket)
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def download(s3: Any, folder: Path, bucket: str = BUCKET) -> Path:
    """Every object of the bucket written under ``folder`` at its key (what `aws s3 sync` does)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            target = folder / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    return folder


@dataclass
class ScanOutput:
    """`scan --json`'s exit code, rows and stderr lines, with the input's root replaced by ``<root>/``."""

    exit_code: int
    rows: list[dict]
    stderr: list[str]


def scan_output(result: Result, root: str) -> ScanOutput:
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    for row in rows:
        assert row["file"].startswith(root), row
        row["file"] = "<root>/" + row["file"][len(root) :]
    return ScanOutput(
        result.exit_code, rows, [line.replace(root, "<root>/") for line in result.stderr.splitlines()]
    )


def assert_same_as_downloaded(
    cli: Callable[..., Result], s3: Any, tmp_path: Path, sub: str = "", extra: tuple[str, ...] = ()
) -> ScanOutput:
    """`scan s3://BUCKET/<sub>` reports exactly what `scan` reports on the downloaded folder ``<sub>``."""
    local_root = download(s3, tmp_path / "downloaded") / sub
    from_s3 = cli("scan", f"s3://{BUCKET}/{sub}", "--json", *extra)
    from_disk = cli("scan", str(local_root), "--json", *extra)
    s3_out = scan_output(from_s3, f"s3://{BUCKET}/{sub}")
    disk_out = scan_output(from_disk, f"{str(local_root).rstrip('/')}/")
    assert s3_out == disk_out
    return s3_out
