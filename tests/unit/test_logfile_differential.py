"""Differential: matching with the literal skip equals matching without it, and json.load of the whole file.

Random records carry what could fool a text prefilter: JSON escapes (``\\u`` via ensure_ascii, ``\\/``,
quotes, backslashes), unicode, nested objects whose keys include ``eventVersion``, odd key orders,
pretty printing. The real shared data goes through the same comparison, re-serialised several ways.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trailwatch_processor import logfile
from trailwatch_processor.config_load import load_default_config
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.literals import MAX_NEEDLES
from trailwatch_processor.logfile import FileStats, iter_matches
from trailwatch_processor.patterns import Matcher, compile_config

from tests.profiles import examples
from tests.unit import test_rules_property as props

DEFAULT = compile_config(load_default_config())
NAMES = [
    "ConsoleLogin",
    "CreateUser",
    "StopLogging",
    "PutBucketPolicy",
    "GetObject",
    "Describe\u00e9",
    'Odd"Name/\\',
]
SMALL = compile_config(
    validate_config(
        {
            "monitored_events": ["GetObject"],
            "rules": [
                {"id": "odd-names", "pattern": {"eventName": ["Describe\u00e9", 'Odd"Name/\\']}},
                {
                    "id": "nested-note",
                    "pattern": {"requestParameters": {"items": {"note": [{"prefix": "Con"}]}}},
                },
                {"id": "agent", "pattern": {"userAgent": [{"suffix": "/\u00fc"}]}},
            ],
        }
    )
)
# Rules covered by needles only: exact, prefix and suffix filters, escapes in the filters.
KEYS = compile_config(
    validate_config(
        {
            "rules": [
                {
                    "id": "source",
                    "pattern": {"eventSource": [{"prefix": "sign"}, "x\\/y", {"suffix": "\u00fc"}]},
                },
                {
                    "id": "name-affix",
                    "pattern": {"eventName": [{"prefix": "Describ"}, {"suffix": '"Name/\\'}], "k": [1]},
                },
                {"id": "code", "pattern": {"errorCode": [{"suffix": "Operation"}, "NoSuchKey"]}},
                {"id": "agent", "pattern": {"userAgent": [{"suffix": "/\u00fc"}]}},
            ],
        }
    )
)

_PIECES = [*'ab"\\/\u00e9\u00fc\u4e2d\U0001f600{}[],: \n', *NAMES, '},{"eventVersion":']
text = st.lists(st.sampled_from(_PIECES), max_size=6).map("".join)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), text, st.sampled_from(NAMES))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["eventVersion", "eventName", "note", "k", "\u00e9"]), inner, max_size=3
        ),
    ),
    max_leaves=8,
)
# Array elements that start like a record: separators inside the record.
nested_record = st.fixed_dictionaries({"eventVersion": st.just("1.09"), "note": st.sampled_from(NAMES)})
keys = st.sampled_from(["eventVersion", "eventName", "note", "k", "\u00e9"])


@st.composite
def records(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 20)) == 0:
        return draw(scalars)  # a non-object record
    record: dict = {"eventVersion": "1.09"}
    shape = draw(st.integers(0, 12))
    if shape == 0:  # a list holds a name for EventBridge's array semantics
        record["eventName"] = draw(st.lists(st.sampled_from(NAMES), max_size=2))
    elif shape == 1:
        record["eventName"] = draw(scalars)
    elif shape > 2:  # shape 2: no eventName at all
        record["eventName"] = draw(st.sampled_from(NAMES))
    record["eventSource"] = draw(st.sampled_from(["signin.amazonaws.com", "s3.amazonaws.com", "x\\/y"]))
    if draw(st.booleans()):
        record["userAgent"] = draw(text) + draw(st.sampled_from(["", "/\u00fc"]))
    if draw(st.booleans()):
        items = draw(
            st.lists(st.one_of(nested_record, st.dictionaries(keys, scalars, max_size=2), values), max_size=4)
        )
        record["requestParameters"] = {"items": items}
    if draw(st.booleans()):
        record["errorCode"] = draw(
            st.sampled_from(["AccessDenied", "Client.UnauthorizedOperation", "NoSuchKey"])
        )
    if draw(st.booleans()):
        record["userIdentity"] = {"type": draw(st.sampled_from(["Root", "IAMUser"]))}
    record.update(draw(st.dictionaries(st.sampled_from(["extra", "eventVersion2", "z"]), values, max_size=2)))
    if draw(st.integers(0, 6)) == 0:
        items = list(record.items())
        draw(st.randoms()).shuffle(items)
        record = dict(items)
    return record


SERIALISERS: dict[str, Callable[[list], bytes]] = {
    "compact": lambda recs: json.dumps({"Records": recs}, separators=(",", ":"), ensure_ascii=False).encode(),
    "compact ascii": lambda recs: json.dumps({"Records": recs}, separators=(",", ":")).encode(),
    "escaped slashes": lambda recs: (
        json.dumps({"Records": recs}, separators=(",", ":")).replace("/", "\\/").encode()
    ),
    "pretty": lambda recs: json.dumps({"Records": recs}, indent=1, ensure_ascii=False).encode(),
    # The separators keep their spelling, but "eventName": "X" has a space.
    "space after colons": lambda recs: (
        b'{"Records":['
        + b",".join(json.dumps(r, separators=(",", ": "), ensure_ascii=False).encode() for r in recs)
        + b"]}"
    ),
    # The key's other spelling: the eventName scan never sees it, the escape search must.
    "escaped eventName key": lambda recs: (
        json.dumps({"Records": recs}, separators=(",", ":"), ensure_ascii=False)
        .replace('"eventName"', '"\\u0065ventName"')
        .encode()
    ),
}

COMPACT = ("compact", "compact ascii", "escaped slashes")


def run(data: bytes, matcher: Matcher, prefilter: bool) -> tuple[list, FileStats]:
    stats = FileStats()
    got = [
        (r, [rule.id for rule in rules])
        for r, rules in iter_matches(io.BytesIO(data), matcher, stats, prefilter)
    ]
    return got, stats


def assert_same(data: bytes, matcher: Matcher) -> FileStats:
    """Matches with the skip == without it == json.load of the whole file; the skip's stats."""
    fast, fast_stats = run(data, matcher, True)
    slow, slow_stats = run(data, matcher, False)
    whole = [(r, [rule.id for rule in matcher.match(r)]) for r in json.loads(data)["Records"]]
    assert fast == slow == [(r, ids) for r, ids in whole if ids]
    assert fast_stats.matched == slow_stats.matched
    assert fast_stats.records == slow_stats.records == len(whole)
    return fast_stats


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(records(), min_size=1, max_size=8),
    st.sampled_from(sorted(SERIALISERS)),
    st.sampled_from([0, 40]),
)
def test_skip_gives_identical_matches(recs: list, serialiser: str, chunk: int) -> None:
    data = SERIALISERS[serialiser](recs)
    saved = logfile.CHUNK_SIZE
    logfile.CHUNK_SIZE = chunk or saved  # 40 bytes: windows end inside records and nested separators
    try:
        for matcher in (DEFAULT, SMALL, KEYS):
            assert_same(data, matcher)
    finally:
        logfile.CHUNK_SIZE = saved


