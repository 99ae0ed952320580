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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import severity_rank

Digest = dict[str, str]

_HASH_CHARS = 32


def _sha(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]


EMPTY_EXCLUDE = _sha([])


def rule_digest(rule: Any) -> str:
    """``severity|pattern sha|exclude sha|text sha`` of one rules.Rule."""
    return "|".join(
        (
            rule.severity,
            _sha(rule.pattern),
            _sha(list(rule.exclude)),
            _sha([rule.title, rule.description]),
        )
    )


def config_digest(rules: Iterable[Any]) -> Digest:
    """Rule id -> rule_digest, for every rule of a config (or a Matcher's ``.rules``)."""
    return {rule.id: rule_digest(rule) for rule in rules}


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

    @property
    def weakened(self) -> tuple[str, ...]:
        """Ids of the changed rules whose change is weakening (removed rules are not included)."""
        return tuple(c.rule_id for c in self.changed if c.weakening)

    @property
    def weakening(self) -> bool:
        """True when the new version removes or weakens any rule."""
        return bool(self.removed or self.weakened)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

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
        ]
        for kind, entries in groups:
            out.extend(entries[:limit])
            if len(entries) > limit:
                out.append(f"... and {len(entries) - limit} more {kind}")
        return out


def _parts(value: str) -> tuple[str, str, str, str]:
    severity, pattern, exclude, text = [*value.split("|"), "", "", "", ""][:4]
    return severity, pattern, exclude, text


def _rank(severity: str) -> int:
    try:
        return severity_rank(severity)
    except ValueError:
        return -1  # an unknown (corrupted) stored severity: any new one counts as raised


def diff_digests(old: Mapping[str, str] | None, new: Mapping[str, str]) -> ConfigDiff:
    """Differences from ``old`` to ``new`` (None: no previous version, every rule is added)."""
    old = old or {}
    added = tuple(i for i in new if i not in old)
    removed = tuple(i for i in old if i not in new)
    changed: list[Change] = []
    for rule_id, value in new.items():
        before = old.get(rule_id)
        if before is None or before == value:
            continue
        (s0, p0, e0, t0), (s1, p1, e1, t1) = _parts(before), _parts(value)
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
        changed.append(Change(rule_id, tuple(reasons), weak))
    return ConfigDiff(added=added, removed=removed, changed=tuple(changed))


def diff_rules(old: Iterable[Any] | None, new: Iterable[Any]) -> ConfigDiff:
    """diff_digests of two rule lists (rules.Rule, e.g. ``Config.rules``); None: no previous config."""
    return diff_digests(None if old is None else config_digest(old), config_digest(new))
