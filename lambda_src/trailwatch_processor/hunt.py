"""Hunts: a new rule set run over past log files by the same function.

`trailwatch hunt` (cli/trailwatch/hunt.py) writes a hunt's rules to ``hunts/<id>/config.json`` in the config
bucket and its meta item (``hunt#<id>#meta``) to the events table, then sends one message per log file to the
hunt queue: ``{"trailwatch": "hunt", "hunt_id": ..., "bucket": ..., "key": ..., "version_id"?}``. This module
handles such a message: it reads the file with the live path's reader and matcher (``logfile.iter_matches``)
under the HUNT's rules only (validated with the processor's own validator) and stores each match apart from
live detections. Live alert state is never touched: every hunt item has its own key.

Items (all carry ``kind``, so nothing that lists live events sees them; none carries ``rule_id``, so none is
in the ByRule index):

- ``hunt#<id>#ev#<eventID>`` (``kind`` hunt-match): one per matching event per hunt, written with a
  conditional put, so an event found in two files (CloudTrail may deliver a record twice) or a file delivered
  twice is stored once. The file that created it "owns" it (``log_bucket``/``log_key``): only the owner counts
  it and alerts it. In the ByDay index under partition ``hunt#<id>`` (sort: event_time): the results list.
- ``hunt#<id>#file#<digest>`` (``kind`` hunt-file): the file's terminal state, ``done`` or ``failed``
  (with the error), and the number of events it owns. One per file: rewriting it (a redelivery) writes the
  same count, so progress, read from the markers, counts each file once. Written after the batch (one
  BatchWriteItem for up to 25 files). In the ByDay index under ``hunt#<id>#files#<shard>`` (8 shards, so
  that no index partition takes every write of a fast hunt): progress and failed files are Queries, never
  a Scan.

Exactly once per event: ownership is decided by the conditional put; a retry after a crash finds its own items
(same file) and counts them again; the marker is written last, after any alert.
Alerts (hunts started with ``--alert`` only): a new match item is born claimed (``sending``) and follows the
live items' alert protocol (store.py): published once per primary rule per file, then marked ``sent``.

Failures: a corrupt file (not gzip/JSON) or a missing object is marked ``failed`` at once (retrying cannot
help); any other error fails the message, and its last receive (MAX_RECEIVE_COUNT) marks the file ``failed``
so a hunt always finishes with every file listed as done or failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from . import claims, hunt_markers, records, store
from .config_load import parse_config
from .deps import AlertsInFlightError, Deps, ObjectMissingError, get_object
from .log_stream import LogFileError
from .logfile import FileStats, iter_matches
from .notifications import NotificationError, ObjectRef
from .patterns import Matcher, compile_config

log = logging.getLogger(__name__)

MARK = "hunt"  # the value of "trailwatch" in a hunt message
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PREFIX = "hunt#"
KIND_META = "hunt-meta"
KIND_MATCH = "hunt-match"
KIND_FILE = "hunt-file"
DONE = "done"
FAILED = "failed"
FILE_SHARDS = 8
ERROR_MAX_CHARS = 1000
SPEC_CACHE_MAX = 16


# ---------------------------------------------------------------- names shared with the CLI
def meta_id(hunt_id: str) -> str:
    return f"{PREFIX}{hunt_id}#meta"


def match_id(hunt_id: str, event_id: str) -> str:
    return f"{PREFIX}{hunt_id}#ev#{event_id}"


def file_digest(bucket: str, key: str) -> str:
    return hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:40]


def file_marker_id(hunt_id: str, bucket: str, key: str) -> str:
    return f"{PREFIX}{hunt_id}#file#{file_digest(bucket, key)}"


def results_partition(hunt_id: str) -> str:
    """The ByDay partition holding a hunt's match items."""
    return f"{PREFIX}{hunt_id}"


def files_partition(hunt_id: str, shard: int) -> str:
    return f"{PREFIX}{hunt_id}#files#{shard}"


def file_shard(bucket: str, key: str) -> int:
    return int(file_digest(bucket, key)[:8], 16) % FILE_SHARDS