def test_generated_inputs_are_skipped() -> None:
    """The property above is only meaningful if the skip does skip records of such inputs."""
    quiet = [{"eventVersion": "1.09", "eventName": "GetObject", "userAgent": "agent"}] * 20
    recs = [{"eventVersion": "1.09", "eventName": "ConsoleLogin", "userAgent": "a\\/\u00fc"}, *quiet]
    for name in COMPACT:
        stats = assert_same(SERIALISERS[name](recs), DEFAULT)
        assert stats.fast_path and stats.parsed < stats.records, name
    # every record holds a hit: "eventName" spelled otherwise
    for name in ("space after colons", "escaped eventName key"):
        assert assert_same(SERIALISERS[name](recs), DEFAULT).parsed == len(recs)
    assert assert_same(SERIALISERS["pretty"](recs), DEFAULT).parsed == len(recs)


@pytest.mark.parametrize("serialiser", sorted(SERIALISERS))
@pytest.mark.parametrize("order", ["as is", "eventVersion first", "shuffled keys"])
def test_shared_data_identical_with_and_without_prefilter(
    shared_records: list[dict], serialiser: str, order: str
) -> None:
    recs = shared_records
    if order == "eventVersion first":  # most shared records lack eventVersion or start elsewhere
        recs = [{"eventVersion": r.get("eventVersion", "1.0"), **r} for r in recs]
    elif order == "shuffled keys":
        rng = random.Random(3)
        recs = [dict(rng.sample(list(r.items()), len(r))) for r in recs]
    stats = assert_same(SERIALISERS[serialiser](recs), DEFAULT)
    assert stats.matched > 0
    if order == "eventVersion first" and serialiser in COMPACT:  # others flag every record
        assert stats.parsed < stats.records


