"""Shared fixtures. Suite-specific fixtures live in the suite's own conftest.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_CLOUDTRAIL = Path(
    os.environ.get("TRAILWATCH_SHARED_DATA", ROOT.parent / "shared" / "data" / "cloudtrail")
)


@pytest.fixture(autouse=True)
def _aws_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real AWS account: fake credentials, a fixed region, no profile."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def shared_cloudtrail_files() -> list[Path]:
    """The real CloudTrail files in ../shared/data/cloudtrail. Fails loudly (never skips) when missing."""
    files = sorted(SHARED_CLOUDTRAIL.glob("*.json"))
    if not files:
        pytest.fail(
            f"no CloudTrail data at {SHARED_CLOUDTRAIL}: these tests need ../shared/data/cloudtrail "
            "beside the checkout (or TRAILWATCH_SHARED_DATA pointing at it)"
        )
    return files


@pytest.fixture(scope="session")
def shared_records() -> list[dict]:
    """Every record of every shared CloudTrail file, unchanged."""
    out: list[dict] = []
    for path in shared_cloudtrail_files():
        for record in json.loads(path.read_text())["Records"]:
            out.append(record)
    return out


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
