"""logfile on hostile records: a bad record between two matching ones never
costs them, a huge record is never held whole, a gzip bomb is bounded; the bounded skip of a value
against json's own idea of where the value ends."""

from __future__ import annotations

import gzip
import io
import json
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest
from trailwatch_processor import json_skip, log_stream, logfile
from trailwatch_processor.log_stream import LogFileError
from trailwatch_processor.logfile import FileStats, iter_matches, iter_records
from trailwatch_processor.records import PartialRecord

from tests.huge_gzip import gzip_bytes
from tests.unit.test_logfile import NameMatcher

BEFORE = {"eventVersion": "1.08", "eventID": "before", "eventName": "ConsoleLogin"}
AFTER = {"eventVersion": "1.08", "eventID": "after", "eventName": "ConsoleLogin"}
HEAD = b'{"eventVersion":"1.08","eventID":"bad","eventName":"ConsoleLogin","x":'

# Too deep for json's parser on every supported Python (3.11 fails at 1,000; 3.13 parses 1,000 and fails
# at 10,000): the depth at which the reader must isolate a record rather than lose its file.
DEEP = 100_000


def bad_record(tail: bytes) -> bytes:
    return HEAD + tail + b"}"


# name -> (the bad record's bytes, the issue kind expected (None: read as it is), check of what is yielded)
CASES: dict[str, tuple[bytes, str | None, Callable[[dict], bool]]] = {
    "lone surrogate escape": (
        bad_record(b'"\\udc00"'),
        None,  # valid JSON: the reader passes it on, store.build_item makes it storable
        lambda r: r["x"] == "\udc00",
    ),
    "integer of 5,000 digits": (
        bad_record(b"1" * 5000),
        "big_integer",
        lambda r: r["x"] == "1" * 5000,
    ),
    "nesting 100,000 deep": (
        bad_record(b"[" * DEEP + b"]" * DEEP),
        "too_deep",
        lambda r: isinstance(r, PartialRecord) and "x" not in r and r["eventID"] == "bad",
    ),
    "invalid UTF-8": (
        bad_record(b'"caf\xc3 \xff\xfe"'),
        "invalid_utf8",
        lambda r: r["x"] == "caf\ufffd \ufffd\ufffd",
    ),
    "3 MB string": (
        bad_record(b'"' + b"y" * 3_000_000 + b'"'),
        "oversized",
        lambda r: isinstance(r, PartialRecord) and len(r.raw_prefix) == logfile.MAX_RECORD_BYTES,
    ),
}


def body_with(bad: bytes) -> bytes:
    return (
        b'{"Records":[' + json.dumps(BEFORE).encode() + b"," + bad + b"," + json.dumps(AFTER).encode() + b"]}"
    )


@pytest.mark.parametrize("prefilter", [True, False], ids=["skip", "parse-all"])
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_record_between_two_matches_costs_neither(name: str, compress: bool, prefilter: bool) -> None:
    bad, kind, check = CASES[name]
    body = body_with(bad)
    raw = gzip.compress(body, compresslevel=1) if compress else body
    stats = FileStats()
    got = [r for r, _ in iter_matches(io.BytesIO(raw), NameMatcher(), stats, prefilter=prefilter)]  # type: ignore[arg-type]
    assert [r["eventID"] for r in got] == ["before", "bad", "after"]
    assert got[0] == BEFORE and got[2] == AFTER and check(got[1])
    expected = [] if kind is None else [(1, body.index(bad), kind)]
    assert [(i.index, i.offset, i.kind) for i in stats.issues] == expected
    assert stats.records == 3 and stats.issue_count == len(expected)


def test_a_bad_record_that_matches_nothing_is_reported_not_yielded() -> None:
    body = body_with(
        b'{"eventVersion":"1.08","eventName":"GetObject","x":' + b"[" * DEEP + b"]" * DEEP + b"}"
    )
    stats = FileStats()
    got = [r["eventID"] for r, _ in iter_matches(io.BytesIO(body), NameMatcher(), stats, prefilter=False)]  # type: ignore[arg-type]
    assert got == ["before", "after"]
    [issue] = stats.issues
    assert (issue.index, issue.kind) == (1, "too_deep") and "eventName=GetObject" in issue.detail


