"""Differential: matching with the literal prefilter (fast path) equals matching without it (general path).

Random records carry what could fool a text prefilter: JSON escapes (``\\u`` via ensure_ascii, ``\\/``,
quotes, backslashes), unicode, nested objects whose keys include ``eventVersion``, odd key orders,
pretty printing. The real shared data goes through the same comparison, re-serialised several ways.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trailwatch_processor import logfile, memsearch
from trailwatch_processor.logfile import FileStats, iter_matches
from trailwatch_processor.rules import Matcher, compile_config, load_default_config, validate_config

from tests.unit import test_rules_property as props


@pytest.fixture(autouse=True, scope="module", params=["memmem", "bytes.find"])
def substring_search(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs with the needles searched through the C library's memmem and through the
    pure fallback (regexes and bytes.find): both must give the general path's matches."""
    if request.param == "memmem" and not memsearch.FAST:
        pytest.skip("this C library has no memmem")
    saved = memsearch._memmem, memsearch.FAST
    if request.param == "bytes.find":
        memsearch._memmem, memsearch.FAST = None, False
    logfile._prefilter.cache_clear()  # prefilters are built per search mode
    try:
        yield request.param
    finally:
        memsearch._memmem, memsearch.FAST = saved
        logfile._prefilter.cache_clear()


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
# Rules the prefilter covers by looking at values of keys that share eventName's scan ("e...):
# exact, prefix and suffix filters, escapes in the filters, beside a rule searched by needles.
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
# Array elements that start like a record: the fast path's separators land inside the record.
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
    # Still the fast path (the separators keep their spelling) but "eventName": "X" has a space.
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
    fast, fast_stats = run(data, matcher, True)
    slow, slow_stats = run(data, matcher, False)
    assert fast == slow
    assert fast_stats.matched == slow_stats.matched
    return fast_stats


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(records(), min_size=1, max_size=8),
    st.sampled_from(sorted(SERIALISERS)),
    st.sampled_from([0, 40]),
    st.sampled_from([0, 60]),
)
def test_prefilter_gives_identical_matches(recs: list, serialiser: str, chunk: int, unproven: int) -> None:
    data = SERIALISERS[serialiser](recs)
    saved = logfile.CHUNK_SIZE, logfile.UNPROVEN_MAX
    logfile.CHUNK_SIZE = chunk or saved[0]  # 40 bytes: windows end inside records and nested separators
    logfile.UNPROVEN_MAX = unproven or saved[1]  # 60: windows without a hit are checked every few
    try:
        for matcher in (DEFAULT, SMALL, KEYS):
            assert_same(data, matcher)
    finally:
        logfile.CHUNK_SIZE, logfile.UNPROVEN_MAX = saved


def test_generated_inputs_reach_the_fast_path() -> None:
    """The property above is only meaningful if compact inputs do take the fast path."""
    recs = [{"eventVersion": "1.09", "eventName": "ConsoleLogin", "userAgent": "a\\/\u00fc"}] * 3
    for name in (
        "compact",
        "compact ascii",
        "escaped slashes",
        "space after colons",
        "escaped eventName key",
    ):
        assert assert_same(SERIALISERS[name](recs), DEFAULT).fast_path, name
    assert not assert_same(SERIALISERS["pretty"](recs), DEFAULT).fast_path


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
    if order == "eventVersion first" and serialiser != "pretty":
        assert stats.fast_path
    if order == "eventVersion first" and serialiser in COMPACT:  # others flag every record
        assert stats.parsed < stats.records


def compact(recs: list) -> bytes:
    return SERIALISERS["compact"](recs)


def record(name: object, **fields: object) -> dict:
    return {"eventVersion": "1.09", "eventName": name, "eventSource": "iam.amazonaws.com", **fields}


# (records, how many DEFAULT matches, how many records the fast path parses): each case is also run
# against the general path. The eventName scan must flag every record a rule indexed on eventName
# could match, in any spelling, and may flag more (parsed), never fewer.
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
    stats = assert_same(compact(recs), DEFAULT)
    assert stats.fast_path
    assert (stats.matched, stats.parsed) == (matched, parsed)
    assert stats.records == len(recs)


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
    assert stats.parsed == parsed
    assert stats.matched == (1 if b"CreateUser" in data or b"\\u0055" in data else 0)


def test_key_index_is_used_by_the_configs_above() -> None:
    """The properties above exercise the key index only if these configs do get one."""
    for matcher, keys, needles in (
        (DEFAULT, {"errorCode", "eventName"}, (b'"Root"',)),
        (KEYS, {"errorCode", "eventName", "eventSource"}, ('/\u00fc"'.encode(),)),
    ):
        index = matcher.prefilter_index(logfile._scanned_key)
        assert index is not None
        assert {key for key, _ in index.keys} == keys
        assert index.needles == needles


def raw_log(*records: bytes) -> bytes:
    return b'{"Records":[' + b",".join(records) + b"]}"


