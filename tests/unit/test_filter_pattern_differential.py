"""Generated filter patterns: the translated EventBridge pattern, run by the processor's matcher, agrees on
the shared real records with a direct reading of the CloudWatch semantics documented in filter_pattern.py.

The generator builds the pattern text and, independently of the parser, a Python predicate for it. Records
where a selected path crosses an array or ends on an object or array are left out of the comparison: there
EventBridge (which flattens arrays) and CloudWatch (which indexes them) are documented to differ. Each
match is also checked against the reader's literal skip (``Matcher.literals``).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

import pytest
from trailwatch_processor.config import ConfigError
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.patterns import compile_config

from tests.unit import pattern_reference as ref

UNDEFINED = object()  # the path crosses an array or ends on an object/array: out of scope
MISSING = object()
Pred = Callable[[dict], object]  # True/False, or UNDEFINED

PATHS = [
    "eventName",
    "eventSource",
    "errorCode",
    "eventType",
    "sourceIPAddress",
    "readOnly",
    "eventVersion",
    "userIdentity.type",
    "userIdentity.invokedBy",
    "additionalEventData.MFAUsed",
    "responseElements.ConsoleLogin",
    "apiVersion",
]


def resolve(record: dict, path: str) -> object:
    node: object = record
    for key in path.split("."):
        if isinstance(node, list):
            return UNDEFINED
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return UNDEFINED if isinstance(node, (dict, list)) else node


def _glob(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def condition(rng: random.Random, values: dict[str, list[object]]) -> tuple[str, str, Pred]:
    """(path, text, predicate) of one random condition."""
    path = rng.choice(PATHS)
    seen = values.get(path) or ["x"]
    kind = rng.choice(["eq", "eq", "ne", "wild", "nwild", "null", "notexists", "any", "num", "bool"])
    sel = f"$.{path}"

    def on(test: Callable[[object], bool]) -> Pred:
        def pred(record: dict) -> object:
            v = resolve(record, path)
            return v if v is UNDEFINED else test(v)

        return pred

    if kind == "null":
        return path, f"{sel} IS NULL", on(lambda v: v is None)
    if kind == "notexists":
        return path, f"{sel} NOT EXISTS", on(lambda v: v is MISSING)
    if kind == "any":
        return path, f"{sel} = *", on(lambda v: v is not MISSING)
    if kind == "bool":
        want = rng.choice([True, False])
        return path, f"{sel} IS {'TRUE' if want else 'FALSE'}", on(lambda v: v is want)
    if kind == "num":
        op = rng.choice(["=", "!=", "<", ">", "<=", ">="])
        n = rng.choice([0, 1, 2, 1.5])
        compare = {
            "=": lambda v: v == n,
            "<": lambda v: v < n,
            ">": lambda v: v > n,
            "<=": lambda v: v <= n,
            ">=": lambda v: v >= n,
        }
        if op == "!=":
            return path, f"{sel} != {n}", on(lambda v: v is not MISSING and not (_is_number(v) and v == n))
        return path, f"{sel} {op} {n}", on(lambda v: _is_number(v) and compare[op](v))
    value = str(rng.choice([v for v in seen if isinstance(v, str)] or ["x"]))
    if '"' in value or "\\" in value or "**" in value:
        value = "x"
    if kind in ("wild", "nwild") and len(value) > 2:
        cut = rng.randrange(1, len(value) - 1)
        value = rng.choice([value[:cut] + "*", "*" + value[cut:], value[:cut] + "*" + value[cut + 1 :]])
    text = f'"{value}"'
    if "*" in value:
        rx = _glob(value)

        def hit(v: object) -> bool:
            return isinstance(v, str) and rx.fullmatch(v) is not None
    else:

        def hit(v: object) -> bool:
            return isinstance(v, str) and v == value

    if kind in ("ne", "nwild"):
        if value == "*":
            value, text = "x", '"x"'
        return path, f"{sel} != {text}", on(lambda v: v is not MISSING and not hit(v))
    return path, f"{sel} = {text}", on(hit)


def expression(rng: random.Random, values: dict, depth: int) -> tuple[str, Pred]:
    if depth == 0 or rng.random() < 0.35:
        _, text, pred = condition(rng, values)
        return text, pred
    joiner = rng.choice(["&&", "||"])
    parts = [expression(rng, values, depth - 1) for _ in range(rng.randint(2, 3))]
    text = f" {joiner} ".join(f"({t})" for t, _ in parts)
    preds = [p for _, p in parts]

    def pred(record: dict) -> object:
        results = [p(record) for p in preds]
        if any(r is UNDEFINED for r in results):
            return UNDEFINED
        return all(results) if joiner == "&&" else any(results)

    return text, pred


@pytest.fixture(scope="module")
def values(shared_records: list[dict]) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for record in shared_records:
        for path in PATHS:
            v = resolve(record, path)
            if v is not MISSING and v is not UNDEFINED:
                out.setdefault(path, [])
                if v not in out[path] and len(out[path]) < 30:
                    out[path].append(v)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_translated_patterns_agree_with_the_documented_semantics(
    seed: int, values: dict, shared_records: list[dict]
) -> None:
    rng = random.Random(seed)
    checked = 0
    for _ in range(10):
        text, pred = expression(rng, values, depth=2)
        pattern = "{ " + text + " }"
        try:
            config = validate_config({"rules": [{"id": "r", "filter_pattern": pattern}]})
        except ConfigError as exc:  # refusals must give a documented reason, never a crash
            assert any(
                reason in str(exc)
                for reason in ("on one field", "both a value and an object", "alternatives", "longer than")
            ), (pattern, str(exc))
            continue
        matcher = compile_config(config)
        for index, record in enumerate(shared_records):
            want = pred(record)
            if want is UNDEFINED:
                continue
            got = bool(matcher.match(record))
            assert got == want, f"{pattern} on record {index}: {json.dumps(record)[:300]}"
            if got and matcher.literals is not None:  # the reader's skip must never drop a match
                assert ref.literal_hit(matcher.literals, record), (pattern, matcher.literals)
            checked += 1
    assert checked > 0
