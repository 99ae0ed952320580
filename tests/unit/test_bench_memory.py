"""bench/memory.py's hostile inputs are what their names say (a benchmark that measured the wrong file would
report a comfortable peak), and its verdict counts an input without a measurement as over."""

from __future__ import annotations

import gzip
import io
import json

import pytest

from bench import memory

SCALE = 0.01  # 2 MB strings instead of 200 MB


def body(name: str) -> bytes:
    (item,) = [i for i in memory.INPUTS if i.name == name]
    out = io.BytesIO()
    item.write(out, SCALE)
    return gzip.decompress(out.getvalue())


@pytest.mark.parametrize(
    ("name", "event_name"), [("huge-record-200MB", "CreateUser"), ("huge-record-quiet", "DescribeInstances")]
)
def test_huge_record_holds_one_long_string(name: str, event_name: str) -> None:
    records = json.loads(body(name))["Records"]
    assert [r["eventName"] for r in records] == [event_name, "CreateUser"]
    assert len(records[0]["requestParameters"]["blob"]) == 2_000_000


def test_gzip_bomb_is_whitespace_between_two_records() -> None:
    raw = body("gzip-bomb-1GB")
    assert raw.count(b" " * 1000) >= 10_000 // 1000
    assert [r["eventName"] for r in json.loads(raw)["Records"]] == ["StopLogging", "CreateUser"]


def test_many_matches_brackets_denied_calls() -> None:
    records = json.loads(body("many-matches"))["Records"]
    assert (records[0]["eventName"], records[-1]["eventName"]) == ("StopLogging", "CreateUser")
    assert {r.get("errorCode") for r in records[1:-1]} == {"AccessDenied"}
    assert len(records) == 120 + 2  # 12,000 x SCALE denied calls


def test_odd_records_carry_each_oddity_between_good_records() -> None:
    raw = body("odd-records")
    assert b'"\\udc00"' in raw
    assert b"9" * 5000 in raw
    assert b"[" * 100_000 in raw
    assert b"\xff\xfe" in raw
    with pytest.raises(ValueError):
        raw.decode("utf-8")


def test_an_input_without_a_peak_counts_as_over() -> None:
    assert memory.Measured("x", "", 1).over(512)
    assert not memory.Measured("x", "", 1, peak_mb=511.0).over(512)
    assert memory.Measured("x", "", 1, peak_mb=513.0).over(512)
    rows = [memory.Measured("a", "", 1, peak_mb=100.0), memory.Measured("b", "", 1, peak_mb=900.0)]
    assert memory.summary(rows, 512) == "inputs=2 over_memory=1 max_peak_mb=900"
