"""Property tests: the compiled matcher agrees with the plain reference evaluator; literals are sound."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trailwatch_processor.config import ConfigError
from trailwatch_processor.config_load import parse_config
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.patterns import compile_config

from tests.profiles import examples
from tests.unit import pattern_reference as ref

SETTINGS = settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = ["eventName", "a", "b", "c"]
ALPHABET = 'aAbB*\\"\n é/'
words = st.one_of(
    st.sampled_from(["", "a", "ab", "A", "aB", "ConsoleLogin", "b*a", 'q"', "x\\y", "é", "10.0.0.7", "::1"]),
    st.text(alphabet=ALPHABET, max_size=5),
)
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.0, -2.0, 2.5]))
scalars = st.one_of(words, numbers, st.booleans(), st.none())


def _record_values(max_leaves: int = 12) -> st.SearchStrategy:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
        ),
        max_leaves=max_leaves,
    )


records = st.dictionaries(st.sampled_from(KEYS), _record_values(), min_size=2, max_size=4)


def _escape_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


wildcards = (
    st.lists(st.text(alphabet="aAb\\*é", max_size=3), min_size=1, max_size=4)
    .filter(lambda parts: all(parts[1:-1]))  # an empty middle part would make "**"
    .map(lambda parts: "*".join(_escape_literal(p) for p in parts))
)

string_filter = st.one_of(
    st.builds(lambda s: {"prefix": s}, words),
    st.builds(lambda s: {"suffix": s}, words),
    st.builds(lambda s: {"prefix": {"equals-ignore-case": s}}, words),
    st.builds(lambda s: {"suffix": {"equals-ignore-case": s}}, words),
    st.builds(lambda s: {"equals-ignore-case": s}, words),
    st.builds(lambda s: {"wildcard": s}, wildcards),
)

anything_but = st.one_of(
    st.builds(lambda s: {"anything-but": s}, st.one_of(words, numbers)),
    st.builds(lambda xs: {"anything-but": xs}, st.lists(words, min_size=1, max_size=3)),
    st.builds(lambda xs: {"anything-but": xs}, st.lists(numbers, min_size=1, max_size=3)),
    st.builds(
        lambda f: {"anything-but": f},
        # EventBridge rejects an empty anything-but prefix/suffix
        string_filter.filter(
            lambda f: next(iter(f.values())) not in ("", {}) and not isinstance(next(iter(f.values())), dict)
        ),
    ),
    st.builds(
        lambda xs: {"anything-but": {"prefix": xs}}, st.lists(words.filter(bool), min_size=1, max_size=2)
    ),
)

numeric = st.one_of(
    st.builds(lambda op, n: {"numeric": [op, n]}, st.sampled_from(["<", "<=", "=", ">", ">="]), numbers),
    st.builds(
        lambda lo, a, hi, b: {"numeric": [lo, a, hi, b]},
        st.sampled_from([">", ">="]),
        numbers,
        st.sampled_from(["<", "<="]),
        numbers,
    ),
)

filters = st.one_of(
    scalars,
    string_filter,
    anything_but,
    numeric,
    st.builds(lambda b: {"exists": b}, st.booleans()),
    st.sampled_from(
        [{"cidr": "10.0.0.0/24"}, {"cidr": "::/64"}, {"cidr": "10.0.0.7/32"}, {"cidr": "10.0.0.7/24"}]
    ),
)
leaves = st.lists(filters, min_size=1, max_size=3)


def _pattern(depth: int) -> st.SearchStrategy:
    values = leaves if depth <= 0 else st.one_of(leaves, leaves, st.deferred(lambda: _pattern(depth - 1)))
    base = st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=2)
    if depth <= 0:
        return base
    ors = st.lists(st.deferred(lambda: _pattern(depth - 1)), min_size=2, max_size=2)
    return st.one_of(base, base, st.builds(lambda b, o: {**b, "$or": o}, base, ors))


patterns = _pattern(2)
rule_specs = st.lists(st.tuples(patterns, st.lists(patterns, max_size=2)), min_size=1, max_size=4)


def _config(specs: list) -> dict:
    return {"rules": [{"id": f"r{i}", "pattern": p, "exclude": ex} for i, (p, ex) in enumerate(specs)]}


def _unescape_wildcard(text: str, fill: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            out.append(text[i + 1])
            i += 2
        else:
            out.append(fill if text[i] == "*" else text[i])
            i += 1
    return "".join(out)


def _value_for(draw: st.DrawFn, flt: object) -> object:
    """A value likely (not certainly) to satisfy one filter; exists:false yields the ABSENT marker."""
    if not isinstance(flt, dict):
        return flt
    ((name, arg),) = flt.items()
    if isinstance(arg, dict) and name in ("prefix", "suffix"):
        text = arg["equals-ignore-case"].swapcase()
        return text + "z" if name == "prefix" else "z" + text
    if name == "prefix":
        return arg + draw(words)
    if name == "suffix":
        return draw(words) + arg
    if name == "equals-ignore-case":
        return arg.swapcase()
    if name == "wildcard":
        return _unescape_wildcard(arg, draw(st.sampled_from(["", "q", "*a"])))
    if name == "numeric":
        if len(arg) == 4:
            return (arg[1] + arg[3]) / 2
        return arg[1] + {"<": -1, ">": 1}.get(arg[0], 0) + draw(st.sampled_from([0, 0, 0.5, -0.5]))
    if name == "cidr":
        return draw(st.sampled_from(["10.0.0.7", "::5", "10.0.1.1"]))
    if name == "exists":
        return draw(words) if arg else ABSENT
    return draw(scalars)  # anything-but: any value, often allowed


ABSENT = object()


@st.composite
def witness(draw: st.DrawFn, pattern: dict, top: bool = True) -> dict:
    """A record built to satisfy the pattern (mostly), then randomly perturbed into near misses."""
    record: dict = {}
    for key, sub in pattern.items():
        if key == "$or":
            for k, v in draw(witness(draw(st.sampled_from(sub)), top=False)).items():
                record.setdefault(k, v)
            continue
        if isinstance(sub, list):
            value = _value_for(draw, draw(st.sampled_from(sub)))
            if value is ABSENT:
                continue
            if draw(st.booleans()):
                value = [draw(scalars), value]
        else:
            value = draw(witness(sub, top=False))
            if draw(st.booleans()):
                value = [value, draw(witness(sub, top=False))]
        record[key] = value
    if top and record and draw(st.integers(0, 5)) == 0:
        record.pop(draw(st.sampled_from(sorted(record))))
    return record


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), specs=rule_specs)
def test_matcher_agrees_with_reference_on_witness_records(data: st.DataObject, specs: list) -> None:
    """Records built from the rules' own patterns, so that matches (and near misses) are common."""
    matcher = compile_config(validate_config(_config(specs)))
    for pattern, _ in specs:
        record = data.draw(witness(pattern))
        expected = [f"r{i}" for i, (p, ex) in enumerate(specs) if ref.rule_matches(p, ex, record)]
        assert [r.id for r in matcher.match(record)] == expected
        if expected and matcher.literals is not None:
            assert ref.literal_hit(matcher.literals, record), (matcher.literals, record)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=rule_specs, recs=st.lists(records, min_size=1, max_size=6))
