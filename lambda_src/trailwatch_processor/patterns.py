"""EventBridge pattern compilation and matching.

Matching semantics (EventBridge content filtering, applied to the CloudTrail record itself):

* A pattern is an object. Each key names a field of the record; its value is either an array of filters
  (a leaf) or an object (a nested pattern). ``"$or": [pattern, ...]`` at any level matches when any
  branch matches the same node. All keys of one object must match (AND).
* Leaf values of a field are: the field's scalar value; for an array, its scalar elements (nested arrays
  flattened). Objects are not leaf values ("comparison operators only work on leaf nodes"). A field with
  no leaf values (missing, an object, an empty array) matches only ``{"exists": false}``; otherwise the
  leaf matches when any leaf value satisfies any filter, and ``{"exists": true}`` matches.
* Literals are type-strict: ``"5"`` does not match ``5``; numbers compare by value; ``null`` matches JSON
  null only, ``""`` the empty string only; ``true``/``false`` match booleans only.
* ``prefix``/``suffix``/``equals-ignore-case``/``wildcard``/``cidr`` apply to strings only (case folding
  with ``str.casefold``); ``numeric`` to JSON numbers only (not booleans).
* ``anything-but X`` matches a present leaf value that ``X`` does not match (so it never matches a missing
  field, and it does match values of other types, e.g. ``null`` or a number for ``anything-but "a"``).
* A nested pattern applied to an array matches when some object element (nested arrays flattened)
  matches the whole nested pattern (per-element consistency); an array without object elements, a
  scalar or a missing field is matched as a missing object (only ``exists: false`` leaves can match).
* Wildcard: ``*`` matches any run of characters, ``\\*`` a literal star, ``\\\\`` a backslash; two
  consecutive unescaped stars are invalid (as in EventBridge).

Every compiled predicate follows the pattern's depth (bounded by ``config_schema.MAX_DEPTH``), never the
record's: arrays in records are flattened without recursion.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable

from .config import Config, Rule, wildcard_segments
from .config_schema import STRING_FILTERS
from .literals import Literals, literals_of

Predicate = Callable[[object], bool]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def _missing_get(_key: str, default: object) -> object:
    return default


def _flatten(values: list, want_objects: bool) -> list:
    """Scalars (or objects) of an array, nested arrays flattened, without recursion (records can be deep)."""
    out: list = []
    stack = [iter(values)]
    while stack:
        for item in stack[-1]:
            t = type(item)
            if t is list:
                stack.append(iter(item))
                break
            if (t is dict) is want_objects:
                out.append(item)
        else:
            stack.pop()
    return out


def _leaf_values(values: list) -> list:
    return _flatten(values, want_objects=False)


def _object_elements(values: list) -> list:
    return _flatten(values, want_objects=True)


def wildcard_match(segments: list[str], value: str) -> bool:
    """Linear glob match: anchor first/last segments, find the middle ones greedily left to right."""
    if len(segments) == 1:
        return value == segments[0]
    first, last = segments[0], segments[-1]
    if len(value) < len(first) + len(last) or not value.startswith(first) or not value.endswith(last):
        return False
    pos, end = len(first), len(value) - len(last)
    for seg in segments[1:-1]:
        found = value.find(seg, pos, end)
        if found < 0:
            return False
        pos = found + len(seg)
    return True


def _string_pred(name: str, arg: object) -> Predicate:
    if name == "prefix" or name == "suffix":
        if isinstance(arg, dict):
            folded = arg["equals-ignore-case"].casefold()
            if name == "prefix":
                return lambda v: type(v) is str and v.casefold().startswith(folded)
            return lambda v: type(v) is str and v.casefold().endswith(folded)
        if name == "prefix":
            return lambda v: type(v) is str and v.startswith(arg)  # type: ignore[arg-type]
        return lambda v: type(v) is str and v.endswith(arg)  # type: ignore[arg-type]
    if name == "equals-ignore-case":
        folded = arg.casefold()  # type: ignore[union-attr]
        return lambda v: type(v) is str and v.casefold() == folded
    segments = wildcard_segments(arg)  # type: ignore[arg-type]
    return lambda v: type(v) is str and wildcard_match(segments, v)


def _numeric_pred(arg: list) -> Predicate:
    checks = [(arg[i], arg[i + 1]) for i in range(0, len(arg), 2)]

    def pred(v: object) -> bool:
        if type(v) is not int and type(v) is not float:
            return False
        for op, bound in checks:
            if op == "=":
                ok = v == bound
            elif op == "<":
                ok = v < bound
            elif op == "<=":
                ok = v <= bound
            elif op == ">":
                ok = v > bound
            else:
                ok = v >= bound
            if not ok:
                return False
        return True

    return pred


def _cidr_pred(arg: str) -> Predicate:
    network = ipaddress.ip_network(arg, strict=False)

    def pred(v: object) -> bool:
        if type(v) is not str:
            return False
        try:
            address = ipaddress.ip_address(v)
        except ValueError:
            return False
        return address.version == network.version and address in network

    return pred


def _anything_but_pred(arg: object) -> Predicate:
    if isinstance(arg, dict):
        ((name, value),) = arg.items()
        inner = [_string_pred(name, item) for item in (value if isinstance(value, list) else [value])]
        return lambda v: not any(p(v) for p in inner)
    values = arg if isinstance(arg, list) else [arg]
    strings = frozenset(x for x in values if type(x) is str)
    numbers = frozenset(x for x in values if type(x) is not str)

    def pred(v: object) -> bool:
        t = type(v)
        if t is str:
            return v not in strings
        if t is int or t is float:
            return v not in numbers
        return True

    return pred


def _compile_leaf(filters: list) -> Predicate:
    strings: set = set()
    numbers: set = set()
    bools: set = set()
    null = exists_true = exists_false = False
    preds: list[Predicate] = []
    for flt in filters:
        t = type(flt)
        if t is str:
            strings.add(flt)
        elif t is bool:
            bools.add(flt)
        elif t is int or t is float:
            numbers.add(flt)
        elif flt is None:
            null = True
        else:
            ((name, arg),) = flt.items()
            if name == "exists":
                exists_true |= arg is True
                exists_false |= arg is False
            elif name in STRING_FILTERS:
                preds.append(_string_pred(name, arg))
            elif name == "numeric":
                preds.append(_numeric_pred(arg))
            elif name == "cidr":
                preds.append(_cidr_pred(arg))
            else:
                preds.append(_anything_but_pred(arg))
    pred_tuple = tuple(preds)

    def test(v: object) -> bool:
        t = type(v)
        if t is str:
            if v in strings:
                return True
        elif t is bool:
            if v in bools:
                return True
        elif t is int or t is float:
            if v in numbers:
                return True
        elif v is None and null:
            return True
        return any(p(v) for p in pred_tuple)

    def leaf(value: object) -> bool:
        t = type(value)
        if t is list:
            values = _leaf_values(value)  # type: ignore[arg-type]
            if not values:
                return exists_false
            return exists_true or any(test(v) for v in values)
        if t is dict or value is MISSING:
            return exists_false
        return exists_true or test(value)

    return leaf


def _compile_object(pattern: dict) -> Predicate:
    fields: list[tuple[str, Predicate]] = []
    ors: list[tuple[Predicate, ...]] = []
    for key, value in pattern.items():
        if key == "$or":
            ors.append(tuple(_compile_object(branch) for branch in value))
        elif isinstance(value, list):
            fields.append((key, _compile_leaf(value)))
        else:
            fields.append((key, _compile_object(value)))
    field_tuple, or_tuple = tuple(fields), tuple(ors)

    def match_node(node: object) -> bool:
        get = node.get if type(node) is dict else _missing_get  # type: ignore[union-attr]
        for key, pred in field_tuple:
            if not pred(get(key, MISSING)):
                return False
        return all(any(branch(node) for branch in branches) for branches in or_tuple)

    def match(node: object) -> bool:
        if type(node) is list:
            elements = _object_elements(node)  # type: ignore[arg-type]
            if elements:
                return any(match_node(e) for e in elements)
            node = MISSING
        return match_node(node)

    return match


def _required_event_names(pattern: dict) -> frozenset[str] | None:
    filters = pattern.get("eventName")
    if isinstance(filters, list) and all(type(f) is str for f in filters):
        return frozenset(filters)
    return None


class Matcher:
    """A config compiled once: per record, only rules that can match its eventName are evaluated."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.rules: tuple[Rule, ...] = config.rules
        entries = []
        by_name: dict[str, list[int]] = {}
        always: list[int] = []
        for index, rule in enumerate(config.rules):
            entries.append(
                (rule, _compile_object(rule.pattern), tuple(_compile_object(p) for p in rule.exclude))
            )
            names = _required_event_names(rule.pattern)
            if names is None:
                always.append(index)
            else:
                for name in names:
                    by_name.setdefault(name, []).append(index)
        self._all = tuple(entries)
        self._always = tuple(entries[i] for i in always)
        self._by_name = {
            name: tuple(entries[i] for i in sorted(set(indexes) | set(always)))
            for name, indexes in by_name.items()
        }

    @functools.cached_property
    def literals(self) -> Literals | None:
        """What a reader may search for to skip records no rule can match (``literals.literals_of``)."""
        return literals_of(self.rules)

    def match(self, record: dict) -> list[Rule]:
        """Rules matching the record, in config order (a non-object record matches nothing)."""
        if type(record) is not dict:
            return []
        name = record.get("eventName")
        entries = self._by_name.get(name, self._always) if type(name) is str else self._all
        out = []
        for rule, pred, excludes in entries:
            if pred(record) and not any(ex(record) for ex in excludes):
                out.append(rule)
        return out


def compile_config(config: Config) -> Matcher:
    return Matcher(config)
