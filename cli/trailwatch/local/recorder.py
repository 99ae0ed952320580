"""CloudTrail for the local AWS: a record for each request moto serves, delivered per trail into S3.

`CloudTrailRecorder.wrap(app)` is a WSGI middleware around moto's app. For every signed request it serves it
builds a CloudTrail record (`cloudtrail_records`, the operation found through botocore's models, see
`operations`), decides which of the emulator's trails take it (`cloudtrail_selectors`: logging on, region,
global service events, basic or advanced event selectors) and queues it per trail. Every `interval` seconds
(and on `flush()`) the queued records are written as gzip log files, and digests where validation is on, into
each trail's bucket (`cloudtrail_delivery`). Each record is also put at once on the default EventBridge bus
of its region (`eventbridge`), as AWS does independently of the log files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from trailwatch.local import eventbridge, operations
from trailwatch.local.cloudtrail_delivery import LogFn, TrailDelivery, TrailRef, iter_trails, logging_trails
from trailwatch.local.cloudtrail_records import Served, build_record, utc_now
from trailwatch.local.cloudtrail_selectors import trail_covers_region, trail_selects
from trailwatch.local.operations import HttpRequest, WSGIApp, read_wsgi_body
from trailwatch.local.periodic import PeriodicThread

# Requests carrying this header are the emulator's own service machinery (the Lambda runtime polling event
# source mappings and SQS as the Lambda service does), which AWS does not log in the account's trail. The
# calls of the function code are recorded: only the runtime's own clients carry it (see `mark_internal`).
INTERNAL_HEADER = "X-Trailwatch-Internal"


class CloudTrailRecorder:
    """Records each served request and delivers the records to the emulator's trails every `interval` s."""

    def __init__(
        self,
        region: str,
        account_id: str,
        *,
        interval: float = 5.0,
        log: LogFn | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"CloudTrailRecorder: interval must be > 0 seconds, got {interval}")
        self.region = region
        self.account_id = account_id
        self.interval = interval
        self.log: LogFn = log or (lambda message: None)
        self._lock = threading.Lock()
        self._deliver_lock = threading.Lock()
        self._pending: dict[TrailRef, list[dict[str, Any]]] = {}
        self._delivery = TrailDelivery(self.log)
        self._delivery_loop = PeriodicThread("trailwatch-cloudtrail", interval, self.flush, self._failed)
        self.recorded: list[dict[str, Any]] = []  # every record built (tests, demo); bounded
        self.delivered: list[tuple[str, str]] = []  # (bucket, key) of every log and digest file written
        self.max_history = 10_000

    # ------------------------------------------------------------------ WSGI

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """A WSGI middleware around `app` that records each request it serves."""

        def middleware(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = read_wsgi_body(environ)
            request = HttpRequest.from_environ(environ, body)
            credential = operations.parse_credential(request.header("Authorization"), request.query)
            internal = request.header(INTERNAL_HEADER) is not None
            if credential is None or internal or request.path.startswith("/moto-api"):
                return app(environ, start_response)
            before = self._logging_trails_safe()
            captured: dict[str, Any] = {}

            def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                captured["status"] = int(status.split(" ", 1)[0])
                captured["headers"] = dict(headers)
                return (
                    start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
                )

            result = app(environ, capture)
            try:
                chunks = list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            served = Served(
                request,
                captured.get("status", 500),
                captured.get("headers", {}),
                b"".join(chunks),
                str(environ.get("REMOTE_ADDR", "127.0.0.1")),
            )
            try:
                self.record(served, before | self._logging_trails_safe())
            except Exception as err:  # recording must never break the call it records
                self.log(f"cloudtrail: could not record {request.method} {request.path}: {err!r}")
            return chunks

        return middleware

    def _logging_trails_safe(self) -> set[TrailRef]:
        try:
            return logging_trails(self.account_id)
        except Exception as err:
            self.log(f"cloudtrail: reading trails failed: {err!r}")
            return set()

    def record(self, served: Served, logging: set[TrailRef] | None = None) -> dict[str, Any] | None:
        """Build the record of a served request and queue it for every trail that takes it.

        `logging`: the trails logging when the call was served (before or after it: StopLogging is
        delivered, and so is the StartLogging that turns a trail on)."""
        ident = operations.identify(served.request)
        if ident is None:
            return None
        record = build_record(served, ident, self.account_id)
        account = record["recipientAccountId"]
        # the middleware snapshots the default account only
        if logging is None or account != self.account_id:
            logging = (logging or set()) | logging_trails(account)
        targets = [
            ref
            for ref, trail in iter_trails(account)
            if ref in logging and trail_covers_region(trail, record) and trail_selects(trail, record)
        ]
        with self._lock:
            self.recorded.append(record)
            del self.recorded[: -self.max_history]
            for ref in targets:
                self._pending.setdefault(ref, []).append(record)
        # EventBridge: management events with or without a trail; data events only when a trail logs them
        if record.get("managementEvent") is not False or targets:
            try:
                eventbridge.publish(record, account, self.log)
            except Exception as err:  # best effort, as in AWS
                self.log(f"eventbridge: could not publish {record.get('eventName')}: {err!r}")
        return record

    # ------------------------------------------------------------------ delivery

    def start(self) -> None:
        """Start periodic delivery (and build the operation index off the request path)."""
        if self._delivery_loop.running:
            return
        threading.Thread(target=operations.warm_up, name="trailwatch-cloudtrail-index", daemon=True).start()
        self._delivery_loop.start()

    def stop(self) -> None:
        """Stop periodic delivery, delivering what is pending."""
        self._delivery_loop.stop(timeout=30)
        self.flush()

    def forget(self) -> None:
        """Drop every record, pending delivery and digest chain, as a new recorder starts: for a local AWS
        emptied between tests (its trails and buckets are gone, so nothing pending has anywhere to go)."""
        with self._deliver_lock, self._lock:
            self._pending = {}
            self.recorded.clear()
            self.delivered.clear()
            self._delivery = TrailDelivery(self.log)

    def _failed(self, err: Exception) -> None:
        self.log(f"cloudtrail: delivery failed: {err!r}")

    def flush(self) -> list[tuple[str, str]]:
        """Deliver pending records now; the (bucket, key) of each file written."""
        with self._deliver_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            trails = {ref: trail for ref, trail in iter_trails(self.account_id)}
            for ref in {r for r in pending if r.account_id != self.account_id}:
                trails |= dict(iter_trails(ref.account_id))
            written: list[tuple[str, str]] = []
            when = utc_now()
            for ref, records in pending.items():
                trail = trails.get(ref)
                if trail is None:
                    continue  # deleted since: its records go nowhere
                written += self._delivery.deliver(ref, trail, records, when)
            with self._lock:
                self.delivered.extend(written)
                del self.delivered[: -self.max_history]
            return written


def mark_internal(client: Any) -> Any:
    """Make a boto3 client's requests the emulator's own (not recorded): for the runtime's service clients."""

    def add_header(request: Any, **_: Any) -> None:
        request.headers[INTERNAL_HEADER] = "1"

    client.meta.events.register_first("before-send.*.*", add_header)
    return client
