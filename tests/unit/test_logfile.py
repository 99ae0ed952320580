"""logfile: streaming read of gzip/plain CloudTrail logs, bad input, stats, the literal skip."""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from trailwatch import synth
from trailwatch_processor import logfile
from trailwatch_processor.config_load import load_default_config
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.literals import Literals
from trailwatch_processor.log_stream import LogFileError, open_log
from trailwatch_processor.logfile import FileStats, iter_matches, iter_records
from trailwatch_processor.patterns import compile_config
from trailwatch_processor.records import PartialRecord

from tests.conftest import shared_cloudtrail_files


class NameMatcher:
    """Stand-in matcher: eventName in a set, or any record the predicate accepts (which must hold one of
    ``needles``); ``skip`` False offers no literals."""

    def __init__(
        self,
        names: tuple[str, ...] = ("ConsoleLogin",),
        needles: tuple[str, ...] = (),
        predicate: Callable[[dict], bool] | None = None,
        skip: bool = True,
    ) -> None:
        self.names = set(names)
        self.literals = Literals(frozenset(names), needles) if skip else None
        self.predicate = predicate

    def match(self, record: dict) -> list[str]:
        hit = record.get("eventName") in self.names or (self.predicate is not None and self.predicate(record))
        return ["rule"] if hit else []


class Trickle(io.RawIOBase):
    """A non-seekable stream that hands out at most ``step`` bytes per read, like a network body."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self._step if size is None or size < 0 else min(size, self._step)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


def compact(records: list, **kw: object) -> bytes:
    return json.dumps({"Records": records}, separators=(",", ":"), **kw).encode()  # type: ignore[arg-type]


def records_of(data: bytes, stats: FileStats | None = None) -> list[dict]:
    return list(iter_records(io.BytesIO(data), stats))


def matches_of(
    data: bytes, matcher: object, stats: FileStats | None = None, prefilter: bool = True
) -> list[dict]:
    return [r for r, _ in iter_matches(io.BytesIO(data), matcher, stats, prefilter=prefilter)]  # type: ignore[arg-type]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Chunks of 64 bytes: every record straddles chunk boundaries."""
    monkeypatch.setattr(logfile, "CHUNK_SIZE", 64)
    yield


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return synth.background_records(300, random.Random(7), monitored_fraction=0.1)


# ---------------------------------------------------------------------------------------------- open_log


@pytest.mark.parametrize("compress", [False, True])
def test_open_log_sniffs_gzip_and_passes_plain_json_through(compress: bool) -> None:
    body = compact([{"eventName": "X"}])
    raw = gzip.compress(body) if compress else body
    assert open_log(io.BytesIO(raw)).read() == body


def test_open_log_on_an_opened_log_is_the_same_stream() -> None:
    stream = open_log(io.BytesIO(gzip.compress(b"{}")))
    assert open_log(stream) is stream


@pytest.mark.parametrize("compress", [False, True])
def test_non_seekable_trickling_stream(corpus: list[dict], compress: bool) -> None:
    body = compact(corpus)
    raw = gzip.compress(body) if compress else body
    assert list(iter_records(Trickle(raw))) == corpus  # type: ignore[arg-type]
    matcher = NameMatcher(synth.MONITORED_NAMES)
    expected = [r for r in corpus if r["eventName"] in synth.MONITORED_NAMES]
    assert expected and [r for r, _ in iter_matches(Trickle(raw), matcher)] == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "join",
    [
        lambda a, b: a + b,
        lambda a, b: a + b"\0" * 5 + b,
        lambda a, b: a + b + b"\0" * 3,
    ],
    ids=["two members", "zero padding between", "zero padding after"],
)
@pytest.mark.parametrize("step", [7, 1 << 20])
def test_gzip_members_and_padding_as_gzip_reads_them(
    corpus: list[dict], join: Callable[[bytes, bytes], bytes], step: int
) -> None:
    body = compact(corpus)
    raw = join(gzip.compress(body[:1000]), gzip.compress(body[1000:]))
    assert gzip.decompress(raw) == body  # the reference reader agrees on the input
    assert open_log(Trickle(raw, step)).read() == body  # type: ignore[arg-type]
    assert list(iter_records(Trickle(raw, step))) == corpus  # type: ignore[arg-type]


