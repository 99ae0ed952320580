"""Noise control in the config: top-level ``suppressions``; per rule ``dedup`` or ``threshold``.

Validated by ``config_schema.validate_config`` through the same validator (every fault named by its path,
``suppressions[2].expires: not a date``); the decisions are in ``noise``, the table state in ``noise_state``.

- ``suppressions``: ``[{"id", "pattern" (EventBridge), "reason", "owner", "expires", "rules"?}]``. ``expires``
  is a date (``2027-03-31``: the suppression stops applying at 00:00 UTC that day) or an ISO time in UTC
  (``2027-03-31T12:00:00Z``). ``rules`` (optional) names the rules it silences; default every rule.
- rule ``dedup``: ``{"group_by": [dotted record paths], "window_minutes": m}``.
- rule ``threshold``: ``{"count": n, "window_minutes": m, "group_by": [...]}`` (``group_by`` optional: one
  group for the whole rule).

A ``group_by`` path names a field of the record (``userIdentity.arn``); a missing field groups as ``""``.
``window_minutes`` may be fractional (0.1 .. 1440). A rule has at most one of ``dedup`` and ``threshold``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

WINDOW_MIN_MINUTES = 0.1
WINDOW_MAX_MINUTES = 1440.0
THRESHOLD_MAX_COUNT = 1000  # the window's event-ID set stays far below DynamoDB's 400 KB item limit
MAX_GROUP_BY = 5
MAX_PATH_CHARS = 256
MAX_SUPPRESSIONS = 500
GROUP_VALUE_MAX_CHARS = 256

SUPPRESSION_KEYS = ("id", "pattern", "reason", "owner", "expires", "rules")
DEDUP_KEYS = ("group_by", "window_minutes")
THRESHOLD_KEYS = ("count", "window_minutes", "group_by")

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")


class Validator(Protocol):
    """What of ``config_schema._Validator`` this module uses (no import cycle)."""

    errors: list[str]

    def err(self, path: str, message: str) -> None: ...

    def string(self, value: object, path: str, *, allow_empty: bool = True) -> bool: ...

    def pattern(self, pat: object, path: str, depth: int = 1) -> None: ...


@dataclass(frozen=True)
class Dedup:
    """The first event of a group alerts; later ones in the window are counted into one summary."""

    group_by: tuple[str, ...]
    window_minutes: float

    def as_json(self) -> dict[str, Any]:
        return {"group_by": list(self.group_by), "window_minutes": self.window_minutes}


@dataclass(frozen=True)
class Threshold:
    """Alert once when ``count`` events of a group occur within ``window_minutes``."""

    count: int
    window_minutes: float
    group_by: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "window_minutes": self.window_minutes, "group_by": list(self.group_by)}


@dataclass(frozen=True)
class Suppression:
    id: str
    pattern: dict = field(hash=False)
    reason: str
    owner: str
    expires: str  # as written
    expires_at: datetime  # UTC; the suppression applies strictly before this moment
    rules: tuple[str, ...] | None = None  # None: every rule

    def active(self, now: datetime) -> bool:
        return now < self.expires_at

    def applies_to(self, rule_id: str) -> bool:
        return self.rules is None or rule_id in self.rules

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "pattern": self.pattern,
            "reason": self.reason,
            "owner": self.owner,
            "expires": self.expires,
        }
        if self.rules is not None:
            out["rules"] = list(self.rules)
        return out


def parse_expiry(text: str) -> datetime | None:
    """``YYYY-MM-DD`` (00:00 UTC that day) or an ISO time with ``Z``/an offset, as UTC; None if neither."""
    try:
        if _DATE_RE.fullmatch(text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        if _TIME_RE.fullmatch(text):
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
    return None


def json_kind(value: object) -> str:
    """How a JSON value reads in an error message: "a string", "an array", "null"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _unknown_keys(v: Validator, raw: dict, path: str, allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            v.err(f"{path}.{key}", f"unknown key (expected {', '.join(allowed)})")


def _window(v: Validator, raw: dict, path: str) -> float | None:
    if "window_minutes" not in raw:
        v.err(path, "missing 'window_minutes'")
        return None
    value = raw["window_minutes"]
    sub = f"{path}.window_minutes"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        v.err(sub, f"expected a number of minutes, got {json_kind(value)}")
        return None
    if not WINDOW_MIN_MINUTES <= value <= WINDOW_MAX_MINUTES:
        v.err(sub, f"must be between {WINDOW_MIN_MINUTES} and {WINDOW_MAX_MINUTES:g} minutes, got {value}")
        return None
    return float(value)


def _group_by(v: Validator, raw: dict, path: str, *, required: bool) -> tuple[str, ...] | None:
    if "group_by" not in raw:
        if required:
            v.err(path, "missing 'group_by' (record fields such as userIdentity.arn)")
            return None
        return ()
    value = raw["group_by"]
    sub = f"{path}.group_by"
    if not isinstance(value, list) or (required and not value):
        v.err(sub, f"expected a non-empty array of record field paths, got {json_kind(value)}")
        return None
    if len(value) > MAX_GROUP_BY:
        v.err(sub, f"at most {MAX_GROUP_BY} fields")
        return None
    ok = True
    for i, item in enumerate(value):
        isub = f"{sub}[{i}]"
        if not v.string(item, isub, allow_empty=False):
            ok = False
        elif len(item) > MAX_PATH_CHARS or any(not part for part in item.split(".")):
            v.err(isub, f"invalid field path {item!r}: dotted names such as userIdentity.arn")
            ok = False
    if ok and len(set(value)) != len(value):
        v.err(sub, "a field is named twice")
        ok = False
    return tuple(value) if ok else None


def validate_dedup(v: Validator, raw: object, path: str) -> Dedup | None:
    if not isinstance(raw, dict):
        v.err(path, f"expected an object with group_by and window_minutes, got {json_kind(raw)}")
        return None
    _unknown_keys(v, raw, path, DEDUP_KEYS)
    group_by = _group_by(v, raw, path, required=True)
    window = _window(v, raw, path)
    if group_by is None or window is None:
        return None
    return Dedup(group_by, window)


def validate_threshold(v: Validator, raw: object, path: str) -> Threshold | None:
    if not isinstance(raw, dict):
        v.err(path, f"expected an object with count and window_minutes, got {json_kind(raw)}")
        return None
    _unknown_keys(v, raw, path, THRESHOLD_KEYS)
    count = raw.get("count")
    ok = True
    if "count" not in raw:
        v.err(path, "missing 'count'")
        ok = False
    elif isinstance(count, bool) or not isinstance(count, int):
        v.err(f"{path}.count", f"expected a whole number, got {json_kind(count)}")
        ok = False
    elif not 2 <= count <= THRESHOLD_MAX_COUNT:
        v.err(f"{path}.count", f"must be between 2 and {THRESHOLD_MAX_COUNT}, got {count}")
        ok = False
    window = _window(v, raw, path)
    group_by = _group_by(v, raw, path, required=False)
    if not ok or window is None or group_by is None:
        return None
    return Threshold(count, window, group_by)  # type: ignore[arg-type]


def validate_rule_noise(v: Validator, raw: dict, path: str) -> tuple[Dedup | None, Threshold | None]:
    """A rule's ``dedup`` and ``threshold`` (at most one of them)."""
    dedup = validate_dedup(v, raw["dedup"], f"{path}.dedup") if "dedup" in raw else None
    threshold = validate_threshold(v, raw["threshold"], f"{path}.threshold") if "threshold" in raw else None
    if "dedup" in raw and "threshold" in raw:
        v.err(path, "give at most one of 'dedup' and 'threshold'")
    return dedup, threshold


def validate_suppressions(v: Validator, raw: object, rule_ids: set[str]) -> tuple[Suppression, ...]:
    """The top-level ``suppressions`` list; ``rule_ids``: the config's rules (a suppression naming an
    unknown rule is an error, not a silent no-op)."""
    if not isinstance(raw, list):
        v.err("suppressions", f"expected an array of suppressions, got {json_kind(raw)}")
        return ()
    if len(raw) > MAX_SUPPRESSIONS:
        v.err("suppressions", f"more than {MAX_SUPPRESSIONS} suppressions")
        return ()

    def parse(item: object, path: str) -> Suppression | None:
        return _suppression(v, item, path, rule_ids)

    return tuple(unique_ids(v, raw, "suppressions", "suppression", parse, {}))


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_T = TypeVar("_T", bound=_HasId)


def unique_ids(
    v: Validator,
    raw: list,
    section: str,
    what: str,
    parse: Callable[[object, str], _T | None],
    seen: dict[str, str],
) -> list[_T]:
    """What ``parse`` makes of the entries of the ``section`` array ``raw`` (None: invalid, reported by
    ``parse``), less those whose id is in ``seen`` (id -> where it stands), which are errors."""
    out: list[_T] = []
    for i, item in enumerate(raw):
        path = f"{section}[{i}]"
        parsed = parse(item, path)
        if parsed is None:
            continue
        if parsed.id in seen:
            v.err(f"{path}.id", f"duplicate {what} id {parsed.id!r} (also {seen[parsed.id]})")
            continue
        seen[parsed.id] = f"{path}.id"
        out.append(parsed)
    return out


def _suppression(v: Validator, raw: object, path: str, rule_ids: set[str]) -> Suppression | None:
    if not isinstance(raw, dict):
        v.err(path, f"a suppression must be an object, got {json_kind(raw)}")
        return None
    n_before = len(v.errors)
    _unknown_keys(v, raw, path, SUPPRESSION_KEYS)
    for key in ("id", "pattern", "reason", "owner", "expires"):
        if key not in raw:
            v.err(path, f"missing {key!r}")
    sid = raw.get("id")
    if "id" in raw and v.string(sid, f"{path}.id", allow_empty=False) and not _ID_RE.fullmatch(sid):
        v.err(f"{path}.id", f"invalid id {sid!r}: use letters, digits and ._:@/+=- (at most 128)")
    for key in ("reason", "owner"):
        if key in raw:
            v.string(raw[key], f"{path}.{key}", allow_empty=False)
    if "pattern" in raw:
        v.pattern(raw["pattern"], f"{path}.pattern")
    expires_at = None
    if "expires" in raw and v.string(raw["expires"], f"{path}.expires", allow_empty=False):
        expires_at = parse_expiry(raw["expires"])
        if expires_at is None:
            v.err(
                f"{path}.expires",
                f"not a date: {raw['expires']!r} (YYYY-MM-DD, or an ISO time in UTC: 2027-03-31T12:00:00Z)",
            )
    rules: tuple[str, ...] | None = None
    if "rules" in raw:
        value = raw["rules"]
        if not isinstance(value, list) or not value:
            v.err(f"{path}.rules", f"expected a non-empty array of rule ids, got {json_kind(value)}")
        else:
            for j, rid in enumerate(value):
                if v.string(rid, f"{path}.rules[{j}]", allow_empty=False) and rid not in rule_ids:
                    v.err(f"{path}.rules[{j}]", f"unknown rule {rid!r}")
            rules = tuple(value)
    if len(v.errors) != n_before or expires_at is None:
        return None
    return Suppression(
        id=sid,
        pattern=json.loads(json.dumps(raw["pattern"])),  # a copy: the caller's later edits change nothing
        reason=raw["reason"],
        owner=raw["owner"],
        expires=raw["expires"],
        expires_at=expires_at,
        rules=rules,
    )
