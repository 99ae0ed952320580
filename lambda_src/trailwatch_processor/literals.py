"""The literals a reader may search for: text that occurs in the raw JSON of every record some rule matches.

A reader that finds none of them in a stretch of the log (and no ``\\u``/``\\/`` escape) may count the
stretch's records without parsing them. Why that is safe, for a rule R and a record that R matches:

* Every field of a pattern must match, at every nesting level, so some *required* leaf of R (outside
  ``$or``; or an ``$or`` group all of whose branches yield literals, taking their union) matched.
* We only take leaves whose every filter needs a present *string* value: an exact string ``s`` (the raw
  text contains ``"s"``), a prefix ``p`` (``"p``), a suffix ``s`` (``s"``), a wildcard (each literal
  segment is a substring of the value; the first follows ``"``, the last precedes ``"``). Numbers,
  booleans, null, exists, numeric, cidr, equals-ignore-case and anything-but yield nothing; a rule with
  no such leaf makes ``literals_of`` None (no skip).
* Without ``\\u`` and ``\\/`` escapes, JSON spells every character of a string one way only:
  ``json.dumps(..., ensure_ascii=False)``'s, character by character. So the literal of the matched filter
  occurs in the record's decoded text (the reader compares decoded text, so UTF-8 needs no thought).
* Rules whose top-level ``eventName`` leaf holds only exact strings and prefixes are covered by
  ``event_names`` and ``event_name_prefixes`` instead: a record such a rule matches has a top-level member
  ``"eventName"`` (spelled so, or with a ``\\u`` escape) whose value is one of the names, starts with one of
  the prefixes, or is an array. The reader looks at every ``"eventName"`` in the text and counts as a hit
  any whose value is not exactly ``:"v"`` (v free of quotes and backslashes) or whose ``v`` is a name or
  starts with a prefix. (Without a backslash, ``v`` is its decoded value; a name or prefix whose raw
  spelling needs a backslash can then only be met by a value that is not plain, which is a hit anyway.)

Everything here follows the pattern's depth (bounded by ``config_schema.MAX_DEPTH``), never a record's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from .config import Rule, wildcard_segments

# Each needle costs the reader one substring search per window: past this many, skipping costs more than
# it saves, so the reader parses every record instead (still correct).
MAX_NEEDLES = 32


@dataclass(frozen=True)
class Literals:
    """``event_names`` / ``event_name_prefixes``: top-level eventNames and their prefixes (raw spellings)
    covering some rules; ``needles``: strings of which one occurs in the raw text of every record one of
    the other rules matches."""

    event_names: frozenset[str]
    needles: tuple[str, ...]
    event_name_prefixes: tuple[str, ...] = ()


def encode(text: str) -> str:
    """Raw JSON spelling of a string's characters (no surrounding quotes), as CloudTrail writes them."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _filter_literal(flt: object) -> str | None:
    if type(flt) is str:
        return f'"{encode(flt)}"'
    if type(flt) is not dict:
        return None  # numbers/true/false/null: a number has many spellings
    ((name, arg),) = flt.items()
    if name == "prefix" and type(arg) is str:
        return f'"{encode(arg)}'
    if name == "suffix" and type(arg) is str:
        return f'{encode(arg)}"'
    if name == "wildcard":
        segments = wildcard_segments(arg)
        if len(segments) == 1:
            return f'"{encode(segments[0])}"'
        candidates = [f'"{encode(segments[0])}', f'{encode(segments[-1])}"']
        candidates += [encode(s) for s in segments[1:-1]]
        return max(candidates, key=len)
    return None


def _leaf_literals(filters: list) -> frozenset[str] | None:
    out = set()
    for flt in filters:
        literal = _filter_literal(flt)
        if not literal:
            return None
        out.add(literal)
    return frozenset(out)


def _required_sets(pattern: dict) -> list[frozenset[str]]:
    """Every literal set the pattern requires (one of each set occurs in a matching record's text)."""
    found: list[frozenset[str]] = []
    for key, value in pattern.items():
        if key == "$or":
            union: set[str] = set()
            for branch in value:
                best = _best(_required_sets(branch))
                if best is None:
                    break
                union |= best
            else:
                found.append(frozenset(union))
        elif isinstance(value, list):
            literals = _leaf_literals(value)
            if literals is not None:
                found.append(literals)
        else:
            found.extend(_required_sets(value))
    return found


def _best(sets: list[frozenset[str]]) -> frozenset[str] | None:
    """The set with the longest shortest literal (rarer in the text), then the fewest literals."""
    return max(sets, key=lambda s: (min(len(n) for n in s), -len(s))) if sets else None


def _event_name_cover(pattern: dict) -> tuple[set[str], set[str]] | None:
    """(names, prefixes) when the top-level eventName leaf holds only exact strings and prefixes."""
    filters = pattern.get("eventName")
    if not isinstance(filters, list) or not filters:
        return None
    names: set[str] = set()
    prefixes: set[str] = set()
    for flt in filters:
        if type(flt) is str:
            names.add(encode(flt))
        elif type(flt) is dict and list(flt) == ["prefix"] and type(flt["prefix"]) is str and flt["prefix"]:
            prefixes.add(encode(flt["prefix"]))
        else:
            return None
    return names, prefixes


def literals_of(rules: Iterable[Rule]) -> Literals | None:
    """The literals covering every rule, or None when some rule has none (or there would be too many)."""
    names: set[str] = set()
    prefixes: set[str] = set()
    needles: set[str] = set()
    for rule in rules:
        cover = _event_name_cover(rule.pattern)
        if cover is not None:
            names |= cover[0]
            prefixes |= cover[1]
            continue
        best = _best(_required_sets(rule.pattern))
        if best is None:
            return None
        needles |= best
    if len(needles) > MAX_NEEDLES:
        return None
    return Literals(
        event_names=frozenset(names),
        needles=tuple(sorted(needles)),
        event_name_prefixes=tuple(sorted(prefixes)),
    )