def test_gzip_reads_of_any_size_concatenate_to_the_body(corpus: list[dict]) -> None:
    body = compact(corpus)
    stream = open_log(io.BytesIO(gzip.compress(body, compresslevel=1)))
    pieces, size = [], 1
    while piece := stream.read(size):
        assert len(piece) <= size
        pieces.append(piece)
        size = size * 3 + 1
    assert b"".join(pieces) == body


# ---------------------------------------------------------------------------------------------- bad input

DEEP = 100_000
BAD_INPUTS: dict[str, tuple[bytes, str]] = {
    "zero bytes": (b"", "empty object: 0 bytes"),
    "not gzip, not JSON": (b"PK\x03\x04 a zip file", "not JSON; expected an object with 'Records' at byte 0"),
    "JSON list": (b"[1, 2]", "a JSON list"),
    "no Records": (b'{"awsAccountId": "1", "logFiles": []}', "has no 'Records' key"),
    "empty object": (b"{}", "has no 'Records' key"),
    "Records is an object": (
        b'{"Records": {"eventName": "X"}}',
        "'Records' is not a list (starts with '{') at byte 12",
    ),
    "Records is null": (b'{"Records": null}', "'Records' is not a list"),
    "truncated JSON": (
        b'{"Records":[{"a":1},{"b":',
        "record 1 at byte 25: Expecting value (the object ends there",
    ),
    "unterminated string": (b'{"Records":[{"a":"abc', "Unterminated string"),
    "syntax error in record": (
        b'{"Records":[{"a":1},{"b" 2}]}',
        "invalid JSON in record 1 at byte 25: Expecting ':' delimiter",
    ),
    "trailing comma": (b'{"Records":[{"a":1},]}', "record 1 at byte 20"),
    "trailing data": (
        b'{"Records":[]} {"Records":[]}',
        "unexpected data after the top-level object at byte 15",
    ),
    "duplicate Records": (b'{"Records":[],"Records":[]}', "duplicate 'Records' key"),
    "invalid UTF-8 between records": (
        b'{"Records":[{"a":1}\xff]}',
        "'Records' list: expected ',' or ']' at byte 19",
    ),
    "depth bomb, truncated": (
        b'{"Records":[' + b'{"a":' * DEEP,
        "record 0 at byte 12 (nested too deeply for the parser): the file ends inside it",
    ),
}  # a depth bomb or invalid UTF-8 inside a whole record is isolated: test_logfile_hostile.py


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_a_log_file_error_naming_what_and_where(name: str, compress: bool) -> None:
    body, message = BAD_INPUTS[name]
    raw = gzip.compress(body) if compress else body
    with pytest.raises(LogFileError, match=None) as caught:
        list(iter_records(io.BytesIO(raw)))
    assert message in str(caught.value)
    with pytest.raises(LogFileError) as caught_matching:
        list(iter_matches(io.BytesIO(raw), NameMatcher()))
    assert message in str(caught_matching.value)


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda gz: gz[:-4], "truncated gzip"),  # length trailer missing
        (lambda gz: gz[: len(gz) // 2], "truncated gzip"),
        (lambda gz: gz[:-8] + b"\0\0\0\0" + gz[-4:], "corrupt gzip"),  # CRC wrong
        (lambda gz: gz[:10] + b"\xff" * 20 + gz[30:], "corrupt gzip"),
        (lambda gz: gz + b"garbage", "corrupt gzip"),
        (
            lambda gz: gz[:-8] + (int.from_bytes(gz[-8:-4], "little") ^ 1).to_bytes(4, "little") + gz[-4:],
            "corrupt",
        ),
        (lambda gz: gz[:-4] + (int.from_bytes(gz[-4:], "little") + 1).to_bytes(4, "little"), "corrupt gzip"),
        (lambda gz: gz + gz[:20], "truncated gzip"),
    ],
    ids=[
        "no trailer",
        "half",
        "bad crc",
        "bad deflate",
        "trailing garbage",
        "crc off by a bit",
        "bad length",
        "second member cut",
    ],
)
def test_damaged_gzip(corpus: list[dict], cut: Callable[[bytes], bytes], message: str) -> None:
    raw = cut(gzip.compress(compact(corpus)))
    with pytest.raises(LogFileError, match=message):
        list(iter_records(io.BytesIO(raw)))
    with pytest.raises(LogFileError, match=message):
        list(iter_matches(io.BytesIO(raw), NameMatcher(synth.MONITORED_NAMES)))


