"""`trailwatch scan s3://bucket/prefix` on moto: the same report as `scan` over the objects downloaded,
objects streamed and read in parallel, one bad object or input never stopping the scan, and --since/--until
listed by CloudTrail's partitions. The same comparison on the local AWS: tests/e2e/test_scan_s3.py."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
import botocore.response
import pytest
from click.testing import Result
from trailwatch import synth
from trailwatch.session import Aws

from tests.functional import scan_corpus
from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import write_config
from tests.functional.scan_corpus import BUCKET, CORRUPT_KEY, DAYS, assert_same_as_downloaded


@pytest.fixture
def s3(moto_env: None) -> Any:
    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def corpus_bucket(s3: Any) -> dict[str, bytes]:
    objects = scan_corpus.corpus()
    scan_corpus.upload(s3, objects)
    return objects


@pytest.fixture
def client_hook(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[Any], Any]], None]:
    """`client_hook(wrap)`: the CLI's S3 client becomes ``wrap(real_client)``."""

    def install(wrap: Callable[[Any], Any]) -> None:
        original = Aws.client

        def client(self: Aws, name: str) -> Any:
            real = original(self, name)
            return wrap(real) if name == "s3" else real

        monkeypatch.setattr(Aws, "client", client)

    return install


class _GetObjectWrapper:
    """The real client, with get_object passed through ``before(key)`` first."""

    def __init__(self, inner: Any, before: Callable[[str], None]) -> None:
        self._inner, self._before = inner, before

    def get_object(self, **kwargs: Any) -> Any:
        self._before(kwargs["Key"])
        return self._inner.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _rows(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("sub", ["", "AWSLogs/", "AWSLogs/111111111111/CloudTrail/us-east-1/"])
def test_s3_scan_reports_exactly_what_the_downloaded_scan_reports(cli, s3, corpus_bucket, tmp_path, sub):
    out = assert_same_as_downloaded(cli, s3, tmp_path, sub)
    # the comparison means something: matches, a duplicate reported once, the corrupt object named
    assert out.exit_code == 2
    assert len(out.rows) >= 20
    ids = [row["eventID"] for row in out.rows]
    assert len(ids) == len(set(ids))
    assert any(CORRUPT_KEY.removeprefix(sub) in line for line in out.stderr)
    assert out.stderr[-1].endswith("; 1 unreadable")
    if sub == "":
        assert any(row["file"].startswith("<root>/vendored/") for row in out.rows)


def test_s3_scan_with_a_config_and_a_window_matches_the_downloaded_scan(cli, s3, corpus_bucket, tmp_path):
    config = write_config(tmp_path / "c.json", ["CreateUser", "StopLogging", "ConsoleLogin"])
    window = ("--since", DAYS[1].date().isoformat(), "--until", f"{DAYS[2].date().isoformat()}T23:59")
    out = assert_same_as_downloaded(cli, s3, tmp_path, "", ("--config", str(config), *window))
    days = {row["file"].split("/CloudTrail/")[1][10:20] for row in out.rows}
    assert days == {DAYS[1].strftime("%Y/%m/%d"), DAYS[2].strftime("%Y/%m/%d")}
    assert not any("vendored/" in row["file"] for row in out.rows)  # no time stamp in their names


@pytest.mark.parametrize("sub", ["", "AWSLogs/"])
def test_a_window_lists_the_trail_partitions_never_the_whole_bucket(cli, s3, corpus_bucket, client_hook, sub):
    listed: list[dict] = []

    def record(real: Any) -> Any:
        real.meta.events.register(
            "before-parameter-build.s3.ListObjectsV2", lambda params, **_: listed.append(dict(params))
        )
        return real

    client_hook(record)
    day = DAYS[2].date().isoformat()
    result = cli("scan", f"s3://{BUCKET}/{sub}", "--since", day, "--until", f"{day}T23:59", "--json")
    assert result.exit_code == 0, result.output  # the corrupt object is a day earlier
    rows = _rows(result)
    assert rows and all(DAYS[2].strftime("/%Y/%m/%d/") in row["file"] for row in rows)
    folder = DAYS[2].strftime("%Y/%m/%d")
    whole = [p["Prefix"] for p in listed if "Delimiter" not in p]  # the listings that return objects
    assert len(whole) == len(scan_corpus.ACCOUNTS) * len(scan_corpus.REGIONS), whole
    assert all(re.fullmatch(rf"AWSLogs/\d{{12}}/CloudTrail/[a-z0-9-]+/{folder}/", prefix) for prefix in whole)


def test_objects_are_streamed_in_bounded_reads(cli, s3, tmp_path, monkeypatch):
    """A 12 MB (decompressed) object is read in pieces, never with ``read()`` of the whole body."""
    import random

    records = synth.background_records(12_000, random.Random(7), monitored_fraction=0.01)
    body = synth.gzip_log(records)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="big.json.gz", Body=body)
    sizes: list[int | None] = []
    real_read = botocore.response.StreamingBody.read

    def read(self: Any, amt: int | None = None) -> bytes:
        sizes.append(amt)
        return real_read(self, amt)

    monkeypatch.setattr(botocore.response.StreamingBody, "read", read)
    result = cli("scan", f"s3://{BUCKET}/big.json.gz", "--json")
    assert result.exit_code == 0, result.output
    assert f"in {len(records)} record(s) of 1 file(s)" in result.stderr
    assert None not in sizes and max(sizes) <= 1 << 20, sizes
    assert len(sizes) > 2 and len(body) > 1 << 20