def test_matcher_agrees_with_reference_and_literals_are_sound(specs: list, recs: list) -> None:
    matcher = compile_config(validate_config(_config(specs)))
    for record in recs:
        expected = [f"r{i}" for i, (p, ex) in enumerate(specs) if ref.rule_matches(p, ex, record)]
        assert [r.id for r in matcher.match(record)] == expected
        if expected and matcher.literals is not None:
            assert ref.literal_hit(matcher.literals, record), (matcher.literals, record)


# Literal-only patterns always yield literals, so the soundness check above cannot silently be vacuous there.
literal_patterns = st.dictionaries(
    st.sampled_from(KEYS),
    st.lists(
        st.one_of(
            words,
            st.builds(lambda s: {"prefix": s}, words),
            st.builds(lambda s: {"suffix": s}, words),
            st.builds(lambda s: {"wildcard": s}, wildcards),
        ),
        min_size=1,
        max_size=3,
    ),
    min_size=1,
    max_size=2,
)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=literal_patterns, recs=st.lists(records, min_size=1, max_size=8))
def test_literals_sound_for_literal_patterns(pattern: dict, recs: list) -> None:
    matcher = compile_config(validate_config({"rules": [{"id": "r", "pattern": pattern}]}))
    assert matcher.literals is not None
    for record in recs:
        if matcher.match(record):
            assert ref.literal_hit(matcher.literals, record)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(
                st.sampled_from(["id", "pattern", "rules", "prefix", "exists", "$or"]), st.text(max_size=3)
            ),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=15,
)
shaped = st.one_of(
    json_values,
    st.builds(lambda p: {"rules": [{"id": "x", "pattern": p}]}, json_values),
    st.builds(lambda p: {"rules": [{"id": "x", "pattern": {"f": p}}]}, json_values),
    st.builds(lambda p: {"rules": [{"id": "x", "pattern": {"f": [p]}}]}, json_values),
    st.builds(lambda p: {"rules": [{"id": "x", "pattern": {"f": [{"anything-but": p}]}}]}, json_values),
    st.builds(lambda p: {"rules": [{"id": "x", "pattern": {"f": [{"numeric": p}]}}]}, json_values),
    st.builds(lambda p: {"rules": [p]}, json_values),
)


@SETTINGS
@given(raw=shaped)
def test_validator_raises_only_config_error(raw: object) -> None:
    try:
        config = validate_config(raw)
    except ConfigError as exc:
        assert exc.errors and all(": " in e for e in exc.errors)
        return
    compile_config(config).match({"f": 1})
    # what validated also round-trips through its normalised form and its JSON text
    assert parse_config(json.dumps(config.raw)).rules == config.rules


@SETTINGS
@given(text=st.text(max_size=40))
def test_parse_config_raises_only_config_error_on_text(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError:
        pass


def test_wildcard_with_many_stars_on_long_strings_is_fast() -> None:
    star_pattern = "*" + "a*" * 200 + "b"
    matcher = compile_config(
        validate_config({"rules": [{"id": "w", "pattern": {"f": [{"wildcard": star_pattern}]}}]})
    )
    long_miss = {"f": "a" * 200_000}
    long_hit = {"f": "a" * 200_000 + "b"}
    started = time.perf_counter()
    assert matcher.match(long_miss) == []
    assert [r.id for r in matcher.match(long_hit)] == ["w"]
    assert time.perf_counter() - started < 2.0


@settings(max_examples=examples(300), deadline=None)
@given(
    wildcard=st.lists(st.text(alphabet="ab*\\", max_size=3), min_size=1, max_size=6)
    .filter(lambda parts: all(parts[1:-1]))
    .map(lambda parts: "*".join(_escape_literal(p) for p in parts)),
    value=st.text(alphabet="ab*\\", max_size=12),
)
def test_wildcard_agrees_with_reference_regex(wildcard: str, value: str) -> None:
    pattern = {"f": [{"wildcard": wildcard}]}
    matcher = compile_config(validate_config({"rules": [{"id": "w", "pattern": pattern}]}))
    assert bool(matcher.match({"f": value})) == ref.leaf_matches(pattern["f"], value)