def test_gzip_of_a_digest_file_is_not_a_log() -> None:
    with pytest.raises(LogFileError, match="has no 'Records' key"):
        list(iter_records(io.BytesIO(synth.digest_body())))


def test_read_errors_of_the_source_are_not_log_file_errors() -> None:
    """A network failure is transient (retry), not a bad object (DLQ)."""

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            raise ConnectionResetError("peer reset")

    with pytest.raises(ConnectionResetError):
        list(iter_records(Broken()))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- valid input


def test_layouts_whitespace_key_order_other_keys_unicode_and_escapes() -> None:
    body = (
        '\ufeff \n{ "extra" : [1, {"Records": 3}] ,\t"Records" :\r\n [ {"b": "\\u00e9\\/\\"\\\\", "a": "ü"} ,'
        ' {"n": [1.5e3, null, true]} ] , "after": {"x": "y"} }\n'
    ).encode()
    assert records_of(body) == [{"b": 'é/"\\', "a": "ü"}, {"n": [1500.0, None, True]}]


def test_empty_records_list() -> None:
    stats = FileStats()
    assert records_of(b'{"Records":[]}', stats) == []
    assert stats == FileStats()


def test_non_object_records_are_skipped_and_counted() -> None:
    stats = FileStats()
    got = records_of(b'{"Records":[1,"x",null,[{"a":1}],{"eventName":"A"},true]}', stats)
    assert got == [{"eventName": "A"}]
    assert stats == FileStats(records=6, parsed=1, matched=0, skipped_non_objects=5, fast_path=False)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("prefilter", [False, True])
def test_a_record_with_a_10_mb_field_is_kept_as_its_first_mib(compress: bool, prefilter: bool) -> None:
    big = synth.make_record("ConsoleLogin", request_parameters={"blob": "x" * 10_000_000})
    small = synth.make_record("GetObject")
    body = compact([small, big, small])
    raw = gzip.compress(body, compresslevel=1) if compress else body
    stats = FileStats()
    [got] = matches_of(raw, NameMatcher(), stats, prefilter=prefilter)
    keys = list(big)
    before = keys[: keys.index("requestParameters")]  # the members after the cut are not recovered
    assert isinstance(got, PartialRecord) and got == {k: big[k] for k in before}
    assert got["eventName"] == "ConsoleLogin"
    assert got.raw_prefix == compact([big])[12 : 12 + logfile.MAX_RECORD_BYTES].decode()
    assert (stats.records, stats.matched, stats.fast_path) == (3, 1, prefilter)
    assert [(i.index, i.offset, i.kind) for i in stats.issues] == [(1, body.index(b"},{") + 2, "oversized")]


def test_stats_on_the_general_path(corpus: list[dict]) -> None:
    matcher = NameMatcher(synth.MONITORED_NAMES)
    stats = FileStats()
    got = matches_of(compact(corpus), matcher, stats, prefilter=False)
    expected = [r for r in corpus if r["eventName"] in synth.MONITORED_NAMES]
    assert got == expected
    assert stats == FileStats(records=300, parsed=300, matched=len(expected), skipped_non_objects=0)


