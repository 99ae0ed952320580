"""One attempt at one log object (``FileRun``): read its matches, store them in batches, flush alerts as
it goes, and keep within the file's time share; a failed attempt saves a checkpoint of the matched records
handled, and a file that stops progressing is declared poison (reports.report_poison_file).

The alert state of each item (store.py) makes every stored event alerted exactly once; see processor.py.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import (
    batch_writes,
    claims,
    config_diff,
    markers,
    noise,
    noise_state,
    record_issues,
    records,
    store,
    tamper,
)
from .deps import (
    AlertsInFlightError,
    Budget,
    BudgetExhausted,
    Deps,
    FileResult,
    object_version,
)
from .deps import get_object as _get_object  # the name tests/functional/test_bucket_owner.py imports
from .log_stream import open_log
from .logfile import FileStats, iter_matches
from .notifications import ObjectRef
from .reports import report_poison_file

log = logging.getLogger(__name__)

SUMMARIES_KEPT_PER_RULE = 200  # bounded memory for files with very many matches
STORE_CHUNK = store.BATCH_GET_MAX  # matched records stored together (one BatchGetItem)
ALERT_EVERY_EVENTS = 500  # stored events alerted at the latest after this many...
ALERT_EVERY_SECONDS = 5.0  # ...or this long: a file that fails later has already alerted what it found
POISON_STALLS = 2  # failed attempts in a row without progress that make a file poison
# The alerts a file still owes are costed at the measured time of a put; a loaded service makes the calls
# after the stop (mark_sent, Publish) slower than that, and the error grows with the number owed while the
# reserve after the shares is fixed. So the owed time counts double, and alerts are flushed as soon as the
# raw estimate reaches a quarter of the share left: the estimate may be 2x off without a timeout.
OWED_MARGIN = 2.0


@dataclass
class _Group:
    """This file's events of one primary rule that may still need an alert."""

    rule_id: str
    title: str
    severity: str
    description: str | None
    event_ids: list[str] = field(default_factory=list)
    summaries: dict[str, dict[str, str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # alerts.Alert.extra (noise control's notes)


class _Stop(Exception):
    """The file's budget ran out (raised by _Watched between reads, or before handling a match)."""


class _Watched(io.RawIOBase):
    """A stream that checks the budget before each read: a file that is slow to read (huge, slow to fetch,
    or a gzip bomb) stops between chunks even when none of its records match."""

    def __init__(self, inner: Any, expired: Callable[[], bool]) -> None:
        self._inner = inner
        self._expired = expired

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._expired():
            raise _Stop()
        return self._inner.read(size)

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


@dataclass
class _Pending:
    """A matched record read but not stored yet."""

    ordinal: int  # its position among the file's matched records
    event_id: str
    item: store.Item | None  # None: the same event earlier in this file
    rules: list
    summary: dict[str, str] | None
    position: tuple = (None, None)  # (record index, byte offset) in the file, for a record issue
    noise: noise.Plan | None = None  # noise control (suppression, dedup, threshold), decided when stored


def _code_digest() -> str:
    """The processor package's source: another reader or matcher may count matched records differently."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


_CODE_DIGEST = _code_digest()


def config_fingerprint(matcher: Any) -> str:
    """Names the rules in force and the code reading with them: a checkpoint (a count of matched records)
    is only valid under both; after a config change or a deploy the retry starts again from the top."""
    rules = config_diff.digest_id(config_diff.config_digest(getattr(matcher, "rules", ())))
    return f"{rules}:{_CODE_DIGEST}"


class FileRun:
    """One attempt at one log object: matches are stored STORE_CHUNK at a time (one BatchGetItem, then the
    new events born claimed in one TransactWriteItems of conditional puts: batch_writes) and alerted every
    ALERT_EVERY_EVENTS events or ALERT_EVERY_SECONDS, so a file that fails later has already alerted what it
    found.

    Progress is the number of leading matched records that are handled: stored, and their alert sent
    (or sent before). Only that prefix goes into the checkpoint: an event whose alert failed or is in
    flight elsewhere holds it back, so the retry comes back to it."""

    def __init__(self, ref: ObjectRef, deps: Deps, result: FileResult, budget: Budget | None) -> None:
        self.ref, self.deps, self.result, self.budget = ref, deps, result, budget
        self.table = deps.settings.events_table
        self.token = deps.new_token()  # one claim token for every event this attempt claims
        self.matcher: Any = None
        self.suppressions: Any = ()  # the matcher's config's, read once per attempt (run)
        self.pending: list[_Pending] = []
        self.groups: dict[str, _Group] = {}
        self.unalerted = 0
        self.open: dict[str, int] = {}  # stored, alert not confirmed: event id -> ordinal
        self.handled = 0  # ordinals below this are stored (or duplicates)
        self.seen: set[str] = set()
        self.last_alert = deps.monotonic()
        self.stopped = False
        self.puts, self.put_seconds = 0, 0.0  # measured cost of a DynamoDB write
        self.chunks, self.chunk_seconds = 0, 0.0  # measured cost of storing a chunk (read states, write)
        self.stats = FileStats(records=0, parsed=0, matched=0, skipped_non_objects=0, fast_path=False)

    def expired(self) -> bool:
        """The share is over, counting the time the alerts still owed will take: the events claimed and not
        yet alerted cost one mark-sent transaction per 100 (and one per group for its rest), each group one
        Publish, at the measured time of a write call."""
        if self.stopped:  # _store stopped mid-chunk: reading on after a flush would skip the dropped rest
            return True
        if self.budget is None:
            return False
        return self.budget.left() <= self._owed()

    def _owed(self, upcoming: int = 0) -> float:
        """Seconds the alerts still owed (and ``upcoming`` more calls) may take, with OWED_MARGIN."""
        per_call = self.put_seconds / self.puts if self.puts else 0.0
        calls = self.unalerted / batch_writes.TRANSACT_MAX_ACTIONS + 2 * len(self.groups) + upcoming
        return OWED_MARGIN * calls * per_call

    def _chunk_fits(self) -> bool:
        """Time is left to store one more chunk (its BatchGetItem and write, at the measured time of a chunk)
        and to alert it (one more mark-sent call): with 100 items per call, one call is not negligible."""
        if self.budget is None:
            return True
        chunk = self.chunk_seconds / self.chunks if self.chunks else 0.0
        return self.budget.left() > self._owed(upcoming=1) + chunk

    def run(self, attempt: int | None) -> Exception | None:
        """Read, store and alert; returns the error that makes the message fail, if any."""
        deps, ref, result = self.deps, self.ref, self.result
        self.matcher = deps.config.matcher()
        self.suppressions = getattr(getattr(self.matcher, "config", None), "suppressions", ())
        fingerprint = config_fingerprint(self.matcher)
        marker = markers.checkpoint_id(ref.bucket, ref.key, object_version(ref))
        previous = markers.get_checkpoint(deps.dynamodb, self.table, marker) if attempt != 1 else None
        if previous is not None and previous.config != fingerprint:
            previous = None  # other rules: other matches; start again (the writes are idempotent)
        skip = previous.matches_done if previous is not None else 0
        self.handled = result.resumed_from = skip
        stats = self.stats
        failure: Exception | None = None
        body = _get_object(deps.s3, ref, deps.bucket_owner)
        ordinal = 0
        try:
            # Watched on both sides of the decompression: slow object reads, and gzip bombs.
            stream = _Watched(open_log(_Watched(body, self.expired)), self.expired)
            for record, rules in iter_matches(stream, self.matcher, stats):
                if ordinal < skip:  # handled by an earlier attempt: counted, not stored again
                    ordinal += 1
                    continue
                if self.expired():
                    raise _Stop()
                try:
                    self._add(record, rules, ordinal)
                except Exception as err:  # one record we cannot build an item of must not stop its file
                    if not record_issues.is_record_fault(err):
                        raise
                    stats.add_issue("store_error", f"{type(err).__name__}: {err}")
                ordinal += 1
                if len(self.pending) >= STORE_CHUNK:
                    self._store()
                if self._alert_due():
                    self._alert()
        except _Stop:
            self.stopped = True
        except Exception as err:
            failure = err
        finally:
            body.close()
        # What was read is stored (until the budget runs out) and alerted, also after a failed read.
        for step in (self._store, self._alert):
            try:
                step()
            except Exception as err:
                if failure is None:
                    failure = err
                else:
                    log.exception("after a failed read of s3://%s/%s, %s failed", ref.bucket, ref.key, step)
        if not self.stopped:  # a second version of this key is a tamper alert; after the read: nothing waits
            try:
                result.alerts += tamper.check_overwrite(ref, deps)
            except Exception as err:
                failure = failure or err
        result.records, result.fast_path = stats.records, stats.fast_path
        result.record_issues, result.record_issue_count = stats.issues, stats.issue_count
        if not self.stopped:  # the whole file was read: its record issues are complete, reported once
            try:
                record_issues.report(ref, stats.issues, stats.issue_count, deps)
            except Exception as err:
                failure = failure or err
        result.stopped = self.stopped
        if failure is None and self.stopped:
            failure = BudgetExhausted(
                f"the file's time share ran out after {self._confirmed()} matched record(s) handled "
                f"({stats.records} record(s) read); the retry resumes from the checkpoint"
            )
        if failure is None and result.in_flight:
            failure = AlertsInFlightError(
                f"{result.in_flight} event(s) are being alerted by another invocation; "
                "the message will be retried to confirm"
            )
        if failure is not None:
            self._save_progress(marker, previous, skip, fingerprint, stats.records, attempt, failure)
        return failure

    def _add(self, record: dict, rules: list, ordinal: int) -> None:
        self.result.matched += 1
        now = self.deps.now()
        item = store.build_item(
            record,
            rules,
            log_bucket=self.ref.bucket,
            log_key=self.ref.key,
            now=now,
            retention_days=self.deps.settings.retention_days,
        )
        event_id = item["EventId"]["S"]
        if event_id in self.seen:  # the same event twice in one file
            self.pending.append(_Pending(ordinal, event_id, None, rules, None))
            return
        self.seen.add(event_id)
        summary = records.summary(record, self.ref.key)
        plan = noise.plan(record, store.primary_rule(rules), self.suppressions, now)
        self.pending.append(_Pending(ordinal, event_id, item, rules, summary, self.stats.current, plan))

    def _store(self) -> None:
        """Store the pending matches in order: one BatchGetItem learns which exist (and their alert state);
        the new ones are written born claimed, up to 100 per conditional TransactWriteItems (batch_writes:
        a racing writer's item is never reset), before anything of the chunk is handled."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        deps, result = self.deps, self.result
        if self.stopped or not self._chunk_fits():
            self.stopped = True  # nothing of this chunk written: the retry reads it again
            return
        started = deps.monotonic()
        wanted = [p.event_id for p in batch if p.item is not None]
        states = store.batch_get_states(deps.dynamodb, self.table, wanted) if wanted else {}
        new = [p for p in batch if p.item is not None and p.event_id not in states]
        written: dict[str, batch_writes.Written] = {}
        prepared: dict[str, tuple[store.Item, bool]] = {}  # event id -> (item to write, to be alerted)
        if new:
            began = deps.monotonic()
            # Born claimed, or quiet by noise control (suppressed, grouped, below a threshold: never claimed).
            prepared = {
                p.event_id: noise_state.item_to_store(deps, p.noise, p.event_id, p.item, self.token)  # type: ignore[arg-type]
                for p in new
            }
            written = batch_writes.put_new_events(
                deps.dynamodb, self.table, [i for i, _ in prepared.values()]
            )
            self.puts += -(-len(new) // batch_writes.TRANSACT_MAX_ACTIONS)
            self.put_seconds += deps.monotonic() - began
        self.chunks, self.chunk_seconds = self.chunks + 1, self.chunk_seconds + deps.monotonic() - started
        for entry in batch:
            if entry.item is None:
                result.duplicates += 1
            elif entry.event_id in written:
                self._written(entry, written[entry.event_id], *prepared[entry.event_id])
            elif self.stopped or self.expired():
                # Claims of existing items cost a call each: stop here (the retry comes back to this one);
                # the new events after it are ours and still alerted.
                self.stopped = True
                continue
            else:
                result.duplicates += 1
                self._existing(entry, states[entry.event_id])
            if not self.stopped:
                self.handled = entry.ordinal + 1

    def _written(self, entry: _Pending, outcome: batch_writes.Written, ours: store.Item, alert: bool) -> None:
        """A new event's write: ours to alert, a racing writer's (handled as existing), or refused."""
        if outcome.error is not None:  # the table refuses this one record: report it, store the rest
            if not record_issues.is_record_fault(outcome.error):
                raise outcome.error
            index, offset = entry.position
            self.stats.add_issue(
                "store_error", f"{type(outcome.error).__name__}: {outcome.error}", index, offset
            )
        elif outcome.created:
            self.result.stored += 1
            if alert:  # else quiet: suppressed, grouped or below a threshold (noise control)
                self._alert_new(entry, ours)
        elif alert and noise_state.take_over_crossing(self.deps, ours, outcome.item, self.token):
            # This event crossed a threshold; a racing invocation had stored it as below the threshold.
            self.result.duplicates += 1
            self._alert_new(entry, ours)
        else:  # written by a racing invocation since the BatchGetItem
            self.result.duplicates += 1
            self._existing(entry, outcome.item)  # type: ignore[arg-type]

    def _alert_new(self, entry: _Pending, ours: store.Item) -> None:
        """An event whose item we wrote (or took over), claimed: into its rule's alert, with noise notes."""
        rule_id = ours["rule_id"]["S"]
        self._to_alert(entry, rule_id, ours["severity"]["S"])
        noise_state.annotate(self.groups[rule_id].extra, entry.noise)

    def _existing(self, entry: _Pending, stored: store.Item) -> None:
        """An event already in the table: claim its alert unless sent or claimed by a live invocation."""
        claims.add_log_file(self.deps, entry.event_id, stored, self.ref.bucket, self.ref.key)  # fast path's
        claim = claims.claim_existing(self.deps, entry.event_id, stored, self.token)
        if claim.state == claims.CLAIMED:
            # Group by the rule stored on the item: an earlier attempt may have run under another config.
            rule_id = claim.rule_id or entry.item["rule_id"]["S"]  # type: ignore[index]
            self._to_alert(entry, rule_id, claim.severity)
        elif claim.state == claims.IN_FLIGHT:
            self._in_flight(entry)

    def _in_flight(self, entry: _Pending) -> None:
        self.result.in_flight += 1
        self.open[entry.event_id] = entry.ordinal

    def _to_alert(self, entry: _Pending, rule_id: str, severity: str | None) -> None:
        group = self.groups.get(rule_id)
        if group is None:
            rule = claims.find_rule(rule_id, [*entry.rules, *getattr(self.matcher, "rules", ())])
            title = rule.title if rule and rule.title else rule_id
            group = self.groups[rule_id] = _Group(
                rule_id,
                title,
                severity or (rule.severity if rule else "medium"),
                rule.description if rule else None,
            )
        group.event_ids.append(entry.event_id)
        if entry.summary is not None and len(group.summaries) < SUMMARIES_KEPT_PER_RULE:
            group.summaries[entry.event_id] = entry.summary
        self.open[entry.event_id] = entry.ordinal
        self.unalerted += 1

    def _alert_due(self) -> bool:
        if not self.unalerted:
            return False
        elapsed = self.deps.monotonic() - self.last_alert
        if self.unalerted >= ALERT_EVERY_EVENTS or elapsed >= ALERT_EVERY_SECONDS:
            return True
        # Owed work large against the share left: flush now rather than owe it at the stop.
        return self.budget is not None and self._owed() >= self.budget.left() / 2

    def _alert(self) -> None:
        """One message per group claimed since the last flush; every group is attempted, the first
        failure is raised at the end (its claims are released: the retry alerts them)."""
        groups, self.groups = self.groups, {}
        self.unalerted, self.last_alert = 0, self.deps.monotonic()
        first_error: Exception | None = None
        for group in groups.values():
            try:
                _publish_group(group, self.ref, self.deps, self.token)
            except Exception as err:
                log.error(
                    "alert for rule %s of s3://%s/%s failed: %s",
                    group.rule_id,
                    self.ref.bucket,
                    self.ref.key,
                    err,
                )
                first_error = first_error or err
                continue
            for event_id in group.event_ids:
                self.open.pop(event_id, None)
            self.result.alerts += 1
            self.result.alerted_events += len(group.event_ids)
        if first_error is not None:
            raise first_error

    def _confirmed(self) -> int:
        """Leading matched records that are handled: stored, and their alert confirmed."""
        return min(self.open.values(), default=self.handled)

    def _save_progress(
        self,
        marker: str,
        previous: markers.Checkpoint | None,
        skip: int,
        fingerprint: str,
        records_seen: int,
        attempt: int | None,
        failure: Exception,
    ) -> None:
        """Checkpoint a failed attempt; declare the file poison when attempts stop progressing or this was
        the queue's last receive. Never raises: the original failure is what the message reports."""
        deps, ref = self.deps, self.ref
        done = self._confirmed()
        stalls = previous.stalls if previous is not None else 0
        if done > skip:
            stalls = 0
        elif not isinstance(failure, AlertsInFlightError):  # another invocation's work is no stall
            stalls += 1
        self.result.checkpoint = done
        try:
            markers.put_checkpoint(
                deps.dynamodb,
                self.table,
                marker,
                markers.Checkpoint(done, records_seen, fingerprint, stalls),
                bucket=ref.bucket,
                key=ref.key,
                now=deps.now(),
            )
        except Exception as err:
            log.warning("s3://%s/%s: saving the checkpoint failed: %s", ref.bucket, ref.key, err)
        last = deps.last_receive(attempt)
        if stalls < POISON_STALLS and not last:
            return
        limit = deps.settings.max_receive_count
        reason = (
            f"receive {attempt} of {limit}: the message goes to the dead-letter queue"
            if last
            else f"{stalls} attempts in a row made no progress"
        )
        try:
            report_poison_file(ref, f"{reason}; last error: {type(failure).__name__}: {failure}", done, deps)
        except Exception as err:
            log.warning("s3://%s/%s: the poison alert failed: %s", ref.bucket, ref.key, err)


def _publish_group(group: _Group, ref: ObjectRef, deps: Deps, token: str) -> None:
    """Publish one message for the group's events (all claimed with ``token``), then mark them sent."""
    claims.publish_events(
        deps,
        token,
        rule_id=group.rule_id,
        title=group.title,
        severity=group.severity,
        description=group.description,
        event_ids=group.event_ids,
        events=[group.summaries[e] for e in group.event_ids if e in group.summaries],
        path=store.PATH_S3,
        log_bucket=ref.bucket,
        log_key=ref.key,
        extra=group.extra,
    )
