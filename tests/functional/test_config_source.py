"""ConfigCache on moto: missing, invalid, changed, cached, conditional GET, errors; the operational alert."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from botocore.exceptions import ClientError
from trailwatch_processor.config_source import ConfigCache, default_matcher
from trailwatch_processor.handler import handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, CONFIG_KEY, Env

GOOD = {"monitored_events": ["CreateUser"]}
OTHER = {"monitored_events": ["DeleteTrail", "StopLogging"]}
INVALID = '{"rules": [{"id": 5}]'  # not even JSON


class CountingS3:
    """Wraps the S3 client and records each GetObject's arguments."""

    def __init__(self, s3: Any, error: str | None = None) -> None:
        self.s3, self.error, self.gets = s3, error, []

    def get_object(self, **kwargs: Any) -> Any:
        self.gets.append(kwargs)
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "no"}}, "GetObject")
        return self.s3.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)


def _ids(cache: ConfigCache) -> list[str]:
    return [rule.id for rule in cache.matcher().rules]


@pytest.fixture
def s3(env: Env) -> CountingS3:
    return CountingS3(env.clients.s3)


@pytest.fixture
def reported() -> list[Exception]:
    return []


@pytest.fixture
def cache(env: Env, s3: CountingS3, reported: list) -> ConfigCache:
    return ConfigCache(
        s3, BUCKET, CONFIG_KEY, ttl=60.0, clock=env.clock.monotonic, on_invalid=reported.append
    )


def test_missing_config_is_the_default_with_a_warning(
    cache: ConfigCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    assert cache.matcher() is default_matcher()
    assert any("not found" in r.getMessage() and "bundled default" in r.getMessage() for r in caplog.records)
    assert cache.source == "default"


def test_cached_within_ttl_and_conditional_get_after(env: Env, cache: ConfigCache, s3: CountingS3) -> None:
    env.put_config(GOOD)
    first = cache.matcher()
    assert [r.id for r in first.rules] == ["CreateUser"] and len(s3.gets) == 1
    env.clock.advance(59)
    assert cache.matcher() is first and len(s3.gets) == 1  # cached: no S3 call
    env.clock.advance(2)
    assert cache.matcher() is first and len(s3.gets) == 2  # re-checked: 304, same matcher
    assert s3.gets[1]["IfNoneMatch"] == env.clients.s3.head_object(Bucket=BUCKET, Key=CONFIG_KEY)["ETag"]


def test_changed_config_is_picked_up_after_the_ttl(env: Env, cache: ConfigCache) -> None:
    env.put_config(GOOD)
    assert _ids(cache) == ["CreateUser"]
    env.put_config(OTHER)
    assert _ids(cache) == ["CreateUser"]  # still cached
    env.clock.advance(61)
    assert _ids(cache) == ["DeleteTrail", "StopLogging"]


@pytest.mark.parametrize("bad", [INVALID, json.dumps({"rules": "nope"}), json.dumps(42)])
def test_invalid_on_cold_start_is_the_default_and_reported_once(
    env: Env, cache: ConfigCache, reported: list, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    env.put_config(bad)
    assert cache.matcher() is default_matcher()
    assert len(reported) == 1 and "invalid" in cache.source
    assert any(r.levelno == logging.ERROR and "invalid" in r.getMessage() for r in caplog.records)
    for _ in range(3):
        env.clock.advance(61)
        assert cache.matcher() is default_matcher()
    assert len(reported) == 1  # one report per bad ETag


def test_invalid_after_good_keeps_the_last_good(env: Env, cache: ConfigCache, reported: list) -> None:
    env.put_config(GOOD)
    good = cache.matcher()
    env.put_config(INVALID)
    env.clock.advance(61)
    assert cache.matcher() is good and len(reported) == 1
    env.put_config(INVALID + " ")  # another bad version: reported again
    env.clock.advance(61)
    assert cache.matcher() is good and len(reported) == 2
    env.put_config(OTHER)  # fixed
    env.clock.advance(61)
    assert _ids(cache) == ["DeleteTrail", "StopLogging"]


def test_deleted_config_falls_back_to_the_default(env: Env, cache: ConfigCache) -> None:
    env.put_config(GOOD)
    assert _ids(cache) == ["CreateUser"]
    env.clients.s3.delete_object(Bucket=BUCKET, Key=CONFIG_KEY)
    env.clock.advance(61)
    assert cache.matcher() is default_matcher()


def test_failed_report_is_retried_at_the_next_check(env: Env, s3: CountingS3) -> None:
    calls: list[Exception] = []

    def flaky(err: Exception) -> None:
        calls.append(err)
        if len(calls) == 1:
            raise RuntimeError("SNS down")

    cache = ConfigCache(s3, BUCKET, CONFIG_KEY, clock=env.clock.monotonic, on_invalid=flaky)
    env.put_config(INVALID)
    cache.matcher()
    env.clock.advance(61)
    cache.matcher()
    env.clock.advance(61)
    cache.matcher()
    assert len(calls) == 2


def test_read_error_on_cold_start_raises_and_later_keeps_the_last_good(env: Env) -> None:
    denied = CountingS3(env.clients.s3, error="AccessDenied")
    cache = ConfigCache(denied, BUCKET, CONFIG_KEY, clock=env.clock.monotonic)
    with pytest.raises(ClientError):
        cache.matcher()
    env.put_config(GOOD)
    denied.error = None
    good = cache.matcher()
    denied.error = "SlowDown"
    env.clock.advance(61)
    assert cache.matcher() is good


def test_invalid_config_sends_one_operational_alert_through_the_handler(env: Env, deps: Any) -> None:
    env.put_config(INVALID)
    key = env.put_log([f.record("CreateUser"), f.root_login()])
    batch = f.sqs_event(f.s3_notification(BUCKET, key))
    for _ in range(3):
        assert handle_batch(batch, deps)["batchItemFailures"] == []
        env.clock.advance(61)
    operational = [a for a in env.alerts() if a["rule"] == "trailwatch-operational"]
    assert len(operational) == 1
    assert f"s3://{BUCKET}/{CONFIG_KEY}" == operational[0]["source"]
    # The bundled default kept matching meanwhile: the events were alerted under it, once.
    others = [a for a in env.alerts() if a["rule"] != "trailwatch-operational"]
    assert others and sum(a["count"] for a in others) == len(env.items())
