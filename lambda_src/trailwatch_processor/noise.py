"""Noise control, the pure decisions: which suppression hides an event, which group it belongs to.

The processor asks ``plan`` once per matched record (while it still holds the record); the plan is small (a
suppression id, or a rule's group values) and ``noise_state.decide`` turns it into a decision with the
table's window state when the event is stored for the first time. Stored events are never dropped: a quiet
decision only changes the item's alert marks.

Alert marks on a stored event (``alert_status``):
- ``suppressed`` (+ ``suppressed_by``: the suppression id): an active suppression matched; never alerted.
- ``grouped`` (+ ``grouped_into``: the EventId that alerted for its group): counted into a dedup window's
  summary, or after a threshold alert, covered by it.
- ``below-threshold`` (+ ``noise_window``): counted in a threshold window that has not reached its count.
An event that alerts for noise control (the first of a dedup window, the one crossing a threshold) is
alerted as usual and carries ``noise_window`` and ``noise_role`` (``window-first``, ``threshold-crossed``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .noise_config import GROUP_VALUE_MAX_CHARS, Suppression
from .patterns import _compile_object

SUPPRESSED = "suppressed"
GROUPED = "grouped"
BELOW_THRESHOLD = "below-threshold"
QUIET_STATUSES = frozenset({SUPPRESSED, GROUPED, BELOW_THRESHOLD})  # final: never claimed for an alert

_MISSING = object()


@functools.lru_cache(maxsize=1024)
def _predicate(sup: Suppression) -> Any:
    return _compile_object(sup.pattern)  # validated by noise_config: the matcher's own compilation


def suppression_for(
    record: dict, rule_id: str, suppressions: Sequence[Suppression], now: datetime
) -> Suppression | None:
    """The first suppression (config order) that is unexpired at ``now`` (UTC), covers ``rule_id`` and whose
    pattern matches ``record``; None when the event alerts as usual."""
    for sup in suppressions:
        if sup.active(now) and sup.applies_to(rule_id) and _predicate(sup)(record):
            return sup
    return None


def field_value(record: Any, path: str) -> str:
    """The record's value at a dotted path as text: a string as is, a missing field (or null) as ``""``,
    anything else as compact JSON; capped at GROUP_VALUE_MAX_CHARS."""
    node: Any = record
    for part in path.split("."):
        node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            return ""
    if node is None:
        return ""
    text = node if isinstance(node, str) else json.dumps(node, sort_keys=True, separators=(",", ":"))
    return text[:GROUP_VALUE_MAX_CHARS]


def group_values(record: Any, group_by: Sequence[str]) -> tuple[str, ...]:
    return tuple(field_value(record, path) for path in group_by)


def group_key(kind: str, rule_id: str, values: Sequence[str]) -> str:
    """A fixed-length name of one rule's group (``kind``: dedup or threshold) for the table's keys."""
    text = json.dumps([kind, rule_id, list(values)], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def event_moment(record: Any, now: datetime) -> datetime:
    """The record's eventTime (UTC), or ``now`` when it is missing or unparsable."""
    text = record.get("eventTime") if isinstance(record, dict) else None
    if isinstance(text, str) and text:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    return now


@dataclass(frozen=True)
class Plan:
    """What noise control needs of one matched record, decided while the record is at hand.

    ``suppressed_by`` set: quiet, no table state. Else ``kind`` ``dedup``/``threshold`` with the primary
    rule's settings and group; ``kind`` None: alert as usual."""

    rule_id: str
    suppressed_by: str | None = None
    kind: str | None = None  # "dedup" | "threshold" | None
    group_by: tuple[str, ...] = ()
    group: tuple[str, ...] = ()
    window_minutes: float = 0.0
    count: int = 0  # threshold
    moment: datetime | None = None  # threshold: the event's time (windows are measured in event time)
    title: str = ""
    severity: str = "medium"

    @property
    def group_map(self) -> dict[str, str]:
        return dict(zip(self.group_by, self.group, strict=True))


def plan(record: Any, rule: Any, suppressions: Sequence[Suppression], now: datetime) -> Plan | None:
    """The noise plan of a record whose primary rule is ``rule``; None when nothing applies (the common
    case: no suppressions and no dedup/threshold on the rule)."""
    if not isinstance(record, dict):
        return None
    sup = suppression_for(record, rule.id, suppressions, now) if suppressions else None
    if sup is not None:
        return Plan(rule.id, suppressed_by=sup.id)
    dedup, threshold = getattr(rule, "dedup", None), getattr(rule, "threshold", None)
    extra: dict[str, Any] = {}  # what a threshold adds
    if dedup is not None:
        kind, spec = "dedup", dedup
    elif threshold is not None:
        kind, spec = "threshold", threshold
        extra = {"count": threshold.count, "moment": event_moment(record, now)}
    else:
        return None
    return Plan(
        rule.id,
        kind=kind,
        group_by=spec.group_by,
        group=group_values(record, spec.group_by),
        window_minutes=spec.window_minutes,
        title=rule.title,
        severity=rule.severity,
        **extra,
    )


@dataclass(frozen=True)
class Decision:
    """``status`` None: alert as usual (``marks`` may still say which window); else one of QUIET_STATUSES
    and the marks to store on the item."""

    status: str | None = None
    marks: tuple[tuple[str, str], ...] = ()

    @property
    def quiet(self) -> bool:
        return self.status is not None


ALERT = Decision()


def suppressed(sup_id: str) -> Decision:
    return Decision(SUPPRESSED, (("suppressed_by", sup_id),))


def summary_title(count: int, title: str, minutes: float) -> str:
    """``49 more "Denied call" events in the last 60 min``."""
    return f'{count} more "{title}" event(s) in the last {minutes:g} min'
