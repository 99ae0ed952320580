"""synth: records shaped like CloudTrail's, keys in the real layouts, log files the reader accepts."""

from __future__ import annotations

import collections
import gzip
import io
import json
import random
import re
from datetime import UTC, datetime

import pytest
from trailwatch import synth
from trailwatch_processor.config_load import load_default_config
from trailwatch_processor.log_stream import LogFileError
from trailwatch_processor.logfile import FileStats, iter_matches, iter_records
from trailwatch_processor.notifications import KeyKind, classify_key
from trailwatch_processor.patterns import compile_config

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
LOG_KEY = re.compile(
    r"^(?:(?P<prefix>.+)/)?AWSLogs/(?:(?P<org>o-[a-z0-9]+)/)?(?P<account>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P=account)_CloudTrail_(?P=region)_(?P<stamp>\d{8}T\d{4}Z)_"
    r"[A-Za-z0-9]{16}\.json\.gz$"
)
MATCHER = compile_config(load_default_config())


def test_make_record_has_cloudtrail_field_order_and_fields() -> None:
    rec = synth.make_record("CreateUser", request_parameters={"userName": "bob"}, time=WHEN)
    keys = list(rec)
    assert keys[:6] == ["eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion"]
    assert keys.index("requestParameters") < keys.index("eventID") < keys.index("recipientAccountId")
    assert rec["eventSource"] == "iam.amazonaws.com" and rec["eventTime"] == "2026-03-04T05:06:07Z"
    assert rec["readOnly"] is False and rec["eventType"] == "AwsApiCall" and "errorCode" not in rec


def test_make_record_error_and_explicit_fields() -> None:
    rec = synth.make_record(
        "DescribeInstances",
        error_code="Client.UnauthorizedOperation",
        event_id="e-1",
        region="eu-west-1",
        read_only=True,
        event_type="AwsApiCall",
    )
    assert rec["errorCode"] == "Client.UnauthorizedOperation" and rec["errorMessage"]
    assert (rec["eventID"], rec["awsRegion"], rec["readOnly"]) == ("e-1", "eu-west-1", True)
    assert [r.id for r in MATCHER.match(rec)] == ["cis-4.1-unauthorized-api-calls"]


@pytest.mark.parametrize(
    ("identity", "kind", "arn"),
    [
        (synth.iam_user("carol"), "IAMUser", "arn:aws:iam::123456789012:user/carol"),
        (synth.root(), "Root", "arn:aws:iam::123456789012:root"),
        (synth.assumed_role("Ops", "s1"), "AssumedRole", "arn:aws:sts::123456789012:assumed-role/Ops/s1"),
        (synth.aws_service("config.amazonaws.com"), "AWSService", None),
    ],
)
def test_identity_helpers(identity: dict, kind: str, arn: str | None) -> None:
    assert identity["type"] == kind and identity.get("arn") == arn


def test_root_invoked_by_a_service_is_not_root_usage() -> None:
    names = {r.id for r in MATCHER.rules}
    root_rules = [n for n in names if "root" in n.lower()]
    assert root_rules, names
    direct = synth.make_record("ListBuckets", identity=synth.root())
    via_service = synth.make_record("ListBuckets", identity=synth.root(invoked_by="support.amazonaws.com"))
    assert {r.id for r in MATCHER.match(direct)} & set(root_rules)
    assert not {r.id for r in MATCHER.match(via_service)} & set(root_rules)


@pytest.mark.parametrize(
    ("prefix", "org"), [("", None), ("trail/logs", None), ("", "o-a1b2c3d4e5"), ("p", "o-a1b2c3d4e5")]
)
def test_log_key_layout(prefix: str, org: str | None) -> None:
    key = synth.log_key("111122223333", "eu-central-1", WHEN, prefix=prefix, org_id=org)
    found = LOG_KEY.match(key)
    assert found, key
    assert (found["prefix"] or "", found["org"], found["account"], found["region"]) == (
        prefix,
        org,
        "111122223333",
        "eu-central-1",
    )
    assert (found["y"], found["m"], found["d"], found["stamp"]) == ("2026", "03", "04", "20260304T0506Z")
    assert classify_key(key) is KeyKind.LOG


@pytest.mark.parametrize(("prefix", "org"), [("", None), ("p/q", "o-a1b2c3d4e5")])
def test_digest_key_is_classified_as_digest(prefix: str, org: str | None) -> None:
    key = synth.digest_key(when=WHEN, prefix=prefix, org_id=org)
    assert "/CloudTrail-Digest/us-east-1/2026/03/04/" in key and key.endswith("Z.json.gz")
    assert classify_key(key) is KeyKind.DIGEST


def test_digest_body_is_not_a_log() -> None:
    with pytest.raises(LogFileError, match="no 'Records'"):
        list(iter_records(io.BytesIO(synth.digest_body())))


def test_gzip_log_is_compact_deterministic_and_round_trips() -> None:
    records = synth.background_records(50, random.Random(1))
    raw = synth.gzip_log(records)
    assert raw == synth.gzip_log(records)
    text = gzip.decompress(raw)
    assert text.startswith(b'{"Records":[{"eventVersion":') and b'", "' not in text
    assert list(iter_records(io.BytesIO(raw))) == records


def test_background_is_seeded_and_matches_nothing_in_the_default_config() -> None:
    first = synth.background_records(2000, random.Random(5), monitored_fraction=0)
    assert first == synth.background_records(2000, random.Random(5), monitored_fraction=0)
    assert not [r for r in first if MATCHER.match(r)]
    stats = FileStats()
    assert list(iter_matches(io.BytesIO(synth.gzip_log(first)), MATCHER, stats)) == []
    assert stats.fast_path and stats.parsed <= 1 and stats.records == 2000  # the last record is parsed


def test_background_mix_is_realistic() -> None:
    records = synth.background_records(4000, random.Random(9), monitored_fraction=0)
    names = collections.Counter(r["eventName"] for r in records)
    assert len(names) >= 25
    reads = sum(n for name, n in names.items() if name.startswith(("Describe", "List", "Get", "Head")))
    assert reads / len(records) > 0.4
    for name in ("AssumeRole", "GetObject", "Decrypt"):
        assert names[name] > 0.03 * len(records), name
    types = collections.Counter(r["userIdentity"]["type"] for r in records)
    assert set(types) == {"AssumedRole", "AWSService", "IAMUser"}
    assert all(json.loads(json.dumps(r)) == r for r in records[:50])


@pytest.mark.parametrize("fraction", [0.01, 0.2])
def test_monitored_fraction(fraction: float) -> None:
    n = 5000
    records = synth.background_records(n, random.Random(3), monitored_fraction=fraction)
    monitored = [r for r in records if r["eventName"] in synth.MONITORED_NAMES]
    assert abs(len(monitored) - fraction * n) < 4 * (fraction * n) ** 0.5 + 1
    matched = [r for r in records if MATCHER.match(r)]
    assert matched and all(r["eventName"] in synth.MONITORED_NAMES for r in matched)


def test_console_login_variants() -> None:
    ok = synth.console_login("alice", mfa=True)
    failed = synth.console_login("alice", success=False)
    assert ok["eventSource"] == "signin.amazonaws.com" and ok["eventType"] == "AwsConsoleSignIn"
    assert ok["additionalEventData"]["MFAUsed"] == "Yes" and ok["responseElements"] == {
        "ConsoleLogin": "Success"
    }
    assert failed["errorMessage"] == "Failed authentication"
    assert list(failed).index("errorMessage") < list(failed).index("requestParameters")
