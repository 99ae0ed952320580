"""One S3 object -> stored events and alerts. Pure of globals: every client and clock comes in ``Deps``.

Alerting follows the item alert state (store.py). Exactly one alert per stored event, with one unavoidable
duplicate window: a crash after SNS accepted the Publish and before the items were marked ``sent``. The
claim then goes stale and the retry publishes again (at-least-once). Everything else -- redelivery,
concurrent delivery, a crash before or during Publish, a failed Publish -- ends with exactly one alert.

A message succeeds only when every event of its files is ``sent``: events claimed by another live
invocation make it fail (AlertsInFlightError) so that it comes back after the visibility timeout, by
which time that claim is either sent or stale and taken over. A failed Publish releases its claims at
once (best effort); a crashed invocation's claims go stale after the function timeout.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from . import alerts, config_diff, record_issues, records, store, tamper
from .aws import Settings
from .logfile import FileStats, iter_matches, open_log
from .notifications import KeyKind, ObjectRef, classify_key

log = logging.getLogger(__name__)

DEFAULT_CLAIM_STALE_SECONDS = 900.0  # the longest Lambda timeout
SUMMARIES_KEPT_PER_RULE = 200  # bounded memory for files with very many matches


class ObjectMissingError(Exception):
    """The notified object does not exist (deleted before processing, or a forged notification)."""


class AlertsInFlightError(Exception):
    """Some events are claimed by another live invocation: fail the message so that it comes back and
    confirms they were sent (if that invocation dies, its claim goes stale and the retry takes it over)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_token() -> str:
    return uuid.uuid4().hex


@dataclass
class Deps:
    s3: Any
    dynamodb: Any
    sns: Any
    settings: Settings
    config: Any  # ConfigCache, or anything with .matcher()
    now: Callable[[], datetime] = _utcnow
    claim_stale_seconds: float = DEFAULT_CLAIM_STALE_SECONDS
    new_token: Callable[[], str] = _new_token
    bucket_owner: str | None = None  # this account: ExpectedBucketOwner of every log GET (None: unchecked)


@dataclass
class FileResult:
    bucket: str
    key: str
    kind: str
    skipped: bool = False
    records: int = 0
    matched: int = 0
    stored: int = 0  # new items
    duplicates: int = 0  # already in the table
    alerts: int = 0  # SNS messages sent
    alerted_events: int = 0
    in_flight: int = 0  # events being alerted by another invocation
    ms: float = 0.0
    fast_path: bool = False
    record_issues: list = field(default_factory=list)  # logfile.RecordIssue: poison records isolated
    record_issue_count: int = 0

    def log_fields(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "kind": self.kind,
            "skipped": self.skipped,
            "records": self.records,
            "matched": self.matched,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "alerts": self.alerts,
            "alerted_events": self.alerted_events,
            "in_flight": self.in_flight,
            "fast_path": self.fast_path,
            "record_issues": self.record_issue_count,
            "ms": round(self.ms, 1),
        }


@dataclass
class _Group:
    """This file's events of one primary rule that may still need an alert."""

    rule_id: str
    title: str
    severity: str
    description: str | None
    event_ids: list[str] = field(default_factory=list)
    summaries: dict[str, dict[str, str]] = field(default_factory=dict)


def process_object(ref: ObjectRef, deps: Deps) -> FileResult:
    """Store and alert one log object. Raises on anything that must make the message fail (and retry)."""
    started = time.perf_counter()
    kind = classify_key(ref.key)
    result = FileResult(bucket=ref.bucket, key=ref.key, kind=kind.value)
    if ref.removed:  # a deleted log object is a tamper alert; there is nothing to read (tamper.py)
        result.skipped, result.alerts = True, tamper.report_removal(ref, deps)
        return result
    if kind is not KeyKind.LOG:
        result.skipped = True
        result.ms = (time.perf_counter() - started) * 1000
        log.info("skipped: not a CloudTrail log file (%s)", kind.value, extra={"data": result.log_fields()})
        return result

    groups: dict[str, _Group] = {}
    failure = _read_and_store(ref, deps, result, groups)
    try:
        _send_alerts(groups, ref, deps, result)  # also after a failed read: what was stored gets its alert
        record_issues.report(ref, result.record_issues, result.record_issue_count, deps)
    except Exception:
        if failure is None:
            raise
        log.exception("alerting after a failed read of s3://%s/%s also failed", ref.bucket, ref.key)
    if failure is None and result.in_flight:
        failure = AlertsInFlightError(
            f"{result.in_flight} event(s) are being alerted by another invocation; "
            "the message will be retried to confirm"
        )
    result.ms = (time.perf_counter() - started) * 1000
    if failure is not None:
        data = {**result.log_fields(), "error": type(failure).__name__, "detail": str(failure)}
        level = logging.WARNING if isinstance(failure, AlertsInFlightError) else logging.ERROR
        log.log(level, "failed s3://%s/%s: %s", ref.bucket, ref.key, failure, extra={"data": data})
        raise failure
    store.note_processed(deps.dynamodb, deps.settings.events_table, ref.bucket, ref.key, deps.now())
    log.info("processed s3://%s/%s", ref.bucket, ref.key, extra={"data": result.log_fields()})
    return result


