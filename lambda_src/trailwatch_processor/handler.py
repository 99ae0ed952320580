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
  deleted once every event it announced is ``sent`` (processor.AlertsInFlightError).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .aws import Clients, Settings
from .config_source import ConfigCache
from .logfile import LogFileError
from .notifications import NotificationError, parse_body
from .processor import (
    DEFAULT_CLAIM_STALE_SECONDS,
    AlertsInFlightError,
    Deps,
    ObjectMissingError,
    process_object,
    report_config_loaded,
    report_invalid_config,
)

log = logging.getLogger("trailwatch_processor")

# Margin added to the invocation's remaining time to get the stale-claim threshold (>= the timeout).
CLAIM_STALE_MARGIN_SECONDS = 60.0

_container_deps: Deps | None = None


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
        on_loaded=lambda matcher, version: report_config_loaded(matcher.rules, version, deps),
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
    failures: list[dict[str, str]] = []
    for message in messages:
        message_id = str(message.get("messageId", "")) if isinstance(message, dict) else ""
        try:
            process_message(message, deps)
        except Exception as err:
            _log_failure(message_id, message, err)
            failures.append({"itemIdentifier": message_id})
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


def process_message(message: Any, deps: Deps) -> None:
    if not isinstance(message, dict) or not isinstance(message.get("body"), str):
        raise NotificationError("SQS record without a string body")
    for ref in parse_body(message["body"]):
        try:
            process_object(ref, deps)
        except Exception as err:
            raise ObjectFailed(f"s3://{ref.bucket}/{ref.key}", err) from err


def _claim_stale_seconds(deps: Deps, context: Any) -> float:
    """A claim older than the function timeout belongs to a dead invocation."""
    if deps.settings.claim_stale_seconds:
        return deps.settings.claim_stale_seconds
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return remaining() / 1000.0 + CLAIM_STALE_MARGIN_SECONDS
    return deps.claim_stale_seconds


def _log_failure(message_id: str, message: Any, failure: Exception) -> None:
    err = failure.cause if isinstance(failure, ObjectFailed) else failure
    data = {"messageId": message_id, "error": type(err).__name__, "detail": str(failure)}
    if isinstance(failure, ObjectFailed):
        data["object"] = failure.uri
    if isinstance(err, NotificationError):
        body = message.get("body") if isinstance(message, dict) else None
        data["body"] = body[:500] if isinstance(body, str) else None
        log.error(
            "unparseable message %s: %s; it will go to the DLQ after maxReceiveCount",
            message_id,
            err,
            extra={"data": data},
        )
    elif isinstance(err, LogFileError):
        log.error(
            "corrupt log file in message %s: %s; it will go to the DLQ after maxReceiveCount",
            message_id,
            failure,
            extra={"data": data},
        )
    elif isinstance(err, ObjectMissingError):
        log.error(
            "log object of message %s is gone: %s; failing it so it reaches the DLQ after maxReceiveCount",
            message_id,
            failure,
            extra={"data": data},
        )
    elif isinstance(err, AlertsInFlightError):
        log.warning("message %s retried later: %s", message_id, failure, extra={"data": data})
    elif isinstance(err, ClientError | BotoCoreError):
        log.error("AWS error in message %s: %s; SQS will retry it", message_id, failure, extra={"data": data})
    else:
        log.exception("unexpected error in message %s; SQS will retry it", message_id, extra={"data": data})
