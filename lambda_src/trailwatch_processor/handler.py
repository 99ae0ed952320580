"""Lambda entry point: an SQS batch in, ``{"batchItemFailures": [...]}`` out.

Each message is processed on its own; a message that raises is reported as a batch item failure and
comes back from SQS (after ``maxReceiveCount`` receives it goes to the DLQ). The handler never raises for
a bad message, also not when every message failed: returning them all as failures has the same effect
under ``ReportBatchItemFailures`` and keeps one clear log line per message instead of a stack trace.

Decisions on failures (none of them drops data silently):
- unparseable body -> failure (DLQ): whatever it was, someone should look at it;
- corrupt log file (LogFileError) -> failure with a clear log line; what was stored is still alerted;
- object missing (NoSuchKey) -> failure (DLQ): it was a real notification of a log file that we never
  read, and a security tool surfaces that rather than acknowledging it;
- AWS errors (throttling, timeouts after botocore's retries) -> failure, SQS retries;
- events claimed by another live invocation (concurrent duplicate) -> failure, so the message is only
  deleted once every event it announced is ``sent`` (deps.AlertsInFlightError);
- out of time: each message gets a fair share of the invocation's remaining time (what
  is left after a safety reserve, divided among the messages not yet done, with a floor).
  A file that exceeds its share stops at a record boundary, alerts what it stored, saves a checkpoint and
  fails (deps.BudgetExhausted); the retry resumes from the checkpoint. A message that cannot be
  started before the reserve fails without being touched. So one slow file never makes the invocation
  time out and take the other nine with it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import fast_path, hunt, hunt_markers
from .aws import Clients, Settings
from .config_diff import digest_items
from .config_source import ConfigCache
from .deps import (
    DEFAULT_CLAIM_STALE_SECONDS,
    AlertsInFlightError,
    BudgetExhausted,
    Deps,
    ObjectMissingError,
)
from .log_stream import LogFileError
from .noise_close import handle_if_window_close
from .notifications import NotificationError, parse_body
from .outputs import handle_if_output
from .processor import process_object
from .reports import report_config_loaded, report_invalid_config

log = logging.getLogger("trailwatch_processor")

# Margin added to the invocation's remaining time to get the stale-claim threshold (>= the timeout).
CLAIM_STALE_MARGIN_SECONDS = 60.0

# Time kept back from the shares for the checkpoint writes and the response (the alerts a file still owes
# are counted inside its share): a tenth of the invocation's time, within these bounds (3 s of a 30 s
# function, 5 s of a 15 min one, 0.5 s of a 3 s one).
RESERVE_FRACTION = 0.1
RESERVE_MIN_SECONDS = 0.5
RESERVE_MAX_SECONDS = 5.0
# No message is started with less than this: a twentieth of the invocation's time, within these bounds.
SHARE_FLOOR_FRACTION = 0.05
SHARE_FLOOR_MIN_SECONDS = 0.2
SHARE_FLOOR_MAX_SECONDS = 1.0

_container_deps: Deps | None = None


@dataclass(frozen=True)
class MessageBudget:
    """One message's share: it is over when the invocation's remaining time falls to ``stop_at``."""

    remaining: Callable[[], float]  # seconds left in the invocation
    stop_at: float

    def left(self) -> float:
        return self.remaining() - self.stop_at

    def expired(self) -> bool:
        return self.left() <= 0


class BatchBudget:
    """Splits the invocation's remaining time among its messages as they come."""

    def __init__(self, remaining: Callable[[], float]) -> None:
        self.remaining = remaining
        total = remaining()
        self.reserve = min(max(total * RESERVE_FRACTION, RESERVE_MIN_SECONDS), RESERVE_MAX_SECONDS)
        self.floor = min(max(total * SHARE_FLOOR_FRACTION, SHARE_FLOOR_MIN_SECONDS), SHARE_FLOOR_MAX_SECONDS)

    @classmethod
    def of(cls, context: Any) -> BatchBudget | None:
        """From the Lambda context's get_remaining_time_in_millis; None (no limit) without one."""
        millis = getattr(context, "get_remaining_time_in_millis", None)
        if not callable(millis):
            return None
        return cls(lambda: millis() / 1000.0)

    def share(self, messages_left: int, *, last_receive: bool = False) -> MessageBudget | None:
        """The next message's budget, or None when there is no time left to start it.

        On a message's last receive the share keeps the reserve back once more (down to the floor): when
        it stops there, the poison report (a marker claim, a publish, a mark-sent) comes on top of the
        checkpoint and the owed alerts, and a timeout then would send the file to the DLQ unreported."""
        left = self.remaining()
        available = left - self.reserve
        if available < self.floor:
            return None
        share = min(max(available / max(messages_left, 1), self.floor), available)
        if last_receive:
            share = max(share - self.reserve, self.floor)
        return MessageBudget(self.remaining, left - share)


