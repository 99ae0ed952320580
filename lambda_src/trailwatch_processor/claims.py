"""The alert of stored events, shared by both ways in: a log file (``file_run.FileRun``) and the fast path
(``fast_path.process_event``). One protocol, so an event delivered by both is alerted once (store.py has the
state machine: ``pending`` -> ``sending`` (claimed) -> ``sent``).

* ``claim_existing``: an event already in the table is claimed only when ``pending`` or its claim is stale;
  ``sent`` is never sent again; a live claim is another invocation's work (``IN_FLIGHT``).
* ``publish_events``: one SNS message for one rule's claimed events, then each is marked ``sent``; a failed
  publish releases the claims (back to ``pending``) and raises.
* ``add_log_file``: the log file that brings an event the fast path stored names itself on the item.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from . import alerts, batch_writes, noise, store
from .deps import Deps, release_claims

log = logging.getLogger(__name__)

CLAIMED = "claimed"  # ours now: alert it
SENT = "sent"  # alerted before: nothing to do
IN_FLIGHT = "in_flight"  # claimed by another live invocation
GONE = "gone"  # vanished from the table (TTL) before it was alerted


@dataclass(frozen=True)
class ExistingClaim:
    state: str  # CLAIMED, SENT, IN_FLIGHT or GONE
    rule_id: str | None = None  # CLAIMED: the rule stored on the item (an earlier config's, maybe)
    severity: str | None = None


def claim_existing(deps: Deps, event_id: str, stored: store.Item, token: str) -> ExistingClaim:
    """Claim the alert of an event found in the table (``stored``: its alert state, as read or returned by
    the failed conditional put) unless it is sent or claimed by a live invocation."""
    status = stored.get("alert_status", {}).get("S")
    if status == store.SENT or status in noise.QUIET_STATUSES:  # quiet: suppressed, grouped, below threshold
        return ExistingClaim(SENT)
    now = deps.now()
    stale_before = now - timedelta(seconds=deps.claim_stale_seconds)
    claimed_at = stored.get("alert_claimed_at", {}).get("S", "")
    if status == store.SENDING and claimed_at >= store.iso(stale_before):
        return ExistingClaim(IN_FLIGHT)  # a live claim: no call can change that
    outcome = store.claim(
        deps.dynamodb, deps.settings.events_table, event_id, token=token, now=now, stale_before=stale_before
    )
    if outcome.claimed:
        return ExistingClaim(
            CLAIMED, stored.get("rule_id", {}).get("S") or None, stored.get("severity", {}).get("S") or None
        )
    if outcome.status is None:
        log.warning("event %s vanished from the table before it was alerted (TTL?)", event_id)
        return ExistingClaim(GONE)
    return ExistingClaim(SENT if outcome.status == store.SENT else IN_FLIGHT)


def add_log_file(deps: Deps, event_id: str, stored: store.Item, bucket: str, key: str) -> bool:
    """Name the log file on an item stored without one (by the fast path). One conditional UpdateItem, only
    for such items (``stored`` carries ``log_key`` otherwise). Best effort: the item is already stored and
    alerted; a failure is logged, never fails the file. True when the item was updated."""
    if "log_key" in stored:
        return False
    try:
        return store.add_log_file(deps.dynamodb, deps.settings.events_table, event_id, bucket=bucket, key=key)
    except Exception as err:
        log.warning("event %s: naming its log file s3://%s/%s failed: %s", event_id, bucket, key, err)
        return False


def publish_events(
    deps: Deps,
    token: str,
    *,
    rule_id: str,
    title: str,
    severity: str,
    description: str | None,
    event_ids: Sequence[str],
    events: Sequence[dict[str, str]],
    path: str | None,
    log_bucket: str | None = None,
    log_key: str | None = None,
    extra: dict[str, Any] | None = None,
    item_ids: Sequence[str] | None = None,
    timed: bool = True,
) -> str:
    """Publish one message for ``event_ids`` (all claimed with ``token``), then mark them sent; the SNS
    MessageId. A failed build or publish releases the claims and raises.

    ``item_ids``: the claimed items' keys when they are not the event ids (a hunt's match items);
    ``timed`` False: no latency per event (a hunt alerts old events: the delay says nothing)."""
    table = deps.settings.events_table
    keys = list(item_ids) if item_ids is not None else list(event_ids)
    try:
        message = alerts.build_alert(
            alerts.Alert(
                rule_id=rule_id,
                title=title,
                severity=severity,
                description=description,
                event_ids=list(event_ids),
                events=list(events)[: alerts.MAX_EVENTS],
                log_bucket=log_bucket,
                log_key=log_key,
                table=table,
                path=path,
                alerted_at=deps.now() if timed else None,
                extra=dict(extra or {}),
            )
        )
        message_id = alerts.publish(deps.sns, deps.settings.alert_topic_arn, message)
    except Exception:
        release_claims(keys, token, deps)
        raise
    # Crash window: SNS has the message, the items still say "sending" (processor's module docstring).
    lost = batch_writes.mark_sent_many(
        deps.dynamodb, table, keys, token=token, message_id=message_id, now=deps.now()
    )
    for event_id in lost:
        log.warning("event %s: claim taken over before it was marked sent (possible duplicate)", event_id)
    return message_id


def find_rule(rule_id: str, rules: Sequence[Any]) -> Any:
    """The rule of that id among ``rules`` (the matching ones, then the config's), or None."""
    for rule in rules:
        if rule.id == rule_id:
            return rule
    return None