def compact(recs: list) -> bytes:
    return SERIALISERS["compact"](recs)


def record(name: object, **fields: object) -> dict:
    return {"eventVersion": "1.09", "eventName": name, "eventSource": "iam.amazonaws.com", **fields}


# (records, how many DEFAULT matches, how many of them the skip parses): each case is also run without
# the skip. The eventName scan must flag every record a rule on exact eventNames could match, in any
# spelling, and may flag more (parsed), never fewer. A quiet record is appended (the last record of a
# file is always parsed).
LAST = {"eventVersion": "1.09", "eventName": "ListRoles"}
EVENT_NAME_CASES: dict[str, tuple[list, int, int]] = {
    "no candidate": ([record("GetObject"), record("ListUsers")], 0, 0),
    "top-level name": ([record("GetObject"), record("CreateUser")], 1, 1),
    "nested name only": (
        [record("GetObject", requestParameters={"eventName": "CreateUser"}), record("ListUsers")],
        0,
        1,
    ),
    "nested name and top-level name": (
        [record("CreateUser", requestParameters={"items": [{"eventName": "GetObject"}]})],
        1,
        1,
    ),
    "name as a value of another key": ([record("GetObject", note="eventName")], 0, 1),  # not :" after it
    "name in a list": ([record(["GetObject", "CreateUser"]), record("GetObject")], 1, 1),
    "name null": ([record(None), record("GetObject")], 0, 1),
    "no eventName": ([{"eventVersion": "1.09", "eventSource": "iam.amazonaws.com"}], 0, 0),
    "duplicate key, name last": (
        [json.loads('{"eventVersion":"1.09","eventName":"GetObject","eventName":"CreateUser"}')],
        1,
        1,
    ),
    "name with a quote": ([record('Create"User'), record("CreateUser\\")], 0, 2),
    "name prefix of a monitored one": ([record("CreateUse"), record("CreateUsers")], 0, 0),
}


@pytest.mark.parametrize("case", sorted(EVENT_NAME_CASES))
def test_event_name_scan(case: str) -> None:
    recs, matched, parsed = EVENT_NAME_CASES[case]
    stats = assert_same(compact([*recs, LAST]), DEFAULT)
    assert stats.fast_path
    assert (stats.matched, stats.parsed - 1) == (matched, parsed)


@pytest.mark.parametrize(
    ("edit", "parsed"),
    [
        (lambda t: t, 0),
        (lambda t: t.replace(b'"eventName":"GetObject"', b'"eventName" : "CreateUser"'), 1),
        (lambda t: t.replace(b'"eventName":"GetObject"', b'"eventName":\n"CreateUser"'), 1),
        (lambda t: t.replace(b'"eventName":"GetObject"', b'"eventName":"Create\\u0055ser"'), 1),
        (lambda t: t.replace(b'"eventName":"GetObject"', b'"\\u0065ventName":"CreateUser"'), 1),
        (lambda t: t.replace(b'"eventName":"GetObject"', b'"eventName":"Create\\/User"'), 1),
    ],
    ids=["compact", "spaces", "newline", "escaped value", "escaped key", "escaped slash"],
)
def test_event_name_spellings_are_flagged(edit: Callable[[bytes], bytes], parsed: int) -> None:
    data = edit(compact([record("ListUsers"), record("GetObject"), record("ListRoles")]))
    stats = assert_same(data, DEFAULT)
    assert stats.fast_path
    assert stats.parsed - 1 == parsed  # and the last record
    assert stats.matched == (1 if b"CreateUser" in data or b"\\u0055" in data else 0)


def test_the_configs_above_offer_literals() -> None:
    """The properties above exercise the skip only if these configs do offer literals."""
    assert DEFAULT.literals is not None and DEFAULT.literals.needles == (
        '"AccessDenied',
        '"Root"',
        'UnauthorizedOperation"',
    )
    assert "CreateUser" in DEFAULT.literals.event_names
    assert "UpdateFunctionCode20" in DEFAULT.literals.event_name_prefixes
    assert SMALL.literals is not None and KEYS.literals is not None
    assert KEYS.literals.event_names == frozenset()


