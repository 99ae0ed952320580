"""Rule differences between two config versions, from compact digests (pure: no AWS, no clock).

Shared by the processor (which alerts on every new config version it loads, comparing against the digest of
the previous version kept in the table) and ``trailwatch upload-config`` (which asks before a removal).

A digest maps each rule id to ``"<severity>|<pattern sha>|<exclude sha>|<text sha>"``: the sha256 (first 32
hex digits, 128 bits) of the canonical JSON (sorted keys, no spaces) of the pattern, of the exclude list, and
of title + description. 1,000 rules (the config maximum) make ~200 KB, under DynamoDB's 400 KB item limit.

What counts as weakening (the change is alerted ``high``):
- a removed rule;
- a lowered severity;
- any changed pattern: the digest cannot show that the new pattern matches a superset of the old one, and
  proving it in general (anything-but, wildcards, numeric ranges, ``$or``) is not attempted: a narrowed
  pattern is the quiet way to switch a rule off, so any pattern change is treated as weakening;
- an added or changed exclude (it can only hide more or different records); removing every exclude is not.
Added rules, raised severities and title/description edits are reported but are not weakening.

Noise control: a rule with ``dedup`` or ``threshold`` gets a fifth digest part (absent otherwise,
so digests stored before noise control compare equal). Any change of it is weakening except removing it or
lowering a threshold's count (same window and group_by). Suppressions are digest entries keyed
``SUPPRESSION_KEY + id`` (no rule id starts with ``#``): an added or changed suppression is weakening (it can
hide more), a removed one is not. Pass ``digest_items(config)`` (rules and suppressions) to compare them too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import severity_rank
from .noise_config import Suppression

SUPPRESSION_KEY = "#suppression:"

Digest = dict[str, str]

_HASH_CHARS = 32


def _sha(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]


EMPTY_EXCLUDE = _sha([])


def rule_digest(rule: Any) -> str:
    """``severity|pattern sha|exclude sha|text sha[|noise]`` of one rules.Rule."""
    parts = [
        rule.severity,
        _sha(rule.pattern),
        _sha(list(rule.exclude)),
        _sha([rule.title, rule.description]),
    ]
    noise = _noise_part(rule)
    if noise:
        parts.append(noise)
    return "|".join(parts)


def _noise_part(rule: Any) -> str:
    """``t:<count>:<window sha+group sha>`` or ``d:<window sha+group sha>``; "" without noise control."""
    threshold, dedup = getattr(rule, "threshold", None), getattr(rule, "dedup", None)
    if threshold is not None:
        return f"t:{threshold.count}:{_sha([threshold.window_minutes, list(threshold.group_by)])}"
    if dedup is not None:
        return f"d:{_sha([dedup.window_minutes, list(dedup.group_by)])}"
    return ""


def suppression_digest(sup: Suppression) -> str:
    return _sha([sup.pattern, list(sup.rules) if sup.rules is not None else None, sup.expires_at.isoformat()])


def config_digest(rules: Iterable[Any]) -> Digest:
    """Rule id -> rule_digest, for every rule of a config (or a Matcher's ``.rules``); a Suppression among
    them (``digest_items``) is keyed ``SUPPRESSION_KEY + id``."""
    return {
        (SUPPRESSION_KEY + item.id if isinstance(item, Suppression) else item.id): (
            suppression_digest(item) if isinstance(item, Suppression) else rule_digest(item)
        )
        for item in rules
    }


def rule_ids(digest: Mapping[str, str]) -> list[str]:
    """The rule ids of a digest (without its suppression entries)."""
    return [key for key in digest if not key.startswith(SUPPRESSION_KEY)]


def digest_items(config: Any) -> list[Any]:
    """A Config's (or Matcher's) rules and suppressions, for config_digest / diff_rules."""
    config = getattr(config, "config", config)  # a Matcher holds its Config
    return [*config.rules, *getattr(config, "suppressions", ())]


def digest_id(digest: Mapping[str, str]) -> str:
    """A short stable name for a digest (names the bundled default, which has no ETag)."""
    return _sha(sorted(digest.items()))


@dataclass(frozen=True)
class Change:
    """One rule present in both versions whose digest differs; ``reasons`` in display order."""

    rule_id: str
    reasons: tuple[str, ...]
    weakening: bool


@dataclass(frozen=True)
class ConfigDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[Change, ...] = field(default_factory=tuple)
    # Suppression ids (noise control): added or changed ones weaken detection.
    suppressions_added: tuple[str, ...] = ()
    suppressions_removed: tuple[str, ...] = ()
    suppressions_changed: tuple[str, ...] = ()

    @property
    def weakened(self) -> tuple[str, ...]:
        """Ids of the changed rules whose change is weakening (removed rules are not included)."""
        return tuple(c.rule_id for c in self.changed if c.weakening)

    @property
    def weakening(self) -> bool:
        """True when the new version removes or weakens any rule, or adds or changes a suppression."""
        return bool(self.removed or self.weakened or self.suppressions_added or self.suppressions_changed)

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.removed
            or self.changed
            or self.suppressions_added
            or self.suppressions_removed
            or self.suppressions_changed
        )

    def lines(self, limit: int = 50) -> list[str]:
        """Human-readable ``+ id``/``- id``/``~ id: reasons`` lines, at most ``limit`` per kind."""
        out: list[str] = []
        groups: list[tuple[str, list[str]]] = [
            ("added", [f"+ {i} (added)" for i in self.added]),
            ("removed", [f"- {i} (removed)" for i in self.removed]),
            (
                "changed",
                [
                    f"~ {c.rule_id} ({'WEAKENED: ' if c.weakening else ''}{', '.join(c.reasons)})"
                    for c in self.changed
                ],
            ),
            (
                "suppressions added",
                [f"+ suppression {i} (added: WEAKENED, hides events)" for i in self.suppressions_added],
            ),
            ("suppressions removed", [f"- suppression {i} (removed)" for i in self.suppressions_removed]),
            (
                "suppressions changed",
                [f"~ suppression {i} (changed: WEAKENED?)" for i in self.suppressions_changed],
            ),
        ]
        for kind, entries in groups:
            out.extend(entries[:limit])
            if len(entries) > limit:
                out.append(f"... and {len(entries) - limit} more {kind}")
        return out


def _parts(value: str) -> tuple[str, str, str, str, str]:
    severity, pattern, exclude, text, noise = [*value.split("|"), "", "", "", "", ""][:5]
    return severity, pattern, exclude, text, noise


def _noise_weakening(before: str, after: str) -> bool:
    """Removing noise control, or lowering a threshold's count (same window and group), is not weakening."""
    if not after:
        return False
    if before.startswith("t:") and after.startswith("t:"):
        _, c0, w0 = [*before.split(":"), "", ""][:3]
        _, c1, w1 = [*after.split(":"), "", ""][:3]
        if w0 == w1 and c0.isdigit() and c1.isdigit() and int(c1) < int(c0):
            return False
    return True