def _read_and_store(
    ref: ObjectRef, deps: Deps, result: FileResult, groups: dict[str, _Group]
) -> Exception | None:
    """Stream the object and store every match; returns the error that stopped the read, if any."""
    matcher = deps.config.matcher()
    body = _get_object(deps.s3, ref, deps.bucket_owner)
    stats = FileStats(records=0, parsed=0, matched=0, skipped_non_objects=0, fast_path=False)
    seen: set[str] = set()
    failure: Exception | None = None
    try:
        for record, rules in iter_matches(open_log(body), matcher, stats):
            try:
                _store_record(record, rules, ref, deps, result, groups, seen, matcher)
            except Exception as err:  # one record the table refuses must not stop its file
                if not record_issues.is_record_fault(err):
                    raise
                stats.add_issue("store_error", f"{type(err).__name__}: {err}")
    except Exception as err:
        failure = err
    finally:
        body.close()
    try:  # a second version of this key is a tamper alert; checked after the read, so nothing waits on it
        result.alerts += tamper.check_overwrite(ref, deps)
    except Exception as err:
        failure = failure or err
    result.records, result.fast_path = stats.records, stats.fast_path
    result.record_issues, result.record_issue_count = stats.issues, stats.issue_count
    return failure


def _get_object(s3: Any, ref: ObjectRef, owner: str | None = None) -> Any:
    """The body of the version the notification named (latest when it named none: an unversioned bucket),
    so that overwriting or deleting the key before we read it hides nothing."""
    params: dict[str, str] = {"ExpectedBucketOwner": owner} if owner else {}
    if ref.version_id:
        params["VersionId"] = ref.version_id
    try:
        return s3.get_object(Bucket=ref.bucket, Key=ref.key, **params)["Body"]
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code"))
        if code in ("NoSuchKey", "NoSuchVersion", "404"):
            raise ObjectMissingError(f"the object does not exist ({code})") from err
        raise


def _store_record(
    record: dict,
    rules: list,
    ref: ObjectRef,
    deps: Deps,
    result: FileResult,
    groups: dict[str, _Group],
    seen: set[str],
    matcher: Any,
) -> None:
    result.matched += 1
    item = store.build_item(
        record,
        rules,
        log_bucket=ref.bucket,
        log_key=ref.key,
        now=deps.now(),
        retention_days=deps.settings.retention_days,
    )
    event_id = item["EventId"]["S"]
    if event_id in seen:  # the same event twice in one file
        result.duplicates += 1
        return
    seen.add(event_id)
    outcome = store.put_event(deps.dynamodb, deps.settings.events_table, item)
    if outcome.created:
        result.stored += 1
    else:
        result.duplicates += 1
    stored = outcome.item
    if stored.get("alert_status", {}).get("S") == store.SENT:
        return
    # Group by the rule stored on the item: an earlier attempt may have run under another config.
    rule_id = stored.get("rule_id", {}).get("S") or item["rule_id"]["S"]
    group = groups.get(rule_id)
    if group is None:
        rule = _find_rule(rule_id, rules, matcher)
        severity = stored.get("severity", {}).get("S") or (rule.severity if rule else "medium")
        title = rule.title if rule and rule.title else rule_id
        group = groups[rule_id] = _Group(rule_id, title, severity, rule.description if rule else None)
    group.event_ids.append(event_id)
    if len(group.summaries) < SUMMARIES_KEPT_PER_RULE:
        group.summaries[event_id] = records.summary(record)