class NotStarted(Exception):
    """The invocation's time ran out before this message could be started: SQS brings it back."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={"data": {...}}`` fields are merged into it."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            doc.update(data)
        request_id = getattr(record, "aws_request_id", None)
        if request_id:
            doc["request_id"] = request_id
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def setup_logging(level: str) -> None:
    """JSON lines on the handlers the Lambda runtime installed (or on stdout when there are none).
    An unknown level name means INFO (with a warning) rather than a function that cannot start."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stdout))
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    root.setLevel(numeric if numeric is not None else logging.INFO)
    logging.getLogger("botocore").setLevel(max(root.level, logging.WARNING))
    if numeric is None:
        log.warning("LOG_LEVEL=%r is not a logging level; using INFO", level)


def account_of(context: Any) -> str | None:
    """The function's account, from its ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)."""
    parts = str(getattr(context, "invoked_function_arn", "") or "").split(":")
    return parts[4] if len(parts) > 4 and parts[4].isdigit() and len(parts[4]) == 12 else None


def build_deps(
    settings: Settings | None = None, clients: Clients | None = None, *, bucket_owner: str | None = None
) -> Deps:
    """Settings, clients and the config cache: once per container. `bucket_owner` (the function's
    account) goes as ExpectedBucketOwner on every read of the trail bucket: S3 refuses another account's."""
    settings = settings or Settings.from_env()
    clients = clients or Clients.create()

    deps = Deps(
        s3=clients.s3,
        dynamodb=clients.dynamodb,
        sns=clients.sns,
        settings=settings,
        config=None,
        claim_stale_seconds=settings.claim_stale_seconds or DEFAULT_CLAIM_STALE_SECONDS,
        # Attach mode: the existing trail bucket's owner (LOG_BUCKET_OWNER); the config bucket stays ours.
        bucket_owner=os.environ.get("LOG_BUCKET_OWNER") or bucket_owner,
    )

    def report_invalid(error: Exception) -> bool:
        # ``deps`` is read at call time, so a clock or client swapped on it (tests) is used.
        return report_invalid_config(error, deps.config.etag, deps)

    deps.config = ConfigCache(
        clients.s3,
        settings.config_bucket,
        settings.config_key,
        ttl=settings.config_ttl_seconds,
        on_invalid=report_invalid,
        expected_owner=bucket_owner,
        on_loaded=lambda matcher, version: report_config_loaded(digest_items(matcher), version, deps),
    )
    return deps


def handler(event: dict, context: Any) -> dict:
    global _container_deps
    if _container_deps is None:
        setup_logging(os.environ.get("LOG_LEVEL", "INFO").upper())
        _container_deps = build_deps(bucket_owner=account_of(context))
    return handle_batch(event, _container_deps, context)


def handle_batch(event: dict, deps: Deps, context: Any = None) -> dict:
    """Process every message; return the ones that failed."""
    messages = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(messages, list):
        raise ValueError(f"not an SQS batch: expected a Records list, got {type(messages).__name__}")
    deps = replace(deps, claim_stale_seconds=_claim_stale_seconds(deps, context))
    budget = BatchBudget.of(context)
    failures: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        message_id = str(message.get("messageId", "")) if isinstance(message, dict) else ""
        try:
            last = deps.last_receive(receive_count(message)) if isinstance(message, dict) else False
            share = budget.share(len(messages) - index, last_receive=last) if budget is not None else None
            if budget is not None and share is None:
                raise NotStarted("no time left in the invocation to start it")
            process_message(message, deps, share)
        except Exception as err:
            _log_failure(message_id, message, err)
            failures.append({"itemIdentifier": message_id})
    unwritten = set(hunt_markers.flush(deps)) - {f["itemIdentifier"] for f in failures}  # hunt
    failures += [{"itemIdentifier": m} for m in sorted(unwritten)]
    log.info(
        "batch done: %d message(s), %d failed",
        len(messages),
        len(failures),
        extra={"data": {"messages": len(messages), "failed": len(failures)}},
    )
    return {"batchItemFailures": failures}


