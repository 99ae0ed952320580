"""Shared fixtures. Suite-specific fixtures live in the suite's own conftest.py."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _aws_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real AWS account: fake credentials, a fixed region, no profile."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture(scope="session", autouse=True)
def _shared_botocore_loader() -> Iterator[None]:
    """One botocore data loader for every session the tests (and the CLI, the local AWS) create.

    A new boto3 Session starts with an empty loader and parses each service's JSON model again: ~150 ms of
    CPU per client, paid by every test that builds its own session. The parsed models are read-only data, so
    sharing them changes nothing a test observes; it only makes creating a client cost ~20 ms.
    """
    shared = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", shared)
        yield


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