def test_a_record_the_matcher_cannot_take_is_an_issue_and_the_rest_goes_on() -> None:
    def predicate(record: dict) -> bool:
        if record.get("eventID") == "bad":
            raise RecursionError("maximum recursion depth exceeded")
        return False

    body = body_with(b'{"eventVersion":"1.08","eventID":"bad","eventName":"X"}')
    stats = FileStats()
    matcher = NameMatcher(predicate=predicate, skip=False)
    got = [r["eventID"] for r, _ in iter_matches(io.BytesIO(body), matcher, stats)]  # type: ignore[arg-type]
    assert got == ["before", "after"]
    assert [(i.index, i.kind) for i in stats.issues] == [(1, "match_error")]


def test_issues_kept_are_bounded_and_all_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfile, "MAX_ISSUES_KEPT", 3)
    body = b'{"Records":[' + b",".join([bad_record(b"1" * 5000)] * 10) + b"]}"
    stats = FileStats()
    assert len(list(iter_records(io.BytesIO(body), stats))) == 10
    assert len(stats.issues) == 3 and stats.issue_count == 10


def test_a_non_object_record_over_the_cap_is_skipped_and_counted() -> None:
    body = b'{"Records":["' + b"z" * 2_500_000 + b'",' + json.dumps(AFTER).encode() + b"]}"
    stats = FileStats()
    assert list(iter_records(io.BytesIO(body), stats)) == [AFTER]
    assert stats.skipped_non_objects == 1 and [i.kind for i in stats.issues] == ["oversized"]


def test_a_huge_other_top_level_value_is_skipped() -> None:
    body = b'{"pad":"' + b"p" * 3_000_000 + b'","Records":[' + json.dumps(AFTER).encode() + b"]}"
    assert list(iter_records(io.BytesIO(body))) == [AFTER]


# ------------------------------------------------------------------------------- memory and time bounds


def gzip_of_one_huge_record(mib: int, tail: bytes = b'"') -> bytes:
    """A log whose middle record holds a string of ``mib`` MiB (its gzip written without compressing it)."""
    head = b'{"Records":[' + json.dumps(BEFORE).encode() + b"," + HEAD + b'"'
    end = tail + b"}," + json.dumps(AFTER).encode() + b"]}"
    return gzip_bytes([(head, 1), (b"y" * (1 << 20), mib), (end, 1)])


@pytest.fixture
def traced() -> Iterator[Callable[[], int]]:
    tracemalloc.start()
    yield lambda: tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()


def test_a_200_mb_string_in_a_200_kb_gzip_stays_under_64_mb(traced: Callable[[], int]) -> None:
    """Before the cap the reader held the whole record (742 MB RSS was measured)."""
    raw = gzip_of_one_huge_record(200)
    assert len(raw) < 250_000
    started = time.perf_counter()
    stats = FileStats()
    got = [r for r, _ in iter_matches(io.BytesIO(raw), NameMatcher(), stats)]  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert traced() < 64 * 1024 * 1024
    assert [r["eventID"] for r in got] == ["before", "bad", "after"]
    assert [(i.kind, i.offset) for i in stats.issues] == [("oversized", 12 + len(json.dumps(BEFORE)) + 1)]
    assert f"{200 * (1 << 20) + len(HEAD) + 3} bytes" in stats.issues[0].detail
    assert elapsed < 60  # about 2 s alone; generous for a shared machine


def test_a_gzip_bomb_stops_at_the_decompressed_cap(
    monkeypatch: pytest.MonkeyPatch, traced: Callable[[], int]
) -> None:
    """1 GiB in production; the same check at 16 MiB here so that the test stays fast."""
    monkeypatch.setattr(log_stream, "MAX_DECOMPRESSED_BYTES", 16 << 20)
    raw = gzip_of_one_huge_record(64)
    with pytest.raises(LogFileError, match=f"over {16 << 20} bytes decompressed"):
        list(iter_records(io.BytesIO(raw)))
    assert traced() < 32 * 1024 * 1024


