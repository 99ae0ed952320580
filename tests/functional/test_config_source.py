"""ConfigCache on moto: missing, invalid, changed, cached, conditional GET, errors; the operational alert."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from trailwatch_processor import markers
from trailwatch_processor.config_source import ConfigCache, default_matcher
from trailwatch_processor.deps import Deps
from trailwatch_processor.handler import build_deps, handle_batch

from tests.functional import factories as f
from tests.functional.conftest import BUCKET, CONFIG_KEY, TABLE, Env

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


@pytest.mark.parametrize(("answer", "calls"), [(None, 1), (True, 1), (False, 3)])
def test_a_report_answering_false_is_asked_again_at_each_check(
    env: Env, s3: CountingS3, answer: bool | None, calls: int
) -> None:
    asked: list[str | None] = []

    def report(err: Exception) -> bool | None:
        asked.append(cache.etag)
        return answer

    cache = ConfigCache(s3, BUCKET, CONFIG_KEY, clock=env.clock.monotonic, on_invalid=report)
    env.put_config(INVALID)
    for _ in range(3):
        assert cache.matcher() is default_matcher()
        env.clock.advance(61)
    etag = env.clients.s3.head_object(Bucket=BUCKET, Key=CONFIG_KEY)["ETag"]
    assert asked == [etag] * calls  # the bad version's ETag is readable during the call


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
    events, markers = _events_and_markers(env)
    assert others and sum(a["count"] for a in others) == len(events)
    assert [m["alert_status"] for m in markers.values()] == ["sent"]


# --- one operational alert overall, however many containers read the bad config -------------------------


def _events_and_markers(env: Env) -> tuple[dict[str, dict], dict[str, dict]]:
    items = env.items()
    markers = {k: v for k, v in items.items() if v.get("kind") == markers.OPERATIONAL}
    return {k: v for k, v in items.items() if k not in markers}, markers


def _operational(env: Env) -> list[dict]:
    return [a for a in env.alerts() if a["rule"] == "trailwatch-operational"]


class FlakySns:
    """The SNS client, with the first ``failures`` Publish calls failing like an SNS outage."""

    def __init__(self, sns: Any, failures: int) -> None:
        self.sns, self.failures = sns, failures

    def publish(self, **kwargs: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "InternalError", "Message": "SNS down"}}, "Publish")
        return self.sns.publish(**kwargs)


@pytest.fixture
def container(env: Env) -> Any:
    """A factory of Lambda containers: each its own Deps and ConfigCache, as build_deps makes them."""

    def make() -> Deps:
        deps = build_deps(env.settings, env.clients)
        deps.config.clock = env.clock.monotonic
        deps.now = env.clock.now
        deps.claim_stale_seconds = 300.0
        return deps

    return make


def test_containers_seeing_the_same_bad_etag_send_one_alert(env: Env, container: Any) -> None:
    a, b = container(), container()
    env.put_config(INVALID)
    for _ in range(3):  # every container checks, several times
        assert a.config.matcher() is default_matcher() and b.config.matcher() is default_matcher()
        env.clock.advance(61)
    [alert] = _operational(env)
    assert alert["source"] == f"s3://{BUCKET}/{CONFIG_KEY}" and alert["severity"] == "high"
    etag = env.clients.s3.head_object(Bucket=BUCKET, Key=CONFIG_KEY)["ETag"]
    assert a.config.etag == b.config.etag == etag
    _, markers = _events_and_markers(env)
    [(marker_id, marker)] = markers.items()
    assert marker_id == markers.config_invalid_marker_id(BUCKET, CONFIG_KEY, etag)
    assert marker["alert_status"] == "sent" and marker["config_etag"] == etag
    assert "invalid JSON" in marker["error"]
    # Out of both indexes (no event_day, rule_id or event_time), and it expires like the events.
    assert not {"event_day", "rule_id", "event_time"} & set(marker)
    stored = datetime.fromisoformat(marker["stored_at"])
    assert marker["expires_at"] == int((stored + timedelta(days=env.settings.retention_days)).timestamp())


def test_a_new_bad_etag_sends_another_alert(env: Env, container: Any) -> None:
    a, b = container(), container()
    env.put_config(INVALID)
    a.config.matcher(), b.config.matcher()
    env.put_config(INVALID + " ")  # another bad version
    env.clock.advance(61)
    a.config.matcher(), b.config.matcher()
    env.clock.advance(61)
    a.config.matcher(), b.config.matcher()
    assert len(_operational(env)) == 2
    assert len(_events_and_markers(env)[1]) == 2


@pytest.mark.parametrize("retried_by", ["same container", "other container"])
def test_failed_publish_is_retried_and_sent_once(
    env: Env, container: Any, retried_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = container(), container()
    a.sns = FlakySns(env.clients.sns, failures=1)
    env.put_config(INVALID)
    assert a.config.matcher() is default_matcher()  # the failed report never fails the invocation
    assert _operational(env) == []
    assert any("reporting it as invalid failed" in r.getMessage() for r in caplog.records)
    [marker] = _events_and_markers(env)[1].values()
    assert marker["alert_status"] == "pending"  # released: nobody has to wait for it to go stale
    env.clock.advance(61)
    first, second = (a, b) if retried_by == "same container" else (b, a)
    first.config.matcher()
    second.config.matcher()
    env.clock.advance(61)
    a.config.matcher(), b.config.matcher()
    assert len(_operational(env)) == 1
    assert [m["alert_status"] for m in _events_and_markers(env)[1].values()] == ["sent"]


def test_a_claim_held_by_a_dead_container_is_taken_over_when_stale(env: Env, container: Any) -> None:
    env.put_config(INVALID)
    etag = env.clients.s3.head_object(Bucket=BUCKET, Key=CONFIG_KEY)["ETag"]
    dead = markers.claim_marker(
        env.clients.dynamodb,
        env.settings.events_table,
        markers.config_invalid_marker_id(BUCKET, CONFIG_KEY, etag),
        token="dead-container",
        now=env.clock.now(),
        stale_before=env.clock.now(),
        retention_days=30,
        details={},
    )
    assert dead.claimed
    b = container()
    b.config.matcher()  # claimed and fresh: not sent, but asked again at the next check
    env.clock.advance(61)
    b.config.matcher()
    assert _operational(env) == []
    env.clock.advance(300)  # now older than the stale threshold
    b.config.matcher()
    env.clock.advance(61)
    b.config.matcher()
    assert len(_operational(env)) == 1


def test_markers_stay_out_of_the_cli_events_listing(env: Env, deps: Any) -> None:
    from trailwatch import events as cli_events

    class Aws:  # what query_events uses of trailwatch.session.Aws
        def client(self, name: str) -> Any:
            return env.clients.dynamodb

    env.put_config(INVALID)
    key = env.put_log([f.record("CreateUser"), f.root_login()])
    assert handle_batch(f.sqs_event(f.s3_notification(BUCKET, key)), deps)["batchItemFailures"] == []
    stored, markers = _events_and_markers(env)
    assert len(markers) == 1 and len(stored) == 2
    listed = cli_events.query_events(
        Aws(), TABLE, since=timedelta(days=7), rule=None, min_severity=None, limit=100, now=env.clock.now()
    )
    assert sorted(i["EventId"] for i in listed) == sorted(stored)


def test_config_ttl_comes_from_the_environment() -> None:
    from trailwatch_processor.aws import Settings, SettingsError

    topic = "arn:aws:sns:us-east-1:123456789012:a"
    base = {"EVENTS_TABLE": "t", "ALERT_TOPIC_ARN": topic, "CONFIG_BUCKET": "b"}
    assert Settings.from_env(base).config_ttl_seconds == 60.0
    assert Settings.from_env(base | {"CONFIG_TTL_SECONDS": "5"}).config_ttl_seconds == 5.0
    with pytest.raises(SettingsError, match="CONFIG_TTL_SECONDS"):
        Settings.from_env(base | {"CONFIG_TTL_SECONDS": "soon"})


# --- every new config version is announced once overall, with its rule differences --------------------------


def _announcements(env: Env) -> list[dict]:
    return [a for a in _operational(env) if a["title"].startswith("trailwatch config")]


def _state(env: Env) -> markers.ConfigState | None:
    state_id = markers.config_state_id(BUCKET, CONFIG_KEY)
    return markers.get_config_state(env.clients.dynamodb, TABLE, state_id)


def _check_all(*containers: Deps) -> None:
    for deps in containers:
        deps.config.matcher()


def test_the_first_config_is_announced_once_as_in_force(env: Env, container: Any) -> None:
    a, b = container(), container()
    for _ in range(3):
        _check_all(a, b)
        env.clock.advance(61)
    [alert] = _announcements(env)
    count = len(default_matcher().rules)
    assert alert["severity"] == "info" and alert["title"] == f"trailwatch config in force: {count} rule(s)"
    state = _state(env)
    assert state is not None and state.version.startswith("default:") and len(state.digest) == count


@pytest.mark.parametrize("containers", [1, 2, 3])
def test_containers_loading_the_same_new_version_send_one_alert(
    env: Env, container: Any, containers: int
) -> None:
    env.put_config(GOOD)
    running = [container() for _ in range(containers)]
    _check_all(*running)
    env.put_config({"monitored_events": ["CreateUser", "DeleteTrail"]})  # one rule added
    env.clock.advance(61)
    for _ in range(2):
        _check_all(*running)
        env.clock.advance(61)
    first, change = _announcements(env)
    assert first["severity"] == "info"
    assert change["severity"] == "low" and change["title"] == "trailwatch config changed"
    assert "+ DeleteTrail (added)" in change["description"]
    state = _state(env)
    etag = env.clients.s3.head_object(Bucket=BUCKET, Key=CONFIG_KEY)["ETag"]
    assert state is not None and state.version == etag and state.seq == 2


def test_a_direct_put_removing_rules_is_one_high_alert_naming_them(env: Env, container: Any) -> None:
    a, b = container(), container()
    _check_all(a, b)  # the bundled default in force (no config object yet)
    env.put_config({"monitored_events": ["NoSuchEvent"]})  # a direct S3 put, no upload-config
    env.clock.advance(61)
    _check_all(a, b)
    env.clock.advance(61)
    _check_all(a, b)
    _, change = _announcements(env)
    removed = [r.id for r in default_matcher().rules]
    assert change["severity"] == "high"
    assert change["title"] == f"trailwatch config changed: {len(removed)} rule(s) removed, 0 weakened"
    for rule_id in removed:
        assert f"- {rule_id} (removed)" in change["description"]
    assert "+ NoSuchEvent (added)" in change["description"]


def test_a_deleted_config_falling_back_to_the_default_is_announced(env: Env, container: Any) -> None:
    a = container()
    env.put_config(GOOD)
    a.config.matcher()
    env.clients.s3.delete_object(Bucket=BUCKET, Key=CONFIG_KEY)
    env.clock.advance(61)
    a.config.matcher()
    env.clock.advance(61)
    a.config.matcher()  # still missing: not announced again
    _, change = _announcements(env)
    # GOOD's CreateUser rule is also in the default: same rule, not removed; the CIS rules come back.
    assert (
        change["severity"] == "low" and "+ cis-4.5-cloudtrail-config-changes (added)" in change["description"]
    )
    assert len(_announcements(env)) == 2


def test_switching_back_and_forth_is_announced_every_time(env: Env, container: Any) -> None:
    a = container()
    for config in (GOOD, OTHER, GOOD, OTHER):
        env.put_config(config)
        a.config.matcher()
        env.clock.advance(61)
    # Same bytes give the same ETag, yet each switch is a new version in force.
    assert [x["severity"] for x in _announcements(env)] == ["info", "high", "high", "high"]


def test_an_invalid_version_is_not_announced_as_loaded(env: Env, container: Any) -> None:
    a = container()
    env.put_config(GOOD)
    a.config.matcher()
    env.put_config(INVALID)
    env.clock.advance(61)
    a.config.matcher()
    assert len(_announcements(env)) == 1  # GOOD in force; the bad version has its own alert
    assert len(_operational(env)) == 2
    assert _state(env) is not None and _state(env).digest.keys() == {"CreateUser"}


def test_a_failed_announcement_is_retried_and_sent_once(env: Env, container: Any) -> None:
    a, b = container(), container()
    a.sns = FlakySns(env.clients.sns, failures=1)
    env.put_config(GOOD)
    a.config.matcher()  # the failed publish never fails the invocation
    assert _announcements(env) == []
    env.clock.advance(61)
    a.config.matcher(), b.config.matcher()
    env.clock.advance(61)
    a.config.matcher(), b.config.matcher()
    assert len(_announcements(env)) == 1