def config_key(hunt_id: str) -> str:
    return f"hunts/{hunt_id}/config.json"


def manifest_key(hunt_id: str) -> str:
    return f"hunts/{hunt_id}/manifest.json.gz"


def valid_id(hunt_id: object) -> bool:
    return isinstance(hunt_id, str) and bool(ID_PATTERN.match(hunt_id))


def message_body(hunt_id: str, bucket: str, key: str, version_id: str | None = None) -> str:
    doc: dict[str, str] = {"trailwatch": MARK, "hunt_id": hunt_id, "bucket": bucket, "key": key}
    if version_id:
        doc["version_id"] = version_id
    return json.dumps(doc, separators=(",", ":"))


# ---------------------------------------------------------------- messages
@dataclass(frozen=True)
class HuntRequest:
    hunt_id: str
    ref: ObjectRef


def parse_message(message: dict, hunt_queue_arn: str | None) -> HuntRequest | None:
    """The hunt request of an SQS record, None when it is no hunt message. A record from the hunt queue
    that is not a well-formed hunt request raises NotificationError (it goes to the hunt DLQ)."""
    body = message.get("body")
    from_hunt_queue = bool(hunt_queue_arn) and message.get("eventSourceARN") == hunt_queue_arn
    doc: Any = None
    if isinstance(body, str) and '"trailwatch"' in body:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested too deep: no hunt request
            doc = None
    if not (isinstance(doc, dict) and doc.get("trailwatch") == MARK):
        if from_hunt_queue:
            raise NotificationError("a message on the hunt queue that is not a hunt request")
        return None
    hunt_id, bucket, key = doc.get("hunt_id"), doc.get("bucket"), doc.get("key")
    version = doc.get("version_id")
    if not valid_id(hunt_id):
        raise NotificationError(f"hunt request: invalid hunt_id {str(hunt_id)[:80]!r}")
    if not (isinstance(bucket, str) and bucket and isinstance(key, str) and key):
        raise NotificationError("hunt request: bucket and key must be non-empty strings")
    if version is not None and not isinstance(version, str):
        raise NotificationError("hunt request: version_id must be a string")
    return HuntRequest(hunt_id, ObjectRef(bucket=bucket, key=key, version_id=version or None))


# ---------------------------------------------------------------- the hunt's rules, per container
@dataclass(frozen=True)
class HuntSpec:
    hunt_id: str
    matcher: Matcher
    alert: bool


_specs: dict[str, HuntSpec] = {}


class HuntNotFound(Exception):
    """No meta item for the hunt id (deleted, expired, or a forged message)."""


def load_spec(hunt_id: str, deps: Deps) -> HuntSpec:
    """The hunt's rules and alert flag, read once per container (a hunt's config never changes)."""
    spec = _specs.get(hunt_id)
    if spec is not None:
        return spec
    table = deps.settings.events_table
    item = store.get_event(deps.dynamodb, table, meta_id(hunt_id))
    if item is None:
        raise HuntNotFound(f"hunt {hunt_id}: no meta item {meta_id(hunt_id)} in {table}")
    meta = store.plain(item)
    key = str(meta.get("config_key") or config_key(hunt_id))
    owner = getattr(deps.config, "expected_owner", None)
    params = {"ExpectedBucketOwner": owner} if owner else {}
    body = deps.s3.get_object(Bucket=deps.settings.config_bucket, Key=key, **params)["Body"].read()
    config = parse_config(body, source=f"s3://{deps.settings.config_bucket}/{key}")
    spec = HuntSpec(hunt_id, compile_config(config), bool(meta.get("alert")))
    if len(_specs) >= SPEC_CACHE_MAX:
        _specs.pop(next(iter(_specs)))
    _specs[hunt_id] = spec
    return spec


