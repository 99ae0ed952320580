"""The fast path: a CloudTrail event from EventBridge (an SQS message whose body is the event) -> stored and
alerted seconds after the call, exactly as if a log file had brought it.

Every region's default bus receives CloudTrail's events within seconds (``detail-type`` "AWS API Call via
CloudTrail", "AWS Console Sign In via CloudTrail", "AWS Service Event via CloudTrail", ...; ``source``
``aws.<service>``; ``detail`` = the CloudTrail record). An EventBridge rule (its pattern from the config,
``eventbridge_pattern.py``) sends the matching ones to a queue this function consumes. Here the record is
matched with the same matcher as log files (the rule's pattern may be broader: excludes, fallback), stored
under the same ``EventId`` with the same item (``path`` = ``eventbridge``, no log file yet) and alerted
through the same claim protocol (``claims.py``): one alert per event however many paths and deliveries
bring it. EventBridge delivers at least once, and the log file brings the event again minutes later: both
find the item and send nothing (``sent``), and the file names itself on it (``claims.add_log_file``).

Failures follow the log-file path: an event claimed by another live invocation fails the message
(``AlertsInFlightError``: it comes back to confirm); a failed publish releases the claim and raises (the
retry, or at worst the log file, alerts it); a body that is not a usable event is a ``FastPathError`` (a
``NotificationError``: the handler reports it and SQS moves it to the DLQ after ``maxReceiveCount``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from . import alerts, claims, noise, noise_state, records, store
from .deps import AlertsInFlightError, Deps
from .notifications import NotificationError

log = logging.getLogger(__name__)

DETAIL_TYPE_SUFFIX = "via CloudTrail"  # "AWS API Call via CloudTrail", "AWS Console Sign In via ..."
SOURCE_PREFIX = "aws."


class FastPathError(NotificationError):
    """A CloudTrail event from EventBridge that cannot be processed (no record in ``detail``)."""


@dataclass
class FastPathResult:
    event_id: str | None = None
    event_name: str | None = None
    rule_ids: list[str] = field(default_factory=list)  # matching rules (after excludes), config order
    stored: bool = False  # this delivery wrote the item
    duplicate: bool = False  # the item was there already (another delivery, or the log file)
    alerted: bool = False  # this delivery published the alert
    in_flight: bool = False  # another live invocation holds the alert claim
    latency_seconds: float | None = None  # eventTime -> the alert, when this delivery alerted
    delivery_seconds: float | None = None  # eventTime -> the message reached SQS (or was received)

    def log_fields(self) -> dict[str, Any]:
        """The path, then every field in order (``rule_ids`` logged as ``rules``)."""
        values = {"rules" if f.name == "rule_ids" else f.name: getattr(self, f.name) for f in fields(self)}
        return {"path": store.PATH_EVENTBRIDGE, **values}


def is_cloudtrail_event(doc: Any) -> bool:
    """An EventBridge event made of a CloudTrail record: ``detail-type`` "... via CloudTrail", ``source``
    ``aws.*``. (S3's own EventBridge events, "Object Created" from ``aws.s3``, are notifications.)"""
    if not isinstance(doc, dict):
        return False
    detail_type, source = doc.get("detail-type"), doc.get("source")
    return (
        isinstance(detail_type, str)
        and detail_type.endswith(DETAIL_TYPE_SUFFIX)
        and isinstance(source, str)
        and source.startswith(SOURCE_PREFIX)
    )


def cloudtrail_event(body: str) -> dict[str, Any] | None:
    """The EventBridge event in an SQS body when it is a CloudTrail one; None for any other body (a log-file
    notification: ``notifications.parse_body`` reads it, and reports what it cannot read)."""
    if not isinstance(body, str) or DETAIL_TYPE_SUFFIX not in body:  # cheap: most bodies are S3 notifications
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: parse_body raises the NotificationError naming it
    return doc if is_cloudtrail_event(doc) else None


def sent_at(message: dict[str, Any]) -> datetime | None:
    """When the message reached SQS (its ``SentTimestamp`` attribute, epoch milliseconds), None if unknown."""
    attributes = message.get("attributes")
    value = attributes.get("SentTimestamp") if isinstance(attributes, dict) else None
    try:
        return datetime.fromtimestamp(int(value) / 1000.0, UTC) if value is not None else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def process_event(
    event: dict[str, Any], deps: Deps, *, received_at: datetime | None = None
) -> FastPathResult:
    """Match, store and alert one CloudTrail event from EventBridge. Raises what must fail the message:
    ``FastPathError`` (no record), ``AlertsInFlightError`` (claimed elsewhere), AWS errors."""
    record = event.get("detail")
    if not isinstance(record, dict):
        raise FastPathError(
            f"EventBridge {event.get('detail-type')!r} event without a CloudTrail record in detail "
            f"(found {type(record).__name__})"
        )
    result = FastPathResult(event_name=_text(record.get("eventName")))
    received = received_at or deps.now()
    result.delivery_seconds = alerts.latency_seconds(record.get("eventTime"), received)
    matcher = deps.config.matcher()
    rules = matcher.match(record)
    if not rules:  # the rule's pattern is a superset (excludes, a broad fallback): nothing matched here
        log.debug("fast path: no rule matches", extra={"data": result.log_fields()})
        return result
    result.rule_ids = [rule.id for rule in rules]
    table, token, now = deps.settings.events_table, deps.new_token(), deps.now()
    item = store.build_item(
        record,
        rules,
        log_bucket=None,
        log_key=None,
        now=now,
        retention_days=deps.settings.retention_days,
        path=store.PATH_EVENTBRIDGE,
    )
    event_id = result.event_id = item["EventId"]["S"]
    # Noise control as for a log file: suppressed, grouped or below a threshold is stored quiet, unclaimed.
    suppressions = getattr(getattr(matcher, "config", None), "suppressions", ())
    plan = noise.plan(record, store.primary_rule(rules), suppressions, now)
    to_write, alert = noise_state.item_to_store(deps, plan, event_id, item, token)
    outcome = store.put_event(deps.dynamodb, table, to_write)
    extra: dict[str, Any] = {}
    if outcome.created:
        result.stored = True
        if not alert:
            log.info("fast path: stored quiet (noise control)", extra={"data": result.log_fields()})
            return result
        noise_state.annotate(extra, plan)
        rule_id, severity = item["rule_id"]["S"], item["severity"]["S"]
    else:
        result.duplicate = True
        claim = claims.claim_existing(deps, event_id, outcome.item, token)
        if claim.state == claims.IN_FLIGHT:
            result.in_flight = True
            log.warning("fast path: alert in flight elsewhere", extra={"data": result.log_fields()})
            raise AlertsInFlightError(
                f"event {event_id} is being alerted by another invocation; the message will be retried"
            )
        if claim.state != claims.CLAIMED:  # sent before (a duplicate delivery, or the log file was first)
            log.info("fast path: already stored and alerted", extra={"data": result.log_fields()})
            return result
        rule_id, severity = claim.rule_id or item["rule_id"]["S"], claim.severity or item["severity"]["S"]
    rule = claims.find_rule(rule_id, [*rules, *getattr(matcher, "rules", ())])
    claims.publish_events(
        deps,
        token,
        rule_id=rule_id,
        title=(rule.title if rule is not None and rule.title else rule_id),
        severity=severity,
        description=rule.description if rule is not None else None,
        event_ids=[event_id],
        events=[records.summary(record)],
        path=store.PATH_EVENTBRIDGE,
        extra=extra,
    )
    result.alerted = True
    result.latency_seconds = alerts.latency_seconds(record.get("eventTime"), deps.now())
    log.info("fast path: stored and alerted", extra={"data": result.log_fields()})
    return result


def _text(value: Any) -> str | None:
    return records.clean_text(value) if isinstance(value, str) else None
