"""`trailwatch hunt`'s parts on moto: listing by partition prefixes (created and organization layouts, a key
prefix, accounts/regions given or discovered, the window), the estimate, the hunt's rules, the question, and
resume re-sending only the files without a marker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from trailwatch import hunt as hunt_cli
from trailwatch import log_listing
from trailwatch.errors import UsageError
from trailwatch.ui import UI
from trailwatch_processor import hunt as tw_hunt
from trailwatch_processor import store

from tests.functional.conftest import create_table

BUCKET = "trail"
DAY = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(s3: Any, key: str, body: bytes = b"x") -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return key


def log_key(account: str, region: str, when: datetime, *, prefix: str = "", org: str = "") -> str:
    from trailwatch.cloudtrail_keys import TrailKeys

    return TrailKeys(account, prefix or None, org or None).log_file(
        region, when, f"{int(when.timestamp()):016X}"
    )


@pytest.mark.parametrize(
    ("prefix", "org"),
    [("", ""), ("logs/", ""), ("", "o-abcdefghij"), ("ct/", "o-abcdefghij")],
    ids=["created", "prefix", "organization", "organization-with-prefix"],
)
def test_listing_by_partitions_finds_exactly_the_window(s3: Any, prefix: str, org: str) -> None:
    inside = {
        put(s3, log_key(acct, region, DAY + timedelta(days=d, hours=h), prefix=prefix, org=org))
        for acct in ("111111111111", "222222222222")
        for region in ("us-east-1", "eu-west-1")
        for d in (0, 1)
        for h in (0, 23)
    }
    put(
        s3, log_key("111111111111", "us-east-1", DAY - timedelta(minutes=5), prefix=prefix, org=org)
    )  # before
    put(s3, log_key("111111111111", "us-east-1", DAY + timedelta(days=2), prefix=prefix, org=org))  # after
    digest = log_key("111111111111", "us-east-1", DAY, prefix=prefix, org=org).replace(
        "/CloudTrail/", "/CloudTrail-Digest/"
    )
    put(s3, digest)
    put(s3, f"{prefix}AWSLogs/notes.txt")
    files = log_listing.list_window(s3, BUCKET, prefix, DAY, DAY + timedelta(days=2) - timedelta(seconds=1))
    assert {f.key for f in files} == inside
    only = log_listing.list_window(
        s3, BUCKET, prefix, DAY, DAY + timedelta(days=2), accounts=["222222222222"], regions=["eu-west-1"]
    )
    assert {f.key for f in only} == {k for k in inside if "/222222222222/CloudTrail/eu-west-1/" in k}


def test_listing_never_lists_the_whole_bucket(s3: Any) -> None:
    put(s3, log_key("111111111111", "us-east-1", DAY))
    prefixes: list[tuple[str, str | None]] = []
    paginator = s3.get_paginator("list_objects_v2")
    s3.get_paginator = lambda name: _Paginator(paginator, prefixes)
    log_listing.list_window(s3, BUCKET, "", DAY, DAY + timedelta(hours=1))
    assert prefixes
    for prefix, delimiter in prefixes:
        assert delimiter == "/" or prefix.count("/") >= 7, (prefix, delimiter)  # a day folder, or a Delimiter


class _Paginator:
    def __init__(self, inner: Any, seen: list) -> None:
        self.inner, self.seen = inner, seen

    def paginate(self, **kwargs: Any) -> Any:
        self.seen.append((kwargs.get("Prefix", ""), kwargs.get("Delimiter")))
        return self.inner.paginate(**kwargs)


def test_estimate_scales_with_files_bytes_memory_and_concurrency() -> None:
    files = [log_listing.LogFile(f"k{i}", 1_000_000) for i in range(1000)]
    small = hunt_cli.estimate(files, memory_mb=512, architecture="arm64", concurrency=5)
    big = hunt_cli.estimate(files, memory_mb=1769, architecture="arm64", concurrency=10)
    assert small.files == 1000 and small.bytes == 1_000_000_000
    # 1000 x 25 ms + 1000 MB x 0.07 s / (512/1769)
    assert small.function_seconds == pytest.approx(25 + 1000 * 0.07 * 1769 / 512)
    assert small.gb_seconds == pytest.approx(small.function_seconds / 2)
    assert big.function_seconds < small.function_seconds and big.wall_seconds < small.wall_seconds
    assert small.parts["s3"] == pytest.approx(1000 * 0.0004 / 1000)
    assert small.cost_usd == pytest.approx(sum(small.parts.values()))


def test_hunt_config_selects_rules_and_refuses_unknown(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "monitored_events": ["CreateUser"],
                "rules": [
                    {"id": "a", "pattern": {"eventName": ["A"]}},
                    {"id": "b", "pattern": {"eventName": ["B"]}},
                ],
            }
        )
    )
    doc = hunt_cli.hunt_config(path, [], lambda: None)
    assert [r["id"] for r in doc["rules"]] == ["CreateUser", "a", "b"]
    assert [r["id"] for r in hunt_cli.hunt_config(path, ["b"], lambda: None)["rules"]] == ["b"]
    with pytest.raises(UsageError, match="--rule zzz"):
        hunt_cli.hunt_config(path, ["zzz"], lambda: None)
    from trailwatch_processor.config_load import parse_config

    assert [r.id for r in parse_config(json.dumps(doc)).rules] == [
        "CreateUser",
        "a",
        "b",
    ]  # the Lambda's view


def test_no_question_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from trailwatch import configcmd

    monkeypatch.setattr(configcmd, "stdin_is_tty", lambda: False)
    with pytest.raises(UsageError, match="no terminal"):
        hunt_cli._confirm(UI(), False, "Hunt?")
    hunt_cli._confirm(UI(), True, "Hunt?")  # --yes


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90d", DAY - timedelta(days=90)), ("2026-09-01", datetime(2026, 9, 1, tzinfo=UTC)),
     ("2026-09-01T10:00:00Z", datetime(2026, 9, 1, 10, tzinfo=UTC))],
)  # fmt: skip
def test_window_forms(text: str, expected: datetime) -> None:
    assert log_listing.parse_moment(text, DAY) == expected


class _Aws:
    """The CLI's Aws object on moto clients."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}

    def client(self, name: str) -> Any:
        if name not in self.clients:
            self.clients[name] = boto3.client(name, region_name="us-east-1")
        return self.clients[name]


