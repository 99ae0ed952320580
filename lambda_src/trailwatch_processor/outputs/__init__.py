"""Outputs: each alert delivered to Slack and/or a signed webhook, each output independently.

How an alert gets here: the processor publishes every alert once to the AlertTopic. Each configured output
has its own SQS queue subscribed to that topic (raw delivery: the body is the alert's JSON ``default``) with
its own dead-letter queue, and its own event source mapping on the same function. One queue per output is
what makes outputs independent: a Slack outage fails (and retries, and finally dead-letters) only the Slack
queue's messages; the webhook's copies are delivered and deleted. No shared per-output state is needed.

The handler routes a record here when its ``eventSourceARN`` is one of the output queues (environment
``SLACK_QUEUE_ARN`` / ``WEBHOOK_QUEUE_ARN``). The output's settings live in a Secrets Manager secret (the
function gets only its ARN, ``SLACK_SECRET_ARN`` / ``WEBHOOK_SECRET_ARN``), a JSON document::

    {"url": "https://hooks.slack.com/services/...", "min_severity": "medium", "rules": ["root-*"],
     "signing_key": "<hex, webhook only>"}

``min_severity`` (default ``info``) and ``rules`` (default: all; ``fnmatch`` patterns) filter per output.
Delivery: one HTTP POST with a timeout, one quick retry on a 5xx/429/connection error; any other failure
raises, the record becomes a batch item failure, SQS redelivers it, and after ``maxReceiveCount`` it goes
to the output's DLQ, whose alarm notifies the AlarmTopic; the last failed receive also sends one
operational alert naming the output and the error to the AlarmTopic (``failure.py``). URLs and keys never
appear in logs.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from ..config import SEVERITIES
from . import slack, webhook
from .failure import DeliveryFailures
from .summary import Lookup, table_lookup, with_representative

log = logging.getLogger("trailwatch_processor.outputs")

KINDS = ("slack", "webhook")
TIMEOUT_SECONDS = 10.0
RETRY_DELAY_SECONDS = 1.0
SECRET_TTL_SECONDS = 300.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class OutputError(Exception):
    """An output could not be configured or delivered; the record is failed and retried by SQS."""


class DeliveryError(OutputError):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def url_problem(url: str) -> str | None:
    """Why ``url`` is not an acceptable output URL (https; plain http only to loopback), or None."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "not a URL with a host"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return None
    return "must be https:// (http:// only to a loopback address, for tests)"


@dataclass(frozen=True)
class OutputConfig:
    kind: str
    url: str = field(repr=False)
    min_severity: str = "info"
    rules: tuple[str, ...] = ()
    signing_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_secret(cls, kind: str, text: str) -> OutputConfig:
        try:
            doc = json.loads(text)
        except ValueError:
            raise OutputError(f"{kind} output secret is not JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("url"), str):
            raise OutputError(f"{kind} output secret has no 'url' string")
        problem = url_problem(doc["url"])
        if problem:
            raise OutputError(f"{kind} output url {problem}")
        severity = str(doc.get("min_severity") or "info").lower()
        if severity not in SEVERITIES:
            raise OutputError(
                f"{kind} output min_severity {severity!r} is not one of {', '.join(SEVERITIES)}"
            )
        rules = doc.get("rules") or []
        if not isinstance(rules, list) or not all(isinstance(rule, str) for rule in rules):
            raise OutputError(f"{kind} output 'rules' must be a list of strings")
        key = doc.get("signing_key")
        if kind == "webhook" and not (isinstance(key, str) and key):
            raise OutputError("webhook output secret has no 'signing_key'")
        return cls(kind=kind, url=doc["url"], min_severity=severity, rules=tuple(rules), signing_key=key)

    def wants(self, alert: Mapping[str, Any]) -> bool:
        """Severity at or above the floor, and rule matching one of ``rules`` (when any are set)."""
        severity = str(alert.get("severity", "")).lower()
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)  # unknown: send
        if rank < SEVERITIES.index(self.min_severity):
            return False
        rule = str(alert.get("rule", ""))
        return not self.rules or any(fnmatchcase(rule, pattern) for pattern in self.rules)


