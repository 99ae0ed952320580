"""Shared fixtures. Suite-specific fixtures live in the suite's own conftest.py."""

from __future__ import annotations

import functools
import gc
import json
from pathlib import Path

import botocore.loaders
import botocore.session
import pytest
from hypothesis import settings

from tests import profiles

# `dev` unless the command line names another profile (the Hypothesis plugin loads --hypothesis-profile
# after this file, so `pytest --hypothesis-profile=ci` wins).
settings.load_profile(profiles.DEV)

ROOT = Path(__file__).resolve().parent.parent
# Real CloudTrail records from public projects, vendored with their licenses (see SOURCES.md there).
SHARED_CLOUDTRAIL = ROOT / "tests" / "data" / "cloudtrail"


def set_test_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real AWS account: fake credentials, a fixed region, no profile."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture(autouse=True)
def _aws_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    set_test_aws_environment(monkeypatch)


# -- process-wide settings of the run, installed at configure so that collection's imports get them too ----
_undo = pytest.MonkeyPatch()
_gc_thresholds: list[tuple[int, int, int]] = []

# The run's heap holds ~1 M container objects that live to its end (botocore's service models, parsed into
# OrderedDicts; moto's and the product's modules). With the default thresholds (700, 10, 10) a full
# collection walks all of them after every few thousand allocations: a third of a functional test's time
# went to the garbage collector. Fewer, larger collections; and what survives each test file is frozen.
GC_THRESHOLDS = (5000, 20, 50)


def pytest_configure(config: pytest.Config) -> None:
    # One botocore data loader for every session the tests (and the CLI, the local AWS, moto's module-level
    # sessions) create. A new boto3 Session starts with an empty loader and parses each service's JSON model
    # again: ~150 ms of CPU per client, paid by every test that builds its own session, and ~0.5 s of
    # collection (moto parses endpoints.json three times at import). The parsed models are read-only data, so
    # sharing them changes nothing a test observes; it only makes creating a client cost a few ms.
    shared = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)
    _undo.setattr(botocore.session, "create_loader", shared)
    _gc_thresholds.append(gc.get_threshold())
    gc.set_threshold(*GC_THRESHOLDS)


def pytest_unconfigure(config: pytest.Config) -> None:
    _undo.undo()
    if _gc_thresholds:
        gc.set_threshold(*_gc_thresholds.pop())
    # Nothing is unfrozen: pytest's last full collection (unraisable exceptions) comes after this hook, and
    # would walk the whole heap again for a process that is about to exit.


def pytest_collection_finish(session: pytest.Session) -> None:
    _collect_and_freeze()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last test of a file, once its module fixtures are torn down, freeze what a full collection
    leaves alive (imports, parsed models, caches): later collections walk only what later tests create."""
    if nextitem is None or nextitem.path != item.path:
        _collect_and_freeze()


def _collect_and_freeze() -> None:
    gc.collect()
    gc.freeze()


def shared_cloudtrail_files() -> list[Path]:
    """The vendored real CloudTrail files. Fails loudly (never skips) when missing."""
    files = sorted(SHARED_CLOUDTRAIL.glob("*.json"))
    if not files:
        pytest.fail(f"no CloudTrail data at {SHARED_CLOUDTRAIL}: the vendored records are missing")
    return files


@pytest.fixture(scope="session")
def shared_records() -> list[dict]:
    """Every record of every vendored CloudTrail file, unchanged."""
    out: list[dict] = []
    for path in shared_cloudtrail_files():
        for record in json.loads(path.read_text())["Records"]:
            out.append(record)
    return out


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