def test_resume_sends_only_files_without_a_marker(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import trailwatch.configcmd as configcmd

    aws = _Aws()
    ddb, sqs = aws.client("dynamodb"), aws.client("sqs")
    create_table(ddb)
    queue = sqs.create_queue(QueueName="hunt")["QueueUrl"]
    files = [
        log_listing.LogFile(log_key("111111111111", "us-east-1", DAY + timedelta(minutes=i)), 10)
        for i in range(25)
    ]
    target = hunt_cli.Target(BUCKET, "", BUCKET, "SecurityEvents", queue, 512, "arm64", 5, False)
    hunt_id = "h-test"
    config = hunt_cli.hunt_config(None, [], lambda: _one_rule())
    monkeypatch.setattr(configcmd, "owned_bucket_args", lambda aws: {})
    monkeypatch.setattr(hunt_cli.Target, "of", classmethod(lambda cls, aws, name: target))
    hunt_cli.save_hunt(
        aws, target, hunt_id, config, files, since=DAY, until=DAY, alert=False, now=DAY, retention_days=1
    )
    for done in files[:20]:  # 20 finished (one failed), 5 not
        status = "failed" if done is files[3] else "done"
        ddb.put_item(
            TableName="SecurityEvents",
            Item=store.to_item(
                {"EventId": tw_hunt.file_marker_id(hunt_id, BUCKET, done.key), "kind": tw_hunt.KIND_FILE,
                 "event_day": tw_hunt.files_partition(hunt_id, tw_hunt.file_shard(BUCKET, done.key)),
                 "event_time": done.key, "log_key": done.key, "status": status, "matches": 2, "error": "x"}
            ),
        )  # fmt: skip
    progress = hunt_cli.read_progress(aws, "SecurityEvents", hunt_id)
    assert (progress.done, progress.failed, progress.matches) == (19, 1, 40)
    assert hunt_cli.run_resume(aws, UI(), _Options(), hunt_id, wait_seconds=0, no_wait=True) == 0
    bodies = []
    while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        for m in got:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(b["key"] for b in bodies) == sorted(f.key for f in files[20:])
    assert {b["hunt_id"] for b in bodies} == {hunt_id}


class _Options:
    stack_name = "trailwatch"


def _one_rule() -> Any:
    from trailwatch_processor.config_schema import validate_config

    return validate_config({"rules": [{"id": "a", "pattern": {"eventName": ["A"]}}]})
