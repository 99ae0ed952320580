"""Fault injection for the local AWS: make a chosen API fail N times, or for a time window, with the error
the real service returns for that protocol.

`FaultInjector.wrap` is a WSGI middleware for `LocalAWS.middlewares`. Each request is attributed to a
service and operation with `trailwatch.local.operations` (as the CloudTrail recorder does); the first
active fault that matches it (service, operation, optional predicate on the request) answers instead of
moto. A fault may also hold the request (`delay`) before answering, e.g. longer than the function timeout
so that the Lambda runtime kills the worker mid-call. Thread-safe: the server runs one thread per request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from trailwatch.local import operations
from trailwatch.local.operations import HttpRequest, Identified, WSGIApp, read_wsgi_body

Predicate = Callable[[HttpRequest, Identified], bool]

_STATUS_TEXT = {
    400: "Bad Request",
    403: "Forbidden",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

# The usual error per (protocol family, code): HTTP status. Unknown codes default to 400 (client) / 500.
KNOWN_STATUS = {
    "ProvisionedThroughputExceededException": 400,
    "ThrottlingException": 400,
    "RequestLimitExceeded": 400,
    "Throttling": 400,
    "InternalError": 500,
    "InternalFailure": 500,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
    "SlowDown": 503,
}


@dataclass
class Fault:
    """One injected failure. `times`: how many requests fail (None: unlimited); `until`: a monotonic
    deadline after which the fault no longer applies (None: no window). `hits` counts the requests it
    answered."""

    service: str
    operation: str
    code: str
    message: str = "injected by trailwatch.local.faults"
    status: int | None = None
    times: int | None = 1
    until: float | None = None
    delay: float = 0.0
    predicate: Predicate | None = None
    hits: int = 0
    name: str = ""
    _id: int = field(default=0, repr=False)

    @property
    def http_status(self) -> int:
        return self.status or KNOWN_STATUS.get(self.code, 400)

    def active(self, now: float) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return self.until is None or now < self.until

    def matches(self, ident: Identified, request: HttpRequest) -> bool:
        if ident.service != self.service or ident.operation != self.operation:
            return False
        return self.predicate is None or bool(self.predicate(request, ident))


class FaultInjector:
    """Holds the faults and answers matching requests with an AWS error."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 0
        self.clock = clock

    # ------------------------------------------------------------------ API

    def add(
        self,
        service: str,
        operation: str,
        code: str,
        *,
        times: int | None = 1,
        duration: float | None = None,
        delay: float = 0.0,
        status: int | None = None,
        message: str | None = None,
        predicate: Predicate | None = None,
        name: str = "",
    ) -> Fault:
        """Fail `service`/`operation` (botocore names, e.g. "dynamodb", "PutItem") `times` times (None: no
        limit) and/or for `duration` seconds from now. Returns the fault (its `hits` grow as it fires)."""
        if times is not None and times < 1:
            raise ValueError(f"fault {service}.{operation}: times must be >= 1 or None, got {times}")
        if times is None and duration is None:
            raise ValueError(
                f"fault {service}.{operation}: give times, duration or both (else it never ends)"
            )
        if duration is not None and duration <= 0:
            raise ValueError(f"fault {service}.{operation}: duration must be > 0 seconds, got {duration}")
        if delay < 0:
            raise ValueError(f"fault {service}.{operation}: delay must be >= 0 seconds, got {delay}")
        with self._lock:
            self._next_id += 1
            fault = Fault(
                service=service,
                operation=operation,
                code=code,
                message=message or f"injected by trailwatch.local.faults ({code})",
                status=status,
                times=times,
                until=None if duration is None else self.clock() + duration,
                delay=delay,
                predicate=predicate,
                name=name or f"{service}.{operation}:{code}",
                _id=self._next_id,
            )
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f._id != fault._id]

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def hits(self, fault: Fault | None = None) -> int:
        """Requests answered by `fault` (or by all current faults)."""
        with self._lock:
            return fault.hits if fault is not None else sum(f.hits for f in self._faults)

    def _take(self, request: HttpRequest) -> tuple[Fault, Identified] | None:
        """The fault answering `request` and the operation it calls, the fault's hit counted (atomically:
        `times` is exact under threads)."""
        with self._lock:
            if not self._faults:
                return None
        ident = operations.identify(request)
        if ident is None:
            return None
        now = self.clock()
        with self._lock:
            for fault in self._faults:
                if fault.active(now) and fault.matches(ident, request):
                    fault.hits += 1
                    return fault, ident
        return None

    # ------------------------------------------------------------------ WSGI

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """A WSGI middleware around `app` answering matching requests with their fault's error."""

        def middleware(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
            with self._lock:
                idle = not self._faults
            if idle or str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
                return app(environ, start_response)
            request = HttpRequest.from_environ(environ, read_wsgi_body(environ))
            taken = self._take(request)
            if taken is None:
                return app(environ, start_response)
            fault, ident = taken
            if fault.delay:
                time.sleep(fault.delay)
            status, headers, body = error_response(
                ident.protocol, fault.code, fault.message, fault.http_status
            )
            start_response(f"{status} {_STATUS_TEXT.get(status, 'Error')}", headers)
            return [body]

        return middleware


def error_response(protocol: str, code: str, message: str, status: int) -> tuple[int, list, bytes]:
    """Status, headers and body of an AWS error in `protocol`'s wire format (what botocore parses)."""
    request_id = "trailwatch-fault-0000"
    if protocol in ("json", "rest-json"):
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", code),
        ]
    elif protocol in ("query", "ec2"):
        body = (
            '<?xml version="1.0"?><ErrorResponse><Error><Type>'
            + ("Receiver" if status >= 500 else "Sender")
            + f"</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    else:  # rest-xml (S3)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


def json_field(name: str, value: str) -> Predicate:
    """A predicate: the JSON request body's `name` equals `value` (e.g. DynamoDB TableName)."""

    def check(request: HttpRequest, ident: Identified) -> bool:
        doc = operations.decode_json_body(request.body)
        return isinstance(doc, dict) and doc.get(name) == value

    return check


def label_prefix(label: str, prefix: str) -> Predicate:
    """A predicate: the URI label `label` (e.g. S3 Key, Bucket) starts with `prefix`."""

    def check(request: HttpRequest, ident: Identified) -> bool:
        return str(ident.labels.get(label, "")).startswith(prefix)

    return check


def form_field(name: str, value: str) -> Predicate:
    """A predicate: the query/form parameter `name` equals `value` (e.g. SNS TopicArn)."""

    def check(request: HttpRequest, ident: Identified) -> bool:
        params = request.form_params or request.query_params
        return value in params.get(name, [])

    return check