def _find_rule(rule_id: str, rules: list, matcher: Any) -> Any:
    for rule in [*rules, *getattr(matcher, "rules", ())]:
        if rule.id == rule_id:
            return rule
    return None


def _send_alerts(groups: dict[str, _Group], ref: ObjectRef, deps: Deps, result: FileResult) -> None:
    """One message per group; every group is attempted, the first failure is raised at the end."""
    first_error: Exception | None = None
    for group in groups.values():
        try:
            sent, in_flight = _alert_group(group, ref, deps)
        except Exception as err:
            log.error("alert for rule %s of s3://%s/%s failed: %s", group.rule_id, ref.bucket, ref.key, err)
            first_error = first_error or err
            continue
        result.in_flight += in_flight
        if sent:
            result.alerts += 1
            result.alerted_events += sent
    if first_error is not None:
        raise first_error


def _alert_group(group: _Group, ref: ObjectRef, deps: Deps) -> tuple[int, int]:
    """Claim, publish once, mark sent. Returns (events the message covered, events claimed elsewhere)."""
    table, ddb = deps.settings.events_table, deps.dynamodb
    token = deps.new_token()
    claimed: list[str] = []
    in_flight = 0
    try:
        for event_id in group.event_ids:
            now = deps.now()
            stale_before = now - timedelta(seconds=deps.claim_stale_seconds)
            outcome = store.claim(ddb, table, event_id, token=token, now=now, stale_before=stale_before)
            if outcome.claimed:
                claimed.append(event_id)
            elif outcome.status is None:
                log.warning("event %s vanished from the table before it was alerted (TTL?)", event_id)
            elif outcome.status != store.SENT:
                in_flight += 1
        if not claimed:
            return 0, in_flight
        message = alerts.build_alert(
            alerts.Alert(
                rule_id=group.rule_id,
                title=group.title,
                severity=group.severity,
                description=group.description,
                event_ids=claimed,
                events=[group.summaries[e] for e in claimed if e in group.summaries][: alerts.MAX_EVENTS],
                log_bucket=ref.bucket,
                log_key=ref.key,
                table=table,
            )
        )
        message_id = alerts.publish(deps.sns, deps.settings.alert_topic_arn, message)
    except Exception:
        _release(claimed, token, deps)
        raise
    # Crash window: SNS has the message, the items still say "sending" (see the module docstring).
    now = deps.now()
    for event_id in claimed:
        if not store.mark_sent(ddb, table, event_id, token=token, message_id=message_id, now=now):
            log.warning("event %s: claim taken over before it was marked sent (possible duplicate)", event_id)
    return len(claimed), in_flight


def report_invalid_config(error: Exception, etag: str | None, deps: Deps) -> bool:
    """Send the operational alert for one invalid config version once overall, whatever the number of
    containers that read it: only the invocation whose marker claim succeeds (store.claim_marker) publishes.

    True: the alert is sent (now, by us, or earlier by another container). False: another live invocation
    holds the claim; ask again at the next check (it may die before sending). A failed publish releases the
    claim, so that this or another container sends it at its next check, and raises.
    """
    settings, ddb = deps.settings, deps.dynamodb
    source = f"s3://{settings.config_bucket}/{settings.config_key}"
    marker_id = store.config_invalid_marker_id(settings.config_bucket, settings.config_key, etag)
    token, now = deps.new_token(), deps.now()
    outcome = store.claim_marker(
        ddb,
        settings.events_table,
        marker_id,
        token=token,
        now=now,
        stale_before=now - timedelta(seconds=deps.claim_stale_seconds),
        retention_days=settings.retention_days,
        details={"config_source": source, "config_etag": etag or "", "error": str(error)},
    )
    if not outcome.claimed:
        log.info("config %s (ETag %s): operational alert is %s", source, etag, outcome.status or "gone")
        return outcome.status == store.SENT
    message = alerts.operational_alert(
        "Invalid trailwatch config; the last good config stays in use",
        f"ETag {etag}\n{error}",
        source=source,
    )
    try:
        message_id = alerts.publish(deps.sns, settings.alert_topic_arn, message)
    except Exception:
        _release([marker_id], token, deps)
        raise
    if not store.mark_sent(
        ddb, settings.events_table, marker_id, token=token, message_id=message_id, now=now
    ):
        log.warning(
            "config %s: marker %s taken over before it was marked sent (possible duplicate)",
            source,
            marker_id,
        )
    return True