@pytest.mark.parametrize(
    ("name", "source", "matched"),
    [
        ("UpdateFunctionCode20150331v2", "lambda.amazonaws.com", 1),  # covered through its name prefix
        ("UpdateFunctionCode20150331v2", "cloudfront.amazonaws.com", 0),  # prefix hit, no match
        ("UpdateFunctionCod", "lambda.amazonaws.com", 0),
        ("GetFunction20150331v2", "lambda.amazonaws.com", 0),
    ],
)
def test_event_name_prefixes_are_hits(name: str, source: str, matched: int) -> None:
    data = compact([record("ListUsers"), record(name, eventSource=source), record("ListRoles")])
    stats = assert_same(data, DEFAULT)
    assert stats.fast_path
    assert stats.matched == matched
    assert stats.parsed - 1 == (1 if name.startswith("UpdateFunctionCode20") else 0)  # and the last record


def raw_log(*records: bytes) -> bytes:
    return b'{"Records":[' + b",".join(records) + b"]}"


# (raw record text, how many DEFAULT matches, parsed): errorCode's prefix and suffix are needles.
ERROR_CODE_CASES: dict[str, tuple[bytes, int, int]] = {
    "other code": (b'{"eventVersion":"1.09","eventName":"GetObject","errorCode":"NoSuchKey"}', 0, 0),
    "prefix": (b'{"eventVersion":"1.09","eventName":"X","errorCode":"AccessDeniedException"}', 1, 1),
    "suffix": (b'{"eventVersion":"1.09","eventName":"X","errorCode":"Client.UnauthorizedOperation"}', 1, 1),
    "suffix inside": (b'{"eventVersion":"1.09","eventName":"X","errorCode":"UnauthorizedOperations"}', 0, 0),
    "prefix inside": (b'{"eventVersion":"1.09","eventName":"X","errorCode":"NotAccessDenied"}', 0, 0),
    "in a list": (b'{"eventVersion":"1.09","eventName":"X","errorCode":["NoSuchKey","AccessDenied"]}', 1, 1),
    "null": (b'{"eventVersion":"1.09","eventName":"X","errorCode":null}', 0, 0),
    "space": (b'{"eventVersion":"1.09","eventName":"X","errorCode": "AccessDenied"}', 1, 1),
    "escaped key": (b'{"eventVersion":"1.09","eventName":"X","\\u0065rrorCode":"AccessDenied"}', 1, 1),
    "escaped value": (b'{"eventVersion":"1.09","eventName":"X","errorCode":"\\u0041ccessDenied"}', 1, 1),
    "duplicate key, match last": (
        b'{"eventVersion":"1.09","eventName":"X","errorCode":"NoSuchKey","errorCode":"AccessDenied"}',
        1,
        1,
    ),
    "duplicate key, match first": (
        b'{"eventVersion":"1.09","eventName":"X","errorCode":"AccessDenied","errorCode":"NoSuchKey"}',
        0,
        1,
    ),
    "nested only": (b'{"eventVersion":"1.09","eventName":"X","extra":{"errorCode":"AccessDenied"}}', 0, 1),
    "other key's value": (
        b'{"eventVersion":"1.09","eventName":"X","errorCode":"NoSuchKey","errorMessage":"AccessDenied"}',
        0,
        1,
    ),
}


@pytest.mark.parametrize("case", sorted(ERROR_CODE_CASES))
def test_error_code_scan(case: str) -> None:
    text, matched, parsed = ERROR_CODE_CASES[case]
    quiet = b'{"eventVersion":"1.09","eventName":"ListUsers"}'
    stats = assert_same(raw_log(quiet, text, quiet), DEFAULT)
    assert stats.fast_path
    assert (stats.matched, stats.parsed - 1) == (matched, parsed)
    assert stats.records == 3


def test_duplicate_event_name_keys_are_each_looked_at() -> None:
    last = b'{"eventVersion":"1.09","eventName":"GetObject","eventName":"CreateUser"}'
    first = b'{"eventVersion":"1.09","eventName":"CreateUser","eventName":"GetObject"}'
    quiet = b'{"eventVersion":"1.09","eventName":"ListUsers"}'
    assert assert_same(raw_log(last, quiet), DEFAULT).matched == 1
    assert assert_same(raw_log(quiet, first, quiet), DEFAULT).parsed == 2  # first and the last


