"""store: item building (attributes, 400 KB limit, TTL), size accounting, primary rule. No AWS here;
the conditional writes and alert state run against moto in tests/functional/test_processor.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from trailwatch_processor import records, store

from tests.functional import factories as f

NOW = datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class R:
    """Stands in for rules.Rule: build_item reads only id, severity (and title via callers)."""

    id: str
    severity: str = "medium"
    title: str = ""


def _build(record: dict, rules: list | None = None, **kw) -> dict:
    return store.build_item(
        record,
        rules or [R("ConsoleLogin")],
        log_bucket=kw.get("bucket", "trail-bucket"),
        log_key=kw.get("key", "AWSLogs/k.json.gz"),
        now=kw.get("now", NOW),
        retention_days=kw.get("retention_days", 30),
    )


def test_item_attributes_per_the_table() -> None:
    rec = f.root_login(errorCode="AccessDenied")
    item = _build(rec, [R("ConsoleLogin", "medium"), R("cis-4.3", "critical"), R("x", "critical")])
    p = store.plain(item)
    assert p["EventId"] == rec["eventID"]
    assert p["event_name"] == "ConsoleLogin" and p["event_source"] == "signin.amazonaws.com"
    assert p["event_time"] == "2024-01-15T10:00:00Z" and p["event_day"] == "2024-01-15"
    assert p["aws_region"] == "us-east-1" and p["account_id"] == "123456789012"
    assert p["principal_arn"] == "arn:aws:iam::123456789012:root" and p["principal_type"] == "Root"
    assert p["source_ip"] == "198.51.100.7" and p["user_agent"] == "aws-cli/2.15.0"
    assert p["error_code"] == "AccessDenied"
    assert p["rule_ids"] == ["ConsoleLogin", "cis-4.3", "x"]
    assert (p["rule_id"], p["severity"]) == ("cis-4.3", "critical")  # highest, first in config order on ties
    assert p["log_bucket"] == "trail-bucket" and p["log_key"] == "AWSLogs/k.json.gz"
    assert json.loads(p["raw"]) == rec and p["raw_truncated"] is False
    assert p["stored_at"] == "2024-01-15T10:30:00.123456Z"
    assert p["expires_at"] == int(NOW.timestamp()) + 30 * 86400
    assert p["alert_status"] == "pending"


def test_absent_fields_are_omitted_and_no_floats() -> None:
    rec = {"eventName": "CreateUser", "eventID": "e-1", "someFloat": 1.5}
    item = _build(rec, [R("CreateUser")])
    for name in ("principal_arn", "principal_type", "source_ip", "user_agent", "error_code", "aws_region"):
        assert name not in item
    assert item["event_day"]["S"] == "2024-01-15"  # processing time when eventTime is absent
    assert item["event_time"]["S"] == "2024-01-15T10:30:00.123456Z"

    def walk(value):
        assert not isinstance(value, float)
        for child in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
            walk(child)

    walk(item)


@pytest.mark.parametrize(
    ("event_time", "day"),
    [
        ("2024-03-01T23:59:59Z", "2024-03-01"),
        ("2024-03-01T23:30:00-02:00", "2024-03-02"),  # UTC day
        ("2024-03-01T10:00:00", "2024-03-01"),
        ("garbage", "2024-01-15"),
        (12345, "2024-01-15"),
    ],
)
def test_event_day(event_time: object, day: str) -> None:
    assert _build(f.record(eventTime=event_time))["event_day"]["S"] == day


def test_500_kb_field_is_truncated_with_the_flag() -> None:
    rec = f.record("PutBucketPolicy", requestParameters={"policy": "x" * 500_000})
    item = _build(rec)
    assert item["raw_truncated"]["BOOL"] is True
    assert store.item_size(item) <= store.ITEM_LIMIT_BYTES
    assert json.dumps(rec, separators=(",", ":")).startswith(item["raw"]["S"])
    assert len(item["raw"]["S"]) > 300_000  # truncated, not emptied


def test_multibyte_truncation_keeps_valid_utf8_and_the_limit() -> None:
    rec = f.record(requestParameters={"text": "€𝄞ü" * 100_000}, userAgent="ü" * 3000)
    item = _build(rec)
    assert item["raw_truncated"]["BOOL"] is True
    item["raw"]["S"].encode("utf-8")  # no split surrogate / partial character
    assert store.item_size(item) <= store.ITEM_LIMIT_BYTES
    assert len(item["user_agent"]["S"]) == store.FIELD_MAX_CHARS


def test_item_just_under_the_limit_is_not_truncated() -> None:
    rec = f.record(requestParameters={"p": "y" * 300_000})
    item = _build(rec)
    assert item["raw_truncated"]["BOOL"] is False and json.loads(item["raw"]["S"]) == rec


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"S": "abc"}, 3),
        ({"S": "ü"}, 2),
        ({"N": "12345"}, 6),
        ({"BOOL": True}, 1),
        ({"L": [{"S": "a"}, {"S": "bc"}]}, 3 + 2 + 3),
        ({"M": {"k": {"S": "v"}}}, 3 + 1 + 1 + 1),
    ],
)
def test_item_size_counts_names_and_values(value: dict, size: int) -> None:
    assert store.item_size({"nm": value}) == 2 + size


def test_primary_rule_needs_a_rule() -> None:
    with pytest.raises(ValueError):
        store.primary_rule([])


def test_iso_is_fixed_width_and_ordered() -> None:
    a = store.iso(datetime(2024, 1, 1, tzinfo=UTC))
    b = store.iso(datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC))
    assert len(a) == len(b) and a < b


def test_every_shared_record_builds_an_item(shared_records: list[dict]) -> None:
    for rec in shared_records:
        item = _build(rec, [R("any")])
        assert item["EventId"]["S"] == records.event_id(rec)
        assert store.item_size(item) <= store.ITEM_LIMIT_BYTES


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("s", {"S": "s"}),
        (7, {"N": "7"}),
        (True, {"BOOL": True}),
        (None, {"NULL": True}),
        (["a", 1], {"L": [{"S": "a"}, {"N": "1"}]}),
        ({"k": [False]}, {"M": {"k": {"L": [{"BOOL": False}]}}}),
    ],
)
def test_plain_values_round_trip_through_the_wire_form(value: object, wire: dict) -> None:
    assert store.to_item({"a": value}) == {"a": wire}
    assert store.plain({"a": wire}) == {"a": value}


def test_floats_never_reach_dynamodb() -> None:
    with pytest.raises(TypeError):
        store.to_item({"a": 1.5})


# --- hostile records -----------------------------------------------------------------------------------


def _wire_encodable(item: dict) -> bytes:
    """What botocore sends: the item as JSON text in UTF-8 (a lone surrogate cannot be encoded)."""
    return json.dumps(item, ensure_ascii=False).encode("utf-8")


def test_lone_surrogates_never_reach_the_item_and_raw_keeps_the_value() -> None:
    rec = f.root_login(userAgent="agent\udc00", requestParameters={"k\ud800": ["\udfff"]})
    item = _build(rec)
    _wire_encodable(item)
    values = store.plain(item)
    assert values["user_agent"] == "agent\ufffd"
    assert json.loads(values["raw"]) == rec  # the escape keeps the JSON value exactly
    assert "\\udc00" in values["raw"] and values["raw_truncated"] is False


def test_an_event_id_with_a_surrogate_is_replaced_by_the_content_hash() -> None:
    rec = f.root_login(eventID="id-\udc00")
    item = _build(rec)
    _wire_encodable(item)
    assert item["EventId"]["S"] == records.event_id(rec) and item["EventId"]["S"].startswith("tw-")


def test_a_partial_record_stores_its_prefix_flagged_truncated() -> None:
    from trailwatch_processor.logfile import RecordIssue

    partial = records.PartialRecord(
        {"eventID": "e1", "eventName": "ConsoleLogin", "eventTime": "2024-01-15T10:00:00Z"}
    )
    partial.raw_prefix = '{"eventID":"e1","eventName":"ConsoleLogin","x":"yyyy'
    partial.issue = RecordIssue(3, 4567, "oversized", "over the cap")
    values = store.plain(_build(partial))
    assert values["EventId"] == "e1" and values["event_name"] == "ConsoleLogin"
    assert values["raw"] == partial.raw_prefix
    assert values["raw_truncated"] is True and values["raw_issue"] == "oversized"


def test_a_partial_record_prefix_over_the_item_budget_is_cut() -> None:
    partial = records.PartialRecord({"eventID": "e2", "eventName": "ConsoleLogin"})
    partial.raw_prefix = '{"eventID":"e2","x":"' + "é" * 600_000
    item = _build(partial)
    assert store.item_size(item) <= store.ITEM_LIMIT_BYTES
    assert store.plain(item)["raw_truncated"] is True
