"""Fuzz the config validator and the matcher beyond test_rules_property.py: arbitrary bytes and deeply
nested documents into parse_config (only ConfigError), arbitrary JSON records into a compiled matcher (no
exception), and generated many-star wildcard patterns against long strings (time-bounded: no backtracking
blow-up)."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trailwatch_processor.config import ConfigError
from trailwatch_processor.config_load import load_default_config, parse_config
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.patterns import compile_config

from tests.profiles import examples

FUZZ = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
json_doc = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)


@FUZZ
@given(data=st.binary(max_size=200))
def test_parse_config_on_arbitrary_bytes_raises_only_config_error(data: bytes) -> None:
    try:
        parse_config(data)
    except ConfigError as err:
        assert err.errors, "a ConfigError names at least one problem"


@FUZZ
@given(depth=st.integers(min_value=1, max_value=50_000), opener=st.sampled_from(["[", '{"a":']))
def test_deeply_nested_config_raises_only_config_error(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = '{"rules": [{"id": "d", "pattern": {"f": ' + opener * depth + "1" + closer * depth + "}}]}"
    try:
        parse_config(text)
    except ConfigError as err:
        assert err.errors


DEFAULT_MATCHER = compile_config(load_default_config())


@FUZZ
@given(record=json_doc)
def test_default_matcher_never_raises_on_arbitrary_json(record: object) -> None:
    if isinstance(record, dict):
        assert isinstance(DEFAULT_MATCHER.match(record), list)


@FUZZ
@given(record=st.dictionaries(st.sampled_from(["eventName", "userIdentity", "errorCode", "f"]), json_doc))
def test_default_matcher_never_raises_on_cloudtrail_shaped_keys(record: dict) -> None:
    json.dumps(DEFAULT_MATCHER.match(record), default=str)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.text(alphabet="ab", min_size=1, max_size=2), min_size=20, max_size=120),
    filler=st.sampled_from("ab"),
    length=st.integers(min_value=10_000, max_value=100_000),
)
def test_many_star_wildcards_on_long_strings_are_time_bounded(
    parts: list[str], filler: str, length: int
) -> None:
    pattern = "*" + "*".join(parts) + "*c"  # ends in a letter the value never has: a guaranteed miss
    try:
        config = validate_config({"rules": [{"id": "w", "pattern": {"f": [{"wildcard": pattern}]}}]})
    except ConfigError:
        return  # too many stars for the validator is an accepted answer
    matcher = compile_config(config)
    started = time.perf_counter()
    assert matcher.match({"f": filler * length}) == []
    assert time.perf_counter() - started < 1.0, f"{len(parts)} stars on {length} chars took too long"