def _rank(severity: str) -> int:
    try:
        return severity_rank(severity)
    except ValueError:
        return -1  # an unknown (corrupted) stored severity: any new one counts as raised


def diff_digests(old: Mapping[str, str] | None, new: Mapping[str, str]) -> ConfigDiff:
    """Differences from ``old`` to ``new`` (None: no previous version, every rule is added)."""
    old = old or {}
    sup_old = {k: v for k, v in old.items() if k.startswith(SUPPRESSION_KEY)}
    sup_new = {k: v for k, v in new.items() if k.startswith(SUPPRESSION_KEY)}
    old = {k: v for k, v in old.items() if k not in sup_old}
    new = {k: v for k, v in new.items() if k not in sup_new}
    cut = len(SUPPRESSION_KEY)
    added = tuple(i for i in new if i not in old)
    removed = tuple(i for i in old if i not in new)
    changed: list[Change] = []
    for rule_id, value in new.items():
        before = old.get(rule_id)
        if before is None or before == value:
            continue
        (s0, p0, e0, t0, n0), (s1, p1, e1, t1, n1) = _parts(before), _parts(value)
        reasons: list[str] = []
        weak = False
        if s0 != s1:
            lowered = _rank(s1) < _rank(s0)
            reasons.append(f"severity {s0} -> {s1}")
            weak = weak or lowered
        if p0 != p1:
            reasons.append("pattern changed")
            weak = True
        if e0 != e1:
            if e1 == EMPTY_EXCLUDE:
                reasons.append("exclude removed")
            else:
                reasons.append("exclude added" if e0 == EMPTY_EXCLUDE else "exclude changed")
                weak = True
        if t0 != t1:
            reasons.append("title/description changed")
        if n0 != n1:
            change = "removed" if not n1 else "added" if not n0 else "changed"
            reasons.append(f"noise control {change}")
            weak = weak or _noise_weakening(n0, n1)
        changed.append(Change(rule_id, tuple(reasons), weak))
    return ConfigDiff(
        added=added,
        removed=removed,
        changed=tuple(changed),
        suppressions_added=tuple(k[cut:] for k in sup_new if k not in sup_old),
        suppressions_removed=tuple(k[cut:] for k in sup_old if k not in sup_new),
        suppressions_changed=tuple(k[cut:] for k in sup_new if k in sup_old and sup_old[k] != sup_new[k]),
    )


def diff_rules(old: Iterable[Any] | None, new: Iterable[Any]) -> ConfigDiff:
    """diff_digests of two rule lists (rules.Rule, e.g. ``Config.rules``); None: no previous config."""
    return diff_digests(None if old is None else config_digest(old), config_digest(new))