def report_config_loaded(rules: Sequence[Any], version: str, deps: Deps) -> bool:
    """Announce a newly loaded config version once overall, with its rule differences from the version
    announced before it (the digest kept in the table's config-state item).

    ``version`` is the object's ETag, or ``default:<digest id>`` for the bundled default. A version equal to
    the stored state is already announced: nothing to do. Otherwise the marker of the transition
    (state counter, version) is claimed as in report_invalid_config: one container publishes, then the
    state moves on (conditionally, so two containers cannot both advance it). Severity: ``high`` when rules
    are removed or weakened (config_diff says what counts), ``info`` for the first version ever announced,
    else ``low``. Returns True when announced (by anyone), False to be asked again at the next check.
    """
    settings, ddb, table = deps.settings, deps.dynamodb, deps.settings.events_table
    source = f"s3://{settings.config_bucket}/{settings.config_key}"
    digest = config_diff.config_digest(rules)
    state_id = store.config_state_id(settings.config_bucket, settings.config_key)
    state = store.get_config_state(ddb, table, state_id)
    if state is not None and state.version == version:
        return True
    previous_seq = state.seq if state is not None else 0
    marker_id = store.config_loaded_marker_id(
        settings.config_bucket, settings.config_key, previous_seq, version
    )
    token, now = deps.new_token(), deps.now()
    outcome = store.claim_marker(
        ddb,
        table,
        marker_id,
        token=token,
        now=now,
        stale_before=now - timedelta(seconds=deps.claim_stale_seconds),
        retention_days=settings.retention_days,
        details={
            "config_source": source,
            "config_etag": version,
            "previous_etag": state.version if state is not None else "",
        },
    )
    if outcome.claimed:
        message = _config_loaded_alert(state, version, digest, source)
        try:
            message_id = alerts.publish(deps.sns, settings.alert_topic_arn, message)
        except Exception:
            _release([marker_id], token, deps)
            raise
        if not store.mark_sent(ddb, table, marker_id, token=token, message_id=message_id, now=now):
            log.warning("config %s: marker %s taken over before it was marked sent", source, marker_id)
    elif outcome.status != store.SENT:
        log.info("config %s (version %s): announcement is %s", source, version, outcome.status or "gone")
        return False
    # Sent (by us or by a container that died before moving the state on): record the new version.
    store.put_config_state(
        ddb, table, state_id, version=version, digest=digest, seq=previous_seq + 1, now=deps.now()
    )
    return True


def _config_loaded_alert(
    state: store.ConfigState | None, version: str, digest: dict[str, str], source: str
) -> alerts.SnsMessage:
    if state is None:
        detail = f"Version {version}: {len(digest)} rule(s) in force.\n" + "\n".join(
            f"  {rule_id}" for rule_id in list(digest)[:50]
        )
        return alerts.operational_alert(
            f"trailwatch config in force: {len(digest)} rule(s)", detail, source=source, severity="info"
        )
    diff = config_diff.diff_digests(state.digest, digest)
    summary = (
        f"Version {version} replaces {state.version}: {len(digest)} rule(s) in force "
        f"(was {len(state.digest)}); {len(diff.added)} added, {len(diff.removed)} removed, "
        f"{len(diff.changed)} changed."
    )
    lines = diff.lines() or ["(same rules: only the file changed)"]
    if diff.weakening:
        title = (
            f"trailwatch config changed: {len(diff.removed)} rule(s) removed, {len(diff.weakened)} weakened"
        )
        severity = "high"
    else:
        title = "trailwatch config changed"
        severity = "low"
    return alerts.operational_alert(
        title, summary + "\n" + "\n".join(lines), source=source, severity=severity
    )


def _release(claimed: list[str], token: str, deps: Deps) -> None:
    """Best effort: a claim that cannot be released goes stale and is re-claimed by the retry."""
    for event_id in claimed:
        try:
            store.release(deps.dynamodb, deps.settings.events_table, event_id, token=token)
        except Exception as err:
            log.warning("event %s: releasing the alert claim failed (%s); it will go stale", event_id, err)