# ---------------------------------------------------------------- one file
@dataclass
class HuntFileResult:
    hunt_id: str
    bucket: str
    key: str
    status: str = ""  # done, failed, or "already" (a marker existed: nothing was read)
    records: int = 0
    matched: int = 0
    owned: int = 0  # matching events this file stored first: what the hunt counts for it
    alerts: int = 0
    error: str | None = None

    def log_fields(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Owned:
    hunt_item_id: str
    event_id: str
    rule_id: str
    title: str
    severity: str
    description: str | None
    summary: dict[str, str] | None
    stored: store.Item  # its alert state as read or written (claims.claim_existing reads it)
    claimed_by_us: bool = False


@dataclass
class _Pending:
    event_id: str
    item: store.Item
    rules: list
    summary: dict[str, str]


@dataclass
class _FileHunt:
    request: HuntRequest
    spec: HuntSpec
    deps: Deps
    result: HuntFileResult
    token: str = ""
    pending: list[_Pending] = field(default_factory=list)
    owned: list[_Owned] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    stats: FileStats = field(default_factory=FileStats)

    def read(self) -> None:
        """Every match of the file stored (or found stored); ``owned`` ends with this file's events."""
        ref = self.request.ref
        body = get_object(self.deps.s3, ref, self.deps.bucket_owner)
        try:
            for record, rules in iter_matches(body, self.spec.matcher, self.stats):
                self._add(record, rules)
                if len(self.pending) >= store.BATCH_GET_MAX:
                    self._store()
        finally:
            body.close()
            self.result.records = self.stats.records
        self._store()

    def _add(self, record: dict, rules: list) -> None:
        self.result.matched += 1
        hunt_id, ref, deps = self.spec.hunt_id, self.request.ref, self.deps
        item = store.build_item(
            record,
            rules,
            log_bucket=ref.bucket,
            log_key=ref.key,
            now=deps.now(),
            retention_days=deps.settings.retention_days,
        )
        event_id = item["EventId"]["S"]
        if event_id in self.seen:  # the same event twice in one file
            return
        self.seen.add(event_id)
        item["EventId"] = {"S": match_id(hunt_id, event_id)}
        item["event_id"] = {"S": event_id}
        item["event_day"] = {"S": results_partition(hunt_id)}  # the ByDay partition of the hunt's results
        item["primary_rule"] = item.pop("rule_id")  # no rule_id: never in the ByRule index of live events
        item["kind"] = {"S": KIND_MATCH}
        item["hunt_id"] = {"S": hunt_id}
        if self.spec.alert:
            item = store.with_claim(item, token=self.token, now=deps.now())
        else:
            item.pop("alert_status", None)
        self.pending.append(_Pending(event_id, item, rules, records.summary(record)))

    def _store(self) -> None:
        """One BatchGetItem for the chunk, then a conditional put for each absent event."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        deps, table, ref = self.deps, self.deps.settings.events_table, self.request.ref
        existing = store.batch_get(
            deps.dynamodb, table, [p.item["EventId"]["S"] for p in batch], _OWNER_ATTRIBUTES, who="hunt"
        )
        for entry in batch:
            stored = existing.get(entry.item["EventId"]["S"])
            created = False
            if stored is None:
                outcome = store.put_event(deps.dynamodb, table, entry.item)
                created, stored = outcome.created, outcome.item
            plain = store.plain(stored)
            if plain.get("log_bucket") != ref.bucket or plain.get("log_key") != ref.key:
                continue  # another file of this hunt stored the event first: it counts it
            rule = claims.find_rule(str(plain.get("primary_rule") or ""), entry.rules)
            title = rule.title if rule is not None and rule.title else None
            self.owned.append(
                _Owned(
                    hunt_item_id=entry.item["EventId"]["S"],
                    event_id=entry.event_id,
                    rule_id=str(plain.get("primary_rule") or entry.item["primary_rule"]["S"]),
                    title=title or str(plain.get("primary_rule")),
                    severity=str(plain.get("severity") or "medium"),
                    description=rule.description if rule is not None else None,
                    summary=entry.summary,
                    stored=stored,
                    claimed_by_us=created and self.spec.alert,
                )
            )
        self.result.owned = len(self.owned)

    def alert(self) -> None:
        """Alert the owned events not alerted yet (alerting hunts only): one message per primary rule."""
        if not self.spec.alert:
            return
        groups: dict[str, list[_Owned]] = {}
        in_flight = 0
        for owned in self.owned:
            if not owned.claimed_by_us:
                claim = claims.claim_existing(self.deps, owned.hunt_item_id, owned.stored, self.token)
                if claim.state != claims.CLAIMED:
                    # Gone (TTL) counts as in flight, as before: the retry stores and alerts it again.
                    in_flight += claim.state in (claims.IN_FLIGHT, claims.GONE)
                    continue
            groups.setdefault(owned.rule_id, []).append(owned)
        for rule_id, members in groups.items():
            self._publish(rule_id, members)
        if in_flight:
            raise AlertsInFlightError(f"{in_flight} hunt event(s) are being alerted by another invocation")

    def _publish(self, rule_id: str, members: list[_Owned]) -> None:
        """One message for the rule's claimed match items (claims.publish_events: released if it fails)."""
        ref, hunt_id, first = self.request.ref, self.spec.hunt_id, members[0]
        claims.publish_events(
            self.deps,
            self.token,
            rule_id=rule_id,
            title=f"Hunt {hunt_id}: {first.title}",
            severity=first.severity,
            description=first.description,
            event_ids=[m.event_id for m in members],
            events=[m.summary for m in members if m.summary is not None],
            path=None,
            log_bucket=ref.bucket,
            log_key=ref.key,
            extra={"hunt_id": hunt_id},
            item_ids=[m.hunt_item_id for m in members],
            timed=False,
        )
        self.result.alerts += 1


_OWNER_ATTRIBUTES = "EventId, log_bucket, log_key, primary_rule, severity, alert_status, alert_claimed_at"


def process_hunt(
    request: HuntRequest, deps: Deps, *, attempt: int | None = None, message_id: str = ""
) -> HuntFileResult:
    """Hunt one file; its marker is queued for ``hunt_markers.flush`` (the handler calls it after the
    batch).
    Returns normally when the file is done or failed; raises when a retry may succeed (an AWS error before
    the last receive, events in flight elsewhere)."""
    ref, hunt_id = request.ref, request.hunt_id
    result = HuntFileResult(hunt_id, ref.bucket, ref.key)
    spec = load_spec(hunt_id, deps)
    run = _FileHunt(request, spec, deps, result, token=deps.new_token())
    error: str | None = None
    try:
        run.read()
    except (LogFileError, ObjectMissingError) as err:  # retrying cannot help: listed as failed at once
        error = f"{type(err).__name__}: {err}"
    except Exception as err:
        if not deps.last_receive(attempt):
            raise
        error = f"{type(err).__name__}: {err} (receive {attempt} of {deps.settings.max_receive_count})"
    run.alert()  # what was stored is alerted, also for a file that failed halfway
    result.status, result.error = (FAILED, error) if error else (DONE, None)
    hunt_markers.queue(message_id, marker_item(deps, request, result))
    level = logging.WARNING if error else logging.INFO
    log.log(level, "hunt file %s", result.status, extra={"data": result.log_fields()})
    return result


def marker_item(deps: Deps, request: HuntRequest, result: HuntFileResult) -> store.Item:
    """The file's terminal state. Written unconditionally: a file has one marker whatever the number of
    deliveries, and every delivery computes the same owned count (ownership is fixed by the conditional
    puts of the match items), so rewriting it never counts anything twice."""
    ref, hunt_id = request.ref, request.hunt_id
    now = deps.now()
    values: dict[str, Any] = {
        "EventId": file_marker_id(hunt_id, ref.bucket, ref.key),
        "kind": KIND_FILE,
        "hunt_id": hunt_id,
        "event_day": files_partition(hunt_id, file_shard(ref.bucket, ref.key)),
        "event_time": ref.key,
        "log_bucket": ref.bucket,
        "log_key": ref.key,
        "status": result.status,
        "matches": result.owned,
        "records": result.records,
        "finished_at": store.iso(now),
        "expires_at": int((now + timedelta(days=deps.settings.retention_days)).timestamp()),
    }
    if result.error:
        values["error"] = result.error[:ERROR_MAX_CHARS]
    return store.to_item(values)