class ObjectFailed(Exception):
    """Processing one announced object failed; ``cause`` is the original error."""

    def __init__(self, uri: str, cause: Exception) -> None:
        super().__init__(f"{uri}: {cause}")
        self.uri = uri
        self.cause = cause


def process_message(message: Any, deps: Deps, budget: MessageBudget | None = None) -> None:
    if not isinstance(message, dict) or not isinstance(message.get("body"), str):
        raise NotificationError("SQS record without a string body")
    if handle_if_output(message):  # an alert from an output queue (Slack, webhook): deliver it
        return
    if handle_if_window_close(message, deps):  # noise control: a dedup window's summary is due
        return
    event = fast_path.cloudtrail_event(message["body"])  # a CloudTrail event from EventBridge (fast path)
    if event is not None:
        fast_path.process_event(event, deps, received_at=fast_path.sent_at(message))
        return
    attempt = receive_count(message)
    request = hunt.parse_message(message, deps.settings.hunt_queue_arn)  # a hunt of past files
    if request is not None:
        hunt.process_hunt(request, deps, attempt=attempt, message_id=str(message.get("messageId", "")))
        return
    for ref in parse_body(message["body"]):
        try:
            process_object(ref, deps, budget=budget, attempt=attempt)
        except Exception as err:
            raise ObjectFailed(f"s3://{ref.bucket}/{ref.key}", err) from err


def receive_count(message: dict) -> int | None:
    """The SQS record's ApproximateReceiveCount (1 on the first delivery), None when absent or odd."""
    attributes = message.get("attributes")
    value = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    try:
        count = int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return count if count is not None and count >= 1 else None


def _claim_stale_seconds(deps: Deps, context: Any) -> float:
    """A claim older than the function timeout belongs to a dead invocation."""
    if deps.settings.claim_stale_seconds:
        return deps.settings.claim_stale_seconds
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return remaining() / 1000.0 + CLAIM_STALE_MARGIN_SECONDS
    return deps.claim_stale_seconds


# What a failed message's log line says, by the kind of its cause (first match): level and text, whose
# arguments are the message id and the failure.
_FAILURE_LOGS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int, str], ...] = (
    (
        LogFileError,
        logging.ERROR,
        "corrupt log file in message %s: %s; it will go to the DLQ after maxReceiveCount",
    ),
    (
        ObjectMissingError,
        logging.ERROR,
        "log object of message %s is gone: %s; failing it so it reaches the DLQ after maxReceiveCount",
    ),
    ((BudgetExhausted, NotStarted), logging.WARNING, "message %s out of time, retried later: %s"),
    (AlertsInFlightError, logging.WARNING, "message %s retried later: %s"),
    ((ClientError, BotoCoreError), logging.ERROR, "AWS error in message %s: %s; SQS will retry it"),
)


def _log_failure(message_id: str, message: Any, failure: Exception) -> None:
    err = failure.cause if isinstance(failure, ObjectFailed) else failure
    data = {"messageId": message_id, "error": type(err).__name__, "detail": str(failure)}
    if isinstance(failure, ObjectFailed):
        data["object"] = failure.uri
    if isinstance(err, NotificationError):
        body = message.get("body") if isinstance(message, dict) else None
        data["body"] = body[:500] if isinstance(body, str) else None
        text = "unparseable message %s: %s; it will go to the DLQ after maxReceiveCount"
        log.error(text, message_id, err, extra={"data": data})
        return
    for kinds, level, text in _FAILURE_LOGS:
        if isinstance(err, kinds):
            log.log(level, text, message_id, failure, extra={"data": data})
            return
    log.exception("unexpected error in message %s; SQS will retry it", message_id, extra={"data": data})