def test_objects_are_read_in_parallel(cli, s3, corpus_bucket, client_hook):
    """Two GetObjects must be in flight at once, or the barrier breaks and an object fails."""
    barrier = threading.Barrier(2, timeout=10)
    first_two: list[str] = []
    lock = threading.Lock()

    def before(key: str) -> None:
        with lock:
            wait = len(first_two) < 2
            first_two.append(key)
        if wait:
            barrier.wait()

    client_hook(lambda real: _GetObjectWrapper(real, before))
    result = cli("scan", f"s3://{BUCKET}/AWSLogs/222222222222/", "--json")
    assert result.exit_code == 0, result.output
    assert "unreadable" not in result.stderr and not barrier.broken


def test_one_object_that_cannot_be_read_never_stops_the_scan(cli, s3, corpus_bucket, client_hook, tmp_path):
    denied = next(k for k in corpus_bucket if k.startswith("AWSLogs/111111111111/CloudTrail/eu-west-1/"))

    def before(key: str) -> None:
        if key == denied:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject"
            )

    config = write_config(tmp_path / "c.json", list(synth.MONITORED_NAMES))
    all_rows = _rows(cli("scan", f"s3://{BUCKET}/AWSLogs/", "--json", "--config", str(config)))
    client_hook(lambda real: _GetObjectWrapper(real, before))
    result = cli("scan", f"s3://{BUCKET}/AWSLogs/", "--json", "--config", str(config))
    assert result.exit_code == 2
    assert f"s3://{BUCKET}/{denied}: An error occurred (AccessDenied)" in result.stderr
    assert result.stderr.splitlines()[-1].endswith("; 2 unreadable")  # the denied object and the corrupt one
    expected = [row for row in all_rows if row["file"] != f"s3://{BUCKET}/{denied}"]
    assert _rows(result) == expected and len(expected) < len(all_rows)


def test_inputs_that_cannot_be_listed_are_reported_and_the_rest_scanned(cli, s3, tmp_path):
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="logs/", Body=b"")  # a console "folder": no log, never read
    s3.put_object(
        Bucket=BUCKET,
        Key="logs/a.json.gz",
        Body=synth.gzip_log([synth.make_record("CreateUser", event_id="s3-1")]),
    )
    local = tmp_path / "local.json"
    local.write_bytes(
        synth.log_json(
            [
                synth.make_record("CreateUser", event_id="s3-1"),
                synth.make_record("StopLogging", event_id="disk-1"),
            ]
        )
    )
    config = write_config(tmp_path / "c.json", ["CreateUser", "StopLogging"])
    result = cli(
        "scan",
        "s3://no-such-bucket-tw/logs/",
        f"s3://{BUCKET}/nothing-here/",
        f"s3://{BUCKET}/logs/",
        str(local),
        "--json",
        "--config",
        str(config),
    )
    assert result.exit_code == 2
    rows = _rows(result)
    # input order: the object first, so the event both hold is reported once, from the object
    assert [(r["eventID"], r["file"]) for r in rows] == [
        ("s3-1", f"s3://{BUCKET}/logs/a.json.gz"),
        ("disk-1", str(local)),
    ]
    assert (
        "s3://no-such-bucket-tw/logs/: cannot be listed" in result.stderr and "NoSuchBucket" in result.stderr
    )
    assert f"s3://{BUCKET}/nothing-here/: no object under this prefix" in result.stderr
    assert "2 matching event(s) in 3 record(s) of 2 file(s); 2 unreadable" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["s3://"], "expected s3://BUCKET[/PREFIX]"),
        (["s3://b/", "--until", "2d"], "--until needs --since"),
        (["s3://b/", "--since", "1d", "--until", "3d"], "is after --until"),
        (["s3://b/", "--since", "yesterday"], "expected e.g. 90d"),
    ],
)
def test_usage_errors_exit_2_before_reading(cli, moto_env, args, message):
    result = cli("scan", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_s3_input_without_credentials_is_a_usage_error(cli, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = cli("scan", f"s3://{BUCKET}/")
    assert result.exit_code == 2
    assert "No AWS credentials" in result.output
