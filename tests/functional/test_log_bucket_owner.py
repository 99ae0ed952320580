"""Attach mode: log reads expect the existing bucket's owner (LOG_BUCKET_OWNER), config reads still ours."""

from __future__ import annotations

import pytest
from trailwatch_processor.handler import build_deps

from tests.functional.conftest import Env

OWNER = "210987654321"
HERE = "123456789012"


def test_log_reads_expect_the_existing_bucket_owner(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_BUCKET_OWNER", OWNER)
    deps = build_deps(env.settings, env.clients, bucket_owner=HERE)
    assert deps.bucket_owner == OWNER
    assert deps.config.expected_owner == HERE


def test_created_trail_mode_expects_this_account(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_BUCKET_OWNER", raising=False)
    assert build_deps(env.settings, env.clients, bucket_owner=HERE).bucket_owner == HERE
