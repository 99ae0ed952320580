"""One operational alert when an output gives up on an alert (its last receive failed).

An output message that keeps failing goes to the output's dead-letter queue after ``MAX_RECEIVE_COUNT``
receives. The DLQ alarm says "something is in the DLQ"; this says which output, which alert and why, once
per dead-lettered message, at the moment it is lost for that output.

It goes to the **AlarmTopic**, never the AlertTopic: every output queue is subscribed to the AlertTopic, so
an alert about a failing output published there would be delivered to that same failing output, fail, and
feed itself. The AlarmTopic has only the email subscription.

"Once" is the claim protocol of the other operational markers (``markers.claim_marker``): SQS delivers at
least once, so the last receive can happen twice (even concurrently); only the claim holder publishes. The
marker is keyed by output kind and SQS message id, which stays the same across every receive of a message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import alerts, markers, store

log = logging.getLogger("trailwatch_processor.outputs")

MARKER_PREFIX = "trailwatch#output-failed#"
# A claim older than the longest Lambda timeout (plus a margin) belongs to a dead invocation.
CLAIM_STALE_SECONDS = 960.0
DEFAULT_RETENTION_DAYS = 90
ERROR_MAX_CHARS = 300


def marker_id(kind: str, message_id: str) -> str:
    digest = hashlib.sha256(f"{kind}/{message_id}".encode()).hexdigest()
    return f"{MARKER_PREFIX}{kind}#{digest}"


def receive_count(message: Mapping[str, Any]) -> int | None:
    """The SQS record's ApproximateReceiveCount, None when absent or odd."""
    attributes = message.get("attributes")
    value = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def describe_error(err: BaseException) -> str:
    """What went wrong, without anything secret: our own errors never hold the URL or key; for anything
    else (a library's message could quote the URL) only the exception type, except AWS errors."""
    from . import OutputError  # the package imports this module

    if isinstance(err, OutputError | ClientError | BotoCoreError):
        text = f"{type(err).__name__}: {err}"
    else:
        text = type(err).__name__
    return alerts.one_line(text)[:ERROR_MAX_CHARS]


@dataclass
class DeliveryFailures:
    """Reports the last failed receive of an output message to the AlarmTopic, once per message."""

    alarm_topic_arn: str
    table: str
    max_receive_count: int
    clients: Callable[[], tuple[Any, Any]] = field(repr=False)  # -> (dynamodb, sns), created on first use
    retention_days: int = DEFAULT_RETENTION_DAYS
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    new_token: Callable[[], str] = lambda: uuid.uuid4().hex
    _made: tuple[Any, Any] | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeliveryFailures | None:
        """None unless the function knows the AlarmTopic, the table and the queues' receive limit."""
        env = os.environ if env is None else env
        topic, table = env.get("ALARM_TOPIC_ARN"), env.get("EVENTS_TABLE")
        try:
            limit = int(env.get("MAX_RECEIVE_COUNT") or 0)
            retention = int(env.get("RETENTION_DAYS") or DEFAULT_RETENTION_DAYS)
        except ValueError:
            return None
        if not (topic and table and limit > 0):
            return None
        return cls(topic, table, limit, clients=_clients, retention_days=retention)

    def is_last_receive(self, message: Mapping[str, Any]) -> bool:
        count = receive_count(message)
        return count is not None and count >= self.max_receive_count

    def report(self, kind: str, message: Mapping[str, Any], err: BaseException) -> bool:
        """Send the operational alert if this was the message's last receive and nobody sent it yet.
        True when this call sent it. Never raises: the delivery's own failure is what the caller reports."""
        if not self.is_last_receive(message):
            return False
        try:
            return self._send(kind, message, err)
        except Exception as failure:  # the message still reaches the DLQ, whose alarm fires
            log.error(
                "%s output: the delivery-failure alert could not be sent: %s",
                kind,
                describe_error(failure),
                extra={"data": {"output": kind, "error": describe_error(failure)}},
            )
            return False

    def _send(self, kind: str, message: Mapping[str, Any], err: BaseException) -> bool:
        if self._made is None:
            self._made = self.clients()
        dynamodb, sns = self._made
        message_id = str(message.get("messageId") or "")
        alert = _alert_fields(message.get("body"))
        error = describe_error(err)
        marker = marker_id(kind, message_id)
        token, now = self.new_token(), self.now()
        outcome = markers.claim_marker(
            dynamodb,
            self.table,
            marker,
            token=token,
            now=now,
            stale_before=now - timedelta(seconds=CLAIM_STALE_SECONDS),
            retention_days=self.retention_days,
            details={"output": kind, "message_id": message_id, "error": error, "alert_rule": alert["rule"]},
        )
        if not outcome.claimed:
            log.info("%s output: delivery-failure alert for %s is %s", kind, message_id, outcome.status)
            return False
        detail = (
            f"The {kind} output gave up on an alert after {receive_count(message)} attempt(s): {error}.\n"
            f"Alert: rule {alert['rule']}, severity {alert['severity']}, {alert['title']}"
            f" ({alert['count']} event(s)).\n"
            f"The message (SQS id {message_id}) is now in the {kind} output's dead-letter queue "
            f"(stack output {kind.capitalize()}OutputDeadLetterQueueUrl); redrive it once the endpoint "
            "works. Email and the other outputs received their own copies; stored events are unaffected."
        )
        sns_message = alerts.operational_alert(
            f"trailwatch {kind} output failed to deliver an alert", detail, source=f"output:{kind}"
        )
        try:
            published = alerts.publish(sns, self.alarm_topic_arn, sns_message)
        except Exception:
            try:
                store.release(dynamodb, self.table, marker, token=token)
            except Exception as release_err:  # it goes stale and a later receive may take it over
                log.warning("releasing %s failed: %s", marker, describe_error(release_err))
            raise
        store.mark_sent(dynamodb, self.table, marker, token=token, message_id=published, now=now)
        log.error(
            "%s output: alert %s dead-lettered after %s receive(s): %s",
            kind,
            alert["rule"],
            receive_count(message),
            error,
            extra={"data": {"output": kind, "rule": alert["rule"], "error": error, "messageId": message_id}},
        )
        return True


def _alert_fields(body: Any) -> dict[str, str]:
    """rule, severity, title and count of the alert body, as one-line text ("?" when unreadable)."""
    try:
        doc = json.loads(body) if isinstance(body, str) else {}
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    return {
        name: alerts.one_line(str(doc.get(name, "?")))[:200]
        for name in ("rule", "severity", "title", "count")
    }


def _clients() -> tuple[Any, Any]:
    import boto3

    from ..aws import CLIENT_CONFIG

    return boto3.client("dynamodb", config=CLIENT_CONFIG), boto3.client("sns", config=CLIENT_CONFIG)