# (raw record text, how many DEFAULT matches, parsed): errorCode is looked at by key, like eventName.
ERROR_CODE_CASES: dict[str, tuple[bytes, int, int]] = {
    "other code": (b'{"eventVersion":"1.09","eventName":"GetObject","errorCode":"NoSuchKey"}', 0, 0),
    "prefix": (b'{"eventVersion":"1.09","eventName":"X","errorCode":"AccessDeniedException"}', 1, 1),
    "suffix": (b'{"eventVersion":"1.09","eventName":"X","errorCode":"Client.UnauthorizedOperation"}', 1, 1),
    "suffix inside": (b'{"eventVersion":"1.09","eventName":"X","errorCode":"UnauthorizedOperations"}', 0, 0),
    "prefix inside": (b'{"eventVersion":"1.09","eventName":"X","errorCode":"NotAccessDenied"}', 0, 0),
    "in a list": (b'{"eventVersion":"1.09","eventName":"X","errorCode":["NoSuchKey","AccessDenied"]}', 1, 1),
    "null": (b'{"eventVersion":"1.09","eventName":"X","errorCode":null}', 0, 1),
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
        0,
    ),
}


@pytest.mark.parametrize("case", sorted(ERROR_CODE_CASES))
def test_error_code_scan(case: str) -> None:
    text, matched, parsed = ERROR_CODE_CASES[case]
    quiet = b'{"eventVersion":"1.09","eventName":"ListUsers"}'
    stats = assert_same(raw_log(quiet, text, quiet), DEFAULT)
    assert stats.fast_path
    assert (stats.matched, stats.parsed) == (matched, parsed)
    assert stats.records == 3


def test_duplicate_event_name_keys_are_each_looked_at() -> None:
    last = b'{"eventVersion":"1.09","eventName":"GetObject","eventName":"CreateUser"}'
    first = b'{"eventVersion":"1.09","eventName":"CreateUser","eventName":"GetObject"}'
    assert (assert_same(raw_log(last), DEFAULT).matched, assert_same(raw_log(first), DEFAULT).parsed) == (
        1,
        1,
    )


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
    assert (stats.fast_path, stats.parsed, stats.records) == (True, 0, 300)


POLICIES: dict[str, Callable[[str], bool]] = {
    "e keys": logfile._scanned_key,
    "every key": lambda key: True,
    "no key": lambda key: False,
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    specs=props.rule_specs,
    policy=st.sampled_from(sorted(POLICIES)),
    serialiser=st.sampled_from(sorted(SERIALISERS)),
)
def test_prefilter_agrees_on_generated_rules(
    data: st.DataObject, specs: list, policy: str, serialiser: str
) -> None:
    """Generated rules (every filter kind, $or, exclude) over records built to match them, with the key
    index on every key, on the e-keys only, or on none: the fast path finds what the general path finds."""
    matcher = compile_config(validate_config(props._config(specs)))
    recs = [data.draw(props.witness(pattern)) for pattern, _ in specs]
    recs += data.draw(st.lists(props.records, max_size=3))
    recs = [{"eventVersion": "1.09", **r} for r in recs]
    saved = logfile._scanned_key
    logfile._scanned_key = POLICIES[policy]
    try:
        assert_same(SERIALISERS[serialiser](recs), matcher)
    finally:
        logfile._scanned_key = saved


def test_config_without_key_leaves_parses_only_needle_records() -> None:
    """Only needles (no key leaf): the key scan must not flag anything by itself."""
    matcher = compile_config(
        validate_config({"rules": [{"id": "root", "pattern": {"userIdentity": {"type": ["Root"]}}}]})
    )
    index = matcher.prefilter_index(logfile._scanned_key)
    assert index is not None and index.keys == ()
    recs = [record("X", userIdentity={"type": "Root" if i == 5 else "IAMUser"}) for i in range(20)]
    stats = assert_same(compact(recs), matcher)
    assert (stats.fast_path, stats.records, stats.parsed, stats.matched) == (True, 20, 1, 1)


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


@pytest.mark.parametrize("value", ["v-", "a-longer-value-"])  # needles shorter and longer than _LONG
@pytest.mark.parametrize("n", [1, 3, 4, 12, 13, 20])
def test_needles_searched_one_by_one_or_by_trie_regex(substring_search: str, n: int, value: str) -> None:
    """Few needles are searched one by one, many through trie regexes (the threshold depends on the
    search at hand); either way the fast path finds what the general path finds, near misses included."""
    rules = [{"id": f"r{i}", "pattern": {"requestParameters": {"name": [f"{value}{i}"]}}} for i in range(n)]
    matcher = compile_config(validate_config({"rules": rules}))
    names = [f"{value}{i}" for i in range(0, n, 2)] + [f"{value}{i}x" for i in range(1, n)]
    recs = [
        record("PutThing", requestParameters={"name": name}) for name in [*names, value, "x" + value + "1"]
    ]
    stats = assert_same(compact(recs), matcher)
    assert (stats.fast_path, stats.matched) == (True, len(range(0, n, 2)))
    prefilter = logfile._prefilter_of(matcher)
    few = logfile._FEW_MEMMEM if substring_search == "memmem" else logfile._FEW_SRE
    one_by_one = len(prefilter._literals) + len(prefilter._patterns) == n
    assert one_by_one == (n <= few)
    assert (prefilter._literals == []) == (n > few or (substring_search != "memmem" and len(value) < 8))