def render(
    config: OutputConfig, body: str, now: float | None = None, delivery_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """The request body and headers of one alert for one output."""
    if config.kind == "slack":
        payload = json.dumps(slack.build_message(json.loads(body)), ensure_ascii=False).encode("utf-8")
        return payload, {"Content-Type": "application/json"}
    data = body.encode("utf-8")
    return data, webhook.signed_headers(str(config.signing_key), data, now, delivery_id)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A signed alert goes to the configured URL only, never where a redirect points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, data: bytes, headers: Mapping[str, str], timeout: float = TIMEOUT_SECONDS) -> int:
    """POST once; the status on 2xx, DeliveryError otherwise (the URL is never put in the message)."""
    request = urllib.request.Request(url, data=data, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        retryable = err.code >= 500 or err.code == 429
        raise DeliveryError(f"HTTP {err.code}", retryable=retryable) from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DeliveryError(f"connection failed: {type(reason).__name__}", retryable=True) from None


def deliver(
    config: OutputConfig,
    body: str,
    *,
    send: Callable[[str, bytes, Mapping[str, str]], int] = post,
    sleep: Callable[[float], None] = time.sleep,
    delivery_id: str | None = None,
) -> bool:
    """Deliver one alert body; False when the output's filter skips it. Raises DeliveryError on failure."""
    alert = json.loads(body)
    if not config.wants(alert):
        return False
    try:
        send(config.url, *render(config, body, delivery_id=delivery_id))
    except DeliveryError as err:
        if not err.retryable:
            raise
        sleep(RETRY_DELAY_SECONDS)
        send(config.url, *render(config, body, delivery_id=delivery_id))  # a fresh webhook timestamp
    return True


@dataclass
class Outputs:
    """The output queues of this function and their secrets (cached per container for a few minutes)."""

    routes: dict[str, tuple[str, str]]  # queue ARN -> (kind, secret ARN)
    secrets_client: Callable[[], Any] = field(repr=False)
    ttl: float = SECRET_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, OutputConfig]] = field(default_factory=dict, repr=False)
    _client: Any = field(default=None, repr=False)
    failures: DeliveryFailures | None = None  # the last failed receive -> one alert on the AlarmTopic
    lookup: Lookup | None = None  # a stored event by id: a window summary's first event, for Slack

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Outputs:
        env = os.environ if env is None else env
        routes: dict[str, tuple[str, str]] = {}
        for kind in KINDS:
            queue, secret = env.get(f"{kind.upper()}_QUEUE_ARN"), env.get(f"{kind.upper()}_SECRET_ARN")
            if queue and secret:
                routes[queue] = (kind, secret)
        return cls(
            routes=routes,
            secrets_client=_secrets_client,
            failures=DeliveryFailures.from_env(env),
            lookup=table_lookup(env),
        )

    def kind_of(self, message: Any) -> str | None:
        if not isinstance(message, dict):
            return None
        route = self.routes.get(str(message.get("eventSourceARN", "")))
        return route[0] if route else None

    def config(self, queue_arn: str) -> OutputConfig:
        kind, secret_arn = self.routes[queue_arn]
        cached = self._cache.get(secret_arn)
        if cached and self.clock() - cached[0] < self.ttl:
            return cached[1]
        if self._client is None:
            self._client = self.secrets_client()
        text = self._client.get_secret_value(SecretId=secret_arn)["SecretString"]
        config = OutputConfig.from_secret(kind, text)
        self._cache[secret_arn] = (self.clock(), config)
        return config

    def handle(self, message: dict[str, Any], **kwargs: Any) -> None:
        """Deliver the alert in one output-queue record; raises so the record is retried. On the record's
        last receive a failure is also reported once to the AlarmTopic (``failure.py``)."""
        try:
            self._deliver(message, **kwargs)
        except Exception as err:
            kind = self.kind_of(message)
            if self.failures is not None and kind is not None:
                self.failures.report(kind, message, err)
            raise

    def _deliver(self, message: dict[str, Any], **kwargs: Any) -> None:
        queue_arn = str(message["eventSourceARN"])
        config = self.config(queue_arn)
        body = message.get("body")
        if not isinstance(body, str):
            raise OutputError("output queue record without a string body")
        alert = json.loads(body)
        if config.kind == "slack" and isinstance(alert, dict):  # a summary's first event (summary.py)
            shown = with_representative(alert, self.lookup)
            body = body if shown is alert else json.dumps(shown, ensure_ascii=False)
        sent = deliver(config, body, delivery_id=str(message.get("messageId") or "") or None, **kwargs)
        log.info(
            "%s output: alert %s %s",
            config.kind,
            alert.get("rule"),
            "delivered" if sent else "skipped by the output's filter",
            extra={"data": {"output": config.kind, "rule": alert.get("rule"), "delivered": sent}},
        )


def _secrets_client() -> Any:
    import boto3

    from ..aws import CLIENT_CONFIG

    return boto3.client("secretsmanager", config=CLIENT_CONFIG)


_outputs: Outputs | None = None


def handle_if_output(message: Any) -> bool:
    """The handler's hook: deliver ``message`` when it comes from an output queue; False otherwise."""
    global _outputs
    if _outputs is None:
        _outputs = Outputs.from_env()
    if _outputs.kind_of(message) is None:
        return False
    _outputs.handle(message)
    return True