@pytest.mark.parametrize("windows", [1, 3, 50])
def test_quiet_windows_count_records_by_separators(windows: int) -> None:
    """Records of windows that are never parsed are still counted exactly."""
    recs = [record(f"List{i}") for i in range(300)]
    data = compact(recs)
    saved = logfile.CHUNK_SIZE
    logfile.CHUNK_SIZE = max(64, len(data) // windows)
    try:
        stats = assert_same(data, DEFAULT)
    finally:
        logfile.CHUNK_SIZE = saved
    assert (stats.fast_path, stats.parsed, stats.records) == (True, 1, 300)  # the last is parsed


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    specs=props.rule_specs,
    serialiser=st.sampled_from(sorted(SERIALISERS)),
)
def test_skip_agrees_on_generated_rules(data: st.DataObject, specs: list, serialiser: str) -> None:
    """Generated rules (every filter kind, $or, exclude) over records built to match them: the skip
    finds what the full parse finds."""
    matcher = compile_config(validate_config(props._config(specs)))
    recs = [data.draw(props.witness(pattern)) for pattern, _ in specs]
    recs += data.draw(st.lists(props.records, max_size=3))
    recs = [{"eventVersion": "1.09", **r} for r in recs]
    assert_same(SERIALISERS[serialiser](recs), matcher)


def test_config_with_needles_only_parses_only_needle_records() -> None:
    """Only needles (no eventName leaf): the eventName scan must not flag anything by itself."""
    matcher = compile_config(
        validate_config({"rules": [{"id": "root", "pattern": {"userIdentity": {"type": ["Root"]}}}]})
    )
    assert matcher.literals is not None and matcher.literals.event_names == frozenset()
    recs = [record("X", userIdentity={"type": "Root" if i == 5 else "IAMUser"}) for i in range(20)]
    stats = assert_same(compact(recs), matcher)
    assert (stats.fast_path, stats.records, stats.parsed, stats.matched) == (True, 20, 2, 1)  # and the last


@pytest.mark.parametrize("at", ["first", "middle", "last"])
@pytest.mark.parametrize("chunk", [0, 40, 200])
def test_needle_at_the_edges_of_windows(at: str, chunk: int) -> None:
    """A needle that ends on the last bytes of a window (the last member of the window's last record, or
    of the file) or begins right after a record's first member is found: every byte of a window is
    searched."""
    matcher = compile_config(
        validate_config(
            {
                "rules": [
                    {"id": "root", "pattern": {"userIdentity": {"type": ["Root"]}}},
                    {"id": "a", "pattern": {"a": ["Root"]}},
                ]
            }
        )
    )
    recs = [record("ListUsers", userIdentity={"type": "IAMUser"}) for _ in range(9)]
    where = {"first": 0, "middle": 4, "last": 8}[at]
    recs[where] = {"eventVersion": "1.09", "a": "Root"}  # the needle as near the record's start as can be
    recs[where + (1 if where < 8 else -1)] = record("ListUsers", userIdentity={"type": "Root"})  # needle last
    saved = logfile.CHUNK_SIZE
    logfile.CHUNK_SIZE = chunk or saved  # 40 bytes: every window is one record; 200: a few records each
    try:
        stats = assert_same(compact(recs), matcher)
    finally:
        logfile.CHUNK_SIZE = saved
    assert (stats.fast_path, stats.records, stats.matched) == (True, 9, 2)


@pytest.mark.parametrize("n", [1, 3, 20, MAX_NEEDLES, MAX_NEEDLES + 1])
def test_many_needles_agree(n: int) -> None:
    """However many needles, the skip finds what the full parse finds, near misses included; past
    MAX_NEEDLES a config offers no literals and every record is parsed."""
    value = "a-value-"
    rules = [{"id": f"r{i}", "pattern": {"requestParameters": {"name": [f"{value}{i}"]}}} for i in range(n)]
    matcher = compile_config(validate_config({"rules": rules}))
    names = [f"{value}{i}" for i in range(0, n, 2)] + [f"{value}{i}x" for i in range(1, n)]
    recs = [
        record("PutThing", requestParameters={"name": name}) for name in [*names, value, "x" + value + "1"]
    ]
    stats = assert_same(compact(recs), matcher)
    assert (stats.fast_path, stats.matched) == (n <= MAX_NEEDLES, len(range(0, n, 2)))
