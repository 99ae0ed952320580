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

from . import markers, tamper
from .deps import AlertsInFlightError, Budget, BudgetExhausted, Deps, FileResult
from .file_run import FileRun
from .notifications import KeyKind, ObjectRef, classify_key

log = logging.getLogger(__name__)


def process_object(
    ref: ObjectRef, deps: Deps, *, budget: Budget | None = None, attempt: int | None = None
) -> FileResult:
    """Store and alert one log object. Raises on anything that must make the message fail (and retry).

    ``budget``: the file's share of the invocation; when it runs out the read stops at a record boundary,
    what was stored is alerted, a checkpoint is saved and BudgetExhausted is raised. ``attempt``: the SQS
    receive count (1: no checkpoint can exist yet, none is read; None: unknown, read it)."""
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

    failure = FileRun(ref, deps, result, budget).run(attempt)
    result.ms = (time.perf_counter() - started) * 1000
    if failure is not None:
        data = {**result.log_fields(), "error": type(failure).__name__, "detail": str(failure)}
        quiet = isinstance(failure, AlertsInFlightError | BudgetExhausted)
        level = logging.WARNING if quiet else logging.ERROR
        log.log(level, "failed s3://%s/%s: %s", ref.bucket, ref.key, failure, extra={"data": data})
        raise failure
    markers.note_processed(deps.dynamodb, deps.settings.events_table, ref.bucket, ref.key, deps.now())
    log.info("processed s3://%s/%s", ref.bucket, ref.key, extra={"data": result.log_fields()})
    return result
