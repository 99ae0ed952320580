"""A reduced run of every scenario of the proof (load, faults, bad input) on one LocalAWS with the deployed
stack. Each scenario must end with every expected event stored once and alerted once, and every bad input
must have its documented outcome (the `documented` column of `BadInput`).

Reduced: the load is 2 % of the full one, and the retry clock is shorter where no scenario depends on its
length (`REDUCED_TIMING`). The full run (`python bench/proof.py`) keeps the proof's own timing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import proof_scenarios as proof

pytestmark = [pytest.mark.e2e, pytest.mark.proof]  # its own tier: `pytest -m proof`

LOAD_SCALE = 0.02  # 10 files x 50 records


# Function timeout 3 s (the slowest invocation of a reduced run takes ~1.5 s), visibility 5 s (a crashed
# invocation's claims, taken < 1 s into it, are older than the 4 s staleness when its message comes back),
# config TTL 2 s. dynamodb-throttling keeps the proof's 6 s / 8 s: botocore's throttling backoff inside the
# function needs it. The DLQ scenarios cycle their messages every 3 s (their failures end at once).
REDUCED_TIMING = proof.Timing(
    function_timeout=3,
    visibility_timeout=5,
    claim_stale_seconds=4,
    config_ttl=2.0,
    throttling_timeout=proof.FUNCTION_TIMEOUT,
    throttling_visibility=proof.VISIBILITY_TIMEOUT,
    dlq_visibility=3,
)


@pytest.fixture(scope="module")
def harness() -> Iterator[object]:
    h = proof.Harness(timing=REDUCED_TIMING)
    try:
        yield h
    finally:
        h.close()


@pytest.mark.parametrize("name", list(proof.SCENARIOS))
def test_scenario_loses_and_duplicates_nothing(harness, name: str) -> None:
    row = proof.SCENARIOS[name](harness, LOAD_SCALE)
    assert row.events > 0, f"{name}: the scenario expected no events, so it proves nothing"
    assert (row.lost, row.duplicated, row.unexpected, row.failures) == (0, 0, 0, []), proof.format_row(row)
    assert row.stored == row.alerted == row.events


def test_bad_inputs_behave_as_documented(harness) -> None:
    outcomes = {o.name: o for o in harness.outcomes}
    if not outcomes:
        harness_row = proof.scenario_bad_input(harness, LOAD_SCALE)
        assert harness_row.ok, proof.format_row(harness_row)
        outcomes = {o.name: o for o in harness.outcomes}
    wrong = {n: (o.documented, o.observed) for n, o in outcomes.items() if not o.ok}
    assert not wrong
    documented = {o.name: o.documented for o in outcomes.values()}
    assert documented["s3:TestEvent"] == "acknowledged"
    assert documented["zero-byte object"] == "dlq"
    assert documented["JSON nested 100,000 deep"] == "processed"


def test_summary_line_format() -> None:
    rows = [proof.Row("a", lost=1, duplicated=0), proof.Row("b", lost=2, duplicated=3)]
    assert proof.summary(rows) == "scenarios=2 lost=3 duplicated=3"
    assert not rows[0].ok and proof.Row("c", events=1, stored=1, alerted=1).ok


def test_scenarios_write_distinct_log_keys() -> None:
    """Each scenario's fixed log keys are its own: `count` selects a scenario's items and alerts by key, so
    a key shared with an earlier scenario counts that scenario's events as unexpected (overwritten-object
    once reused object-overwritten's OVERWRITTEN1: unexpected=3 in a run of both)."""
    import ast
    import inspect

    owners: dict[str, set[str]] = {}
    for fn in ast.walk(ast.parse(inspect.getsource(proof))):
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            fixed = isinstance(node, ast.keyword) and isinstance(node.value, ast.Constant)
            if fixed and node.arg == "unique":
                owners.setdefault(str(node.value.value), set()).add(fn.name)
    assert owners, "no fixed log key found: the check proves nothing"
    assert {k: f for k, f in owners.items() if len(f) > 1} == {}
