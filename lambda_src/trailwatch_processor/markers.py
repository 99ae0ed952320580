"""The events table's items about trailwatch itself, beside the events: claimable operational markers (an
alert about trailwatch sent once overall, not once per Lambda container), per-object checkpoints and
poison markers, the config version in force, and the last log file processed.

Operational markers share the table and the alert state of events (store.py). They carry
``kind = operational`` and no ``event_day``/``rule_id``/``event_time``, so they stay out of both indexes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from .store import (
    FIELD_MAX_CHARS,
    PENDING,
    SENDING,
    Claim,
    cap,
    epoch,
    error_code,
    get_event,
    iso,
    plain,
    to_item,
)

log = logging.getLogger(__name__)

OPERATIONAL = "operational"
CONFIG_INVALID_PREFIX = "trailwatch#config-invalid#"


def config_invalid_marker_id(bucket: str, key: str, etag: str | None) -> str:
    """The marker of one invalid config version: every container computes the same id for it."""
    digest = hashlib.sha256(f"{bucket}/{key}/{etag or ''}".encode()).hexdigest()
    return CONFIG_INVALID_PREFIX + digest


def claim_marker(
    ddb: Any,
    table: str,
    marker_id: str,
    *,
    token: str,
    now: datetime,
    stale_before: datetime,
    retention_days: int,
    details: dict[str, str],
) -> Claim:
    """Create (or re-claim) an operational marker in ``sending`` with our token, in one conditional put.

    Claimable: no marker yet, a ``pending`` one (a failed publish released it), a stale ``sending`` one (its
    owner died), or an expired one TTL has not deleted yet. Otherwise report the current status.
    """
    fields: dict[str, Any] = {
        "EventId": marker_id,
        "kind": OPERATIONAL,
        "stored_at": iso(now),
        "expires_at": epoch(now + timedelta(days=retention_days)),
        "alert_status": SENDING,
        "alert_claim": token,
        "alert_claimed_at": iso(now),
    }
    fields.update({name: cap(value, FIELD_MAX_CHARS) for name, value in details.items()})
    item = to_item(fields)
    try:
        ddb.put_item(
            TableName=table,
            Item=item,
            ConditionExpression=(
                "attribute_not_exists(EventId) OR alert_status = :pending OR expires_at < :epoch OR "
                "(alert_status = :sending AND alert_claimed_at < :stale)"
            ),
            ExpressionAttributeValues=to_item(
                {":pending": PENDING, ":sending": SENDING, ":stale": iso(stale_before), ":epoch": epoch(now)}
            ),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return Claim(True, SENDING)
    except ClientError as err:
        if error_code(err) != "ConditionalCheckFailedException":
            raise
        current = err.response.get("Item") or get_event(ddb, table, marker_id)
    return Claim(False, plain(current).get("alert_status") if current else None)


# --- config versions: the digest of the config in force, and one marker per announced version --------

CONFIG_STATE_PREFIX = "trailwatch#config-state#"
CONFIG_LOADED_PREFIX = "trailwatch#config-loaded#"


@dataclass(frozen=True)
class ConfigState:
    """The config version last announced (ETag, or ``default:<digest id>``), its rule digest and a counter
    that grows by one per announced version (so A -> B -> A -> B is announced every time)."""

    version: str
    digest: dict[str, str]
    seq: int


def config_state_id(bucket: str, key: str) -> str:
    return CONFIG_STATE_PREFIX + hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()


def config_loaded_marker_id(bucket: str, key: str, seq: int, version: str) -> str:
    """The marker of one transition (state ``seq`` -> ``version``): every container computes the same id."""
    digest = hashlib.sha256(f"{bucket}/{key}/{seq}/{version}".encode()).hexdigest()
    return CONFIG_LOADED_PREFIX + digest


def get_config_state(ddb: Any, table: str, state_id: str) -> ConfigState | None:
    item = get_event(ddb, table, state_id)
    if item is None or "config_version" not in item:
        return None
    try:
        digest = json.loads(item.get("digest", {}).get("S", "{}"))
        seq = int(item.get("seq", {}).get("N", "0"))
    except ValueError:
        return None
    if not isinstance(digest, dict):
        return None
    return ConfigState(item["config_version"]["S"], {str(k): str(v) for k, v in digest.items()}, seq)


def put_config_state(
    ddb: Any, table: str, state_id: str, *, version: str, digest: dict[str, str], seq: int, now: datetime
) -> bool:
    """Record ``version`` as the config in force with counter ``seq``, only if the stored counter is
    ``seq - 1`` (or there is none): False when another container already moved it on. No TTL: the state
    must outlive the events, or the next version would look like the first."""
    try:
        ddb.put_item(
            TableName=table,
            Item={
                "EventId": {"S": state_id},
                "kind": {"S": OPERATIONAL},
                "stored_at": {"S": iso(now)},
                "config_version": {"S": version},
                "digest": {"S": json.dumps(digest, sort_keys=True, separators=(",", ":"))},
                "seq": {"N": str(seq)},
            },
            ConditionExpression="attribute_not_exists(EventId) OR seq = :previous",
            ExpressionAttributeValues={":previous": {"N": str(seq - 1)}},
        )
        return True
    except ClientError as err:
        if error_code(err) != "ConditionalCheckFailedException":
            raise
        return False


# --- last processed log file : the marker `trailwatch verify` reads -----------------

LAST_PROCESSED_PREFIX = "trailwatch#last-processed#"
LAST_PROCESSED_EVERY = timedelta(minutes=1)
_last_processed_noted: dict[str, datetime] = {}  # per container: marker id -> when this container wrote it


def last_processed_id(bucket: str) -> str:
    return LAST_PROCESSED_PREFIX + bucket


def note_processed(ddb: Any, table: str, bucket: str, key: str, now: datetime) -> bool:
    """Record ``key`` as the last log file processed from ``bucket``, at most once a minute per container
    (one write per minute, not one per file). The stored time only moves forward. A failed write is logged
    and ignored: the file itself was processed. True when written."""
    marker = last_processed_id(bucket)
    last = _last_processed_noted.get(marker)
    if last is not None and now - last < LAST_PROCESSED_EVERY:
        return False
    _last_processed_noted[marker] = now
    stamp = iso(now)
    try:
        ddb.put_item(
            TableName=table,
            Item=to_item({"EventId": marker, "kind": OPERATIONAL, "object_key": key, "processed_at": stamp}),
            ConditionExpression="attribute_not_exists(processed_at) OR processed_at < :now",
            ExpressionAttributeValues={":now": {"S": stamp}},
        )
    except ClientError as err:
        if error_code(err) != "ConditionalCheckFailedException":
            log.warning("last-processed marker not written: %s", err)
        return False
    return True


# --- checkpoints and poison files ----------------------------------------------------------------------

CHECKPOINT_PREFIX = "trailwatch#checkpoint#"
POISON_PREFIX = "trailwatch#poison-file#"
CHECKPOINT_TTL_DAYS = 15  # longer than SQS's longest retention (14 days): no message outlives its checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """How far the attempts at one log object got: the first ``matches_done`` matched records (under the
    config whose fingerprint is ``config``) are stored and alerted; ``stalls`` counts consecutive failed
    attempts that got no further."""

    matches_done: int
    records: int
    config: str
    stalls: int


def _object_digest(bucket: str, key: str, version: str | None) -> str:
    return hashlib.sha256(f"{bucket}/{key}/{version or ''}".encode()).hexdigest()


def checkpoint_id(bucket: str, key: str, version: str | None) -> str:
    """The checkpoint of one object version (versionId, or the ETag when the notification has none)."""
    return CHECKPOINT_PREFIX + _object_digest(bucket, key, version)


def poison_marker_id(bucket: str, key: str, version: str | None) -> str:
    return POISON_PREFIX + _object_digest(bucket, key, version)


def get_checkpoint(ddb: Any, table: str, marker_id: str) -> Checkpoint | None:
    item = get_event(ddb, table, marker_id)
    if item is None:
        return None
    values = plain(item)
    try:
        return Checkpoint(
            int(values.get("matches_done", 0)),
            int(values.get("records_seen", 0)),
            str(values.get("config_fingerprint", "")),
            int(values.get("stalls", 0)),
        )
    except (TypeError, ValueError):
        return None


def put_checkpoint(
    ddb: Any,
    table: str,
    marker_id: str,
    checkpoint: Checkpoint,
    *,
    bucket: str,
    key: str,
    now: datetime,
) -> bool:
    """Write the checkpoint unless a concurrent attempt already recorded more progress under the same config
    (progress never moves back). False when that happened. The object is named ``object_bucket`` and
    ``object_key``, not ``log_key``: readers that select events by their log file must not see markers."""
    fields = {
        "EventId": marker_id,
        "kind": OPERATIONAL,
        "object_bucket": bucket,
        "object_key": cap(key, FIELD_MAX_CHARS),
        "matches_done": checkpoint.matches_done,
        "records_seen": checkpoint.records,
        "config_fingerprint": checkpoint.config,
        "stalls": checkpoint.stalls,
        "stored_at": iso(now),
        "expires_at": epoch(now + timedelta(days=CHECKPOINT_TTL_DAYS)),
    }
    try:
        ddb.put_item(
            TableName=table,
            Item=to_item(fields),
            ConditionExpression=(
                "attribute_not_exists(EventId) OR config_fingerprint <> :config OR matches_done <= :done"
            ),
            ExpressionAttributeValues=to_item(
                {":config": checkpoint.config, ":done": checkpoint.matches_done}
            ),
        )
        return True
    except ClientError as err:
        if error_code(err) != "ConditionalCheckFailedException":
            raise
        return False