def test_under_the_decompressed_cap_the_file_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_stream, "MAX_DECOMPRESSED_BYTES", 16 << 20)
    assert [r["eventID"] for r in iter_records(io.BytesIO(gzip_of_one_huge_record(8)))] == [
        "before",
        "bad",
        "after",
    ]


# ------------------------------------------------------------------- the bounded skip against json's end


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(7 if depth < 6 else 4)
    if kind == 0:
        return rng.choice([0, -12, 3.5e-3, 10**30, True, False, None])
    if kind in (1, 2, 3):
        alphabet = 'ab"\\/[]{},: \n\té\u2028\U0001f600'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
    if kind in (4, 5):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(random_value(rng, 6)): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


@pytest.mark.parametrize("seed", range(40))
def test_skip_value_ends_where_json_ends(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny reads and blocks: every string, escape run and bracket straddles a boundary somewhere."""
    monkeypatch.setattr(logfile, "CHUNK_SIZE", 7)
    monkeypatch.setattr(json_skip, "_DEPTH_BLOCK", 5)
    rng = random.Random(seed)
    value = random_value(rng)
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5, separators=(",", ":") if seed % 2 else None)
    data = text.encode() + b" ,[1]"
    reader = logfile._Text(io.BytesIO(data[3:]), data[:3], 0)
    prefix, size = json_skip.skip_value(reader, "value", 10)
    assert size == len(text.encode())
    assert reader.skip_ws() == ","
    assert prefix == text.encode()[:10].decode("utf-8", "replace")


@pytest.mark.parametrize(
    "tail",
    [b'"\\\\"', b'"\\""', b'"a\\\\\\"b"', b'"x" ', b'[[["]"]]]', b'{"}":"{"}'],
    ids=["escaped backslash", "escaped quote", "escape runs", "space", "bracket in string", "braces"],
)
def test_skip_value_escape_and_bracket_edges(tail: bytes) -> None:
    data = tail + b",0"
    reader = logfile._Text(io.BytesIO(b""), data, 0)
    _, size = json_skip.skip_value(reader, "value", 0)
    assert size == len(tail.rstrip())


def test_a_file_ending_inside_a_skipped_value_is_a_log_file_error() -> None:
    body = b'{"Records":[' + HEAD + b'"' + b"y" * 2_000_000
    with pytest.raises(LogFileError, match=r"record 0 at byte 12 .*the file ends inside it"):
        list(iter_records(io.BytesIO(body)))


@pytest.mark.parametrize("name", ["nesting 100,000 deep", "3 MB string"])
def test_a_partial_record_is_matched_by_a_compiled_config(name: str) -> None:
    """The compiled matcher takes exact dicts only: a PartialRecord must still be matched."""
    from trailwatch_processor.config_schema import validate_config
    from trailwatch_processor.patterns import compile_config

    matcher = compile_config(
        validate_config({"rules": [{"id": "c", "pattern": {"eventName": ["ConsoleLogin"]}}]})
    )
    got = [
        (r["eventID"], [rule.id for rule in rules])
        for r, rules in iter_matches(io.BytesIO(body_with(CASES[name][0])), matcher)
    ]
    assert got == [("before", ["c"]), ("bad", ["c"]), ("after", ["c"])]


@pytest.mark.parametrize("chunk", [5, 64, 1 << 20])
def test_issue_offsets_are_byte_offsets_after_non_ascii_text(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logfile, "CHUNK_SIZE", chunk)
    wide = json.dumps({**BEFORE, "userAgent": "é€😀" * 50}, ensure_ascii=False).encode()
    bad = [bad_record(b"1" * 5000), bad_record(b'"\xff"'), bad_record(b"[" * DEEP + b"]" * DEEP)]
    body = b'{"Records":[' + b",".join([wide, bad[0], wide, bad[1], wide, bad[2], wide]) + b"]}"
    stats = FileStats()
    assert len(list(iter_records(io.BytesIO(body), stats))) == 7
    assert [(i.index, i.offset) for i in stats.issues] == [
        (1, body.index(bad[0])),
        (3, body.index(bad[1])),
        (5, body.index(bad[2])),
    ]
