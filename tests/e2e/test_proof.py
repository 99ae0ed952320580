"""Issue 7: a reduced run of every scenario of bench/proof.py (load, faults, bad input) on one LocalAWS with
the deployed stack. Each scenario must end with every expected event stored once and alerted once, and
every bad input doing what docs/proof.md documents. The config scenario waits out the function's config
cache TTL (60 s): it is the slow one, on purpose (a shorter TTL would not be the deployed behaviour)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

LOAD_SCALE = 0.02  # 10 files x 50 records


def _load_proof() -> ModuleType:
    spec = importlib.util.spec_from_file_location("trailwatch_bench_proof", ROOT / "bench" / "proof.py")
    assert spec is not None and spec.loader is not None, "bench/proof.py is missing"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


proof = _load_proof()


@pytest.fixture(scope="module")
def harness() -> Iterator[object]:
    h = proof.Harness()
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
    assert documented["JSON nested 100,000 deep"] == "stored, then dlq"


def test_summary_line_format() -> None:
    rows = [proof.Row("a", lost=1, duplicated=0), proof.Row("b", lost=2, duplicated=3)]
    assert proof.summary(rows) == "scenarios=2 lost=3 duplicated=3"
    assert not rows[0].ok and proof.Row("c", events=1, stored=1, alerted=1).ok