def test_the_skip_parses_only_records_with_a_hit(corpus: list[dict]) -> None:
    matcher = NameMatcher(synth.MONITORED_NAMES)
    stats = FileStats()
    got = matches_of(gzip.compress(compact(corpus)), matcher, stats)
    expected = [r for r in corpus if r["eventName"] in synth.MONITORED_NAMES]
    assert got == expected
    assert (stats.records, stats.matched, stats.fast_path) == (300, len(expected), True)
    assert stats.parsed <= len(expected) + 1  # and the last record, which no separator follows


def test_a_file_without_a_hit_is_counted_not_parsed(
    corpus: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[object] = []
    real = logfile.json.JSONDecoder.raw_decode
    monkeypatch.setattr(
        logfile.json.JSONDecoder, "raw_decode", lambda self, s, i=0: decoded.append(i) or real(self, s, i)
    )
    stats = FileStats()
    assert matches_of(compact(corpus), NameMatcher(("NeverSeen",)), stats) == []
    assert (stats.parsed, stats.records, stats.fast_path) == (1, 300, True)
    assert len(decoded) == 2  # the key "Records" and the last record


def test_no_literals_parses_everything(corpus: list[dict]) -> None:
    matcher = NameMatcher(synth.MONITORED_NAMES, skip=False)
    stats = FileStats()
    assert len(matches_of(compact(corpus), matcher, stats)) == stats.matched > 0
    assert (stats.parsed, stats.fast_path) == (300, False)


@pytest.mark.parametrize(
    ("layout", "all_parsed"),
    [
        pytest.param(lambda recs: json.dumps({"Records": recs}, indent=2).encode(), True, id="pretty"),
        pytest.param(lambda recs: json.dumps({"Records": recs}).encode(), True, id="default separators"),
        pytest.param(
            lambda recs: json.dumps({"x": 1, "Records": recs}, separators=(",", ":")).encode(),
            False,
            id="other key first",
        ),
        pytest.param(
            lambda recs: compact([dict(reversed(list(r.items()))) for r in recs]),
            False,
            id="eventVersion last",
        ),
    ],
)
def test_other_layouts_give_the_same_matches(
    corpus: list[dict], layout: Callable[[list], bytes], all_parsed: bool
) -> None:
    """Every layout gives the matches of the compact one; one without the compact separator is parsed whole
    (``all_parsed``), while an odd compact one may still skip records."""
    matcher = NameMatcher(synth.MONITORED_NAMES)
    stats = FileStats()
    expected = [r for r in corpus if r["eventName"] in synth.MONITORED_NAMES]
    assert matches_of(layout(corpus), matcher, stats) == expected
    assert stats.records == 300
    if all_parsed:
        assert stats.parsed == 300


def test_other_top_level_key_after_records_still_matches(corpus: list[dict]) -> None:
    body = compact(corpus)[:-1] + b',"other":[{"a":1},{"eventVersion":"1","eventName":"ConsoleLogin"}]}'
    expected = [r for r in corpus if r["eventName"] == "ConsoleLogin"]
    assert matches_of(body, NameMatcher()) == expected == matches_of(body, NameMatcher(), prefilter=False)


def test_skip_and_full_parse_agree_across_tiny_chunks(corpus: list[dict], small_chunks: None) -> None:
    body = compact(corpus)
    matcher = NameMatcher(synth.MONITORED_NAMES)
    fast, slow = FileStats(), FileStats()
    assert matches_of(body, matcher, fast) == matches_of(body, matcher, slow, prefilter=False)
    assert fast.fast_path and fast.records == slow.records == 300
    assert records_of(body) == corpus


# ------------------------------------------------------------------------------------------ skip safety


def _record(name: str, **extra: object) -> dict:
    return {"eventVersion": "1.09", "eventName": name, **extra}


NESTED_CASES = {
    # A nested array whose later element starts with eventVersion: a cut there lands inside the record,
    # and the piece after it parses as an object. The record itself is not a ConsoleLogin.
    "fabricated record": [
        _record("GetObject", requestParameters={"items": [{"a": 1}, _record("ConsoleLogin"), {"b": 2}]}),
    ],
    # The needle sits only in a nested element; the rule looks at that nested element.
    "match hidden in a nested piece": [
        _record("GetObject"),
        _record(
            "PutObject",
            requestParameters={"items": [{"a": 1}, _record("X", note="ConsoleLogin"), _record("Y")]},
        ),
        _record("GetObject"),
    ],
    "nested separators spanning records": [
        _record("A", x=[{"k": 1}, _record("B"), _record("ConsoleLogin"), _record("C", y=[{}, _record("D")])]),
        _record("ConsoleLogin", z=[{"eventVersion": "x"}]),
    ],
    "long nested array before a hit": [
        _record("GetObject", x=[{"k": i} if i % 2 else _record(f"N{i}") for i in range(30)]),
        _record("ConsoleLogin"),
    ],
    "fabricated record after a stretch without a hit": [
        _record("GetObject", x=[{"k": 1}, *[_record(f"N{i}") for i in range(20)], _record("ConsoleLogin")]),
        _record("GetObject"),
    ],
    "strings that look like separators": [
        _record("A", ua='},{"eventVersion":"1","eventName":"ConsoleLogin"}', b='\\\\"},{'),
        _record("ConsoleLogin", ua='[{"}]'),
    ],
    "deeper than the skip follows, then a hit": [
        _record("A", x=[[[{"eventVersion": 1}]]] * 3, y=[[[[[[[[[[[[[[[[[[[[{"k": "v"}]]]]]]]]]]]]]]]]]]]]),
        _record("GetObject"),
        _record("ConsoleLogin"),
    ],
}


def _nested_predicate(record: dict) -> bool:
    items = (record.get("requestParameters") or {}).get("items") or []
    return any(isinstance(i, dict) and i.get("note") == "ConsoleLogin" for i in items)


@pytest.mark.parametrize("name", list(NESTED_CASES))
@pytest.mark.parametrize("chunk", [None, 48])
def test_nested_separators_never_give_a_wrong_answer(
    name: str, chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunk:
        monkeypatch.setattr(logfile, "CHUNK_SIZE", chunk)
    records = NESTED_CASES[name]
    matcher = NameMatcher(("ConsoleLogin",), needles=("ConsoleLogin",), predicate=_nested_predicate)
    body = compact(records)
    expected = [r for r in records if matcher.match(r)]
    stats, full = FileStats(), FileStats()
    assert matches_of(body, matcher, stats) == expected == matches_of(body, matcher, full, prefilter=False)
    assert stats.records == full.records == len(records)


def test_a_nested_separator_without_a_hit_is_parsed_and_counted_right(small_chunks: None) -> None:
    nested = [_record("A", x=[{"a": 1}, {"eventVersion": 1}]), _record("B"), _record("C")]
    stats = FileStats()
    assert matches_of(compact(nested), NameMatcher(), stats) == []
    assert stats.records == 3 and stats.parsed >= 2  # A is parsed; B may be skipped once proven whole


@pytest.mark.parametrize(("depth", "skipped"), [(40, True), (200, False)])
def test_a_record_deeper_than_the_skip_follows_is_parsed(depth: int, skipped: bool) -> None:
    deep = b"[" * depth + b"]" * depth
    body = (
        b'{"Records":[{"eventVersion":"1","eventName":"GetObject","x":' + deep + b'},{"eventVersion":"2"}]}'
    )
    stats = FileStats()
    assert matches_of(body, NameMatcher(), stats) == []
    assert (stats.records, stats.parsed) == (2, 1 if skipped else 2)


def test_a_depth_bomb_is_isolated_with_or_without_a_hit() -> None:
    deep = b"[" * DEEP + b"]" * DEEP
    for name, matched in (
        (b"GetObject", []),
        (b"ConsoleLogin", [{"eventVersion": "1", "eventName": "ConsoleLogin"}]),
    ):
        body = (
            b'{"Records":[{"eventVersion":"1","eventName":"'
            + name
            + b'","x":'
            + deep
            + b'},{"eventVersion":"2"}]}'
        )
        stats = FileStats()
        assert matches_of(body, NameMatcher(), stats) == matched
        assert [(i.index, i.offset, i.kind) for i in stats.issues] == [(0, 12, "too_deep")]
        assert stats.records == 2


@pytest.mark.parametrize(
    "spelling",
    [
        lambda text: text.replace(b'"ConsoleLogin"', b'"Console\\u004cogin"'),
        lambda text: text.replace(b'"eventName"', b'"event\\u004eame"'),
        lambda text: text.replace(b'"eventName":"ConsoleLogin"', b'"eventName" : "ConsoleLogin"'),
        lambda text: text.replace(b'"eventName":"ConsoleLogin"', b'"eventName":["ConsoleLogin"]'),
        lambda text: text.replace(b'"signin.amazonaws.com"', b'"signin.amazonaws.com\\/x"'),
    ],
    ids=["escaped value", "escaped key", "spaces", "array", "escaped slash"],
)
def test_other_spellings_of_a_hit_make_a_candidate(spelling: Callable[[bytes], bytes]) -> None:
    matcher = compile_config(
        validate_config({"rules": [{"id": "c", "pattern": {"eventName": ["ConsoleLogin"]}}]})
    )
    records = [synth.make_record("GetObject"), synth.console_login(), synth.make_record("GetObject")]
    body = spelling(compact(records))
    stats = FileStats()
    got = matches_of(body, matcher, stats)
    assert got == [json.loads(body)["Records"][1]] == matches_of(body, matcher, prefilter=False)
    assert stats.fast_path


def test_long_and_many_literals_do_not_break_the_reader(corpus: list[dict]) -> None:
    """Regression: a 2,000-character literal and 50 literals once made the prefilter's regex builder
    recurse past Python's limit on every log file; the validator accepts such configs."""
    long_name = "A" * 2000
    rules = [{"id": "long", "pattern": {"eventName": [long_name], "errorCode": ["E" * 2000]}}]
    rules += [{"id": f"r{i}", "pattern": {"errorMessage": [{"prefix": f"m{i}" * 40}]}} for i in range(30)]
    rules += [{"id": "names", "pattern": {"eventName": [f"N{i}" for i in range(50)]}}]
    matcher = compile_config(validate_config({"rules": rules}))
    assert matcher.literals is not None
    records = [
        *corpus[:50],
        {**synth.make_record(long_name), "errorCode": "E" * 2000},
        synth.make_record("N7"),
        *corpus[50:100],
    ]
    records[5] = {**records[5], "errorMessage": "m3" * 40 + " and more"}
    body = gzip.compress(compact(records))
    expected = [r for r in records if matcher.match(r)]
    assert len(expected) == 3
    assert matches_of(body, matcher) == expected == matches_of(body, matcher, prefilter=False)


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.parametrize("path", shared_cloudtrail_files(), ids=lambda p: p.name)
@pytest.mark.parametrize("compress", [False, True])
def test_shared_files_parse_to_the_same_records_as_json_load(path: Path, compress: bool) -> None:
    raw = path.read_bytes()
    expected = json.loads(raw)["Records"]
    stats = FileStats()
    assert records_of(gzip.compress(raw) if compress else raw, stats) == expected
    assert stats.records == stats.parsed == len(expected)


def test_shared_records_match_without_exceptions(shared_records: list[dict]) -> None:
    matcher = compile_config(load_default_config())
    data = compact(shared_records)
    stats = FileStats()
    got = [(r, [rule.id for rule in rules]) for r, rules in iter_matches(io.BytesIO(data), matcher, stats)]
    expected = [(r, [rule.id for rule in matcher.match(r)]) for r in shared_records if matcher.match(r)]
    assert got == expected and stats.matched == len(expected) > 0
