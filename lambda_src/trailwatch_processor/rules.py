"""Config schema, validation, EventBridge-pattern compiler and matcher.

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
"""

from __future__ import annotations

import copy
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

SEVERITIES = ("info", "low", "medium", "high", "critical")
DEFAULT_SEVERITY = "medium"

MAX_CONFIG_BYTES = 1_048_576
MAX_RULES = 1000
MAX_DEPTH = 10  # nesting of pattern objects (incl. $or branches)
MAX_NODES = 50_000  # keys + filter values over the whole config
MAX_STRING = 4096
MAX_ERRORS = 50

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")
_KEY_RE = re.compile(r"[A-Za-z0-9_$@:-]+")
RULE_KEYS = ("id", "title", "severity", "description", "pattern", "exclude")
TOP_KEYS = ("monitored_events", "rules")
STRING_FILTERS = ("prefix", "suffix", "equals-ignore-case", "wildcard")
FILTERS = ("prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "exists", "numeric", "cidr")
NUMERIC_OPS = ("<", "<=", "=", ">", ">=")


class ConfigError(ValueError):
    """Invalid config; ``errors`` holds every fault as ``"<path>: <message>"``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    description: str
    pattern: dict = field(hash=False)
    exclude: tuple[dict, ...] = field(default=(), hash=False)


@dataclass(frozen=True)
class Config:
    rules: tuple[Rule, ...]
    source: str
    raw: dict = field(hash=False, compare=False)


def severity_rank(name: str) -> int:
    """0 (info) .. 4 (critical); ValueError for an unknown name."""
    try:
        return SEVERITIES.index(name)
    except ValueError:
        raise ValueError(f"unknown severity {name!r}; expected one of {', '.join(SEVERITIES)}") from None


# ---------------------------------------------------------------------------------------------- validation


class _Stop(Exception):
    """Raised when the error or size budget is exhausted."""


class _Validator:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nodes = 0

    def err(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")
        if len(self.errors) >= MAX_ERRORS:
            self.errors.append(f"(config): more than {MAX_ERRORS} errors; stopped")
            raise _Stop

    def count(self, path: str, n: int = 1) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            self.errors.append(f"{path}: config too large (more than {MAX_NODES} pattern keys and values)")
            raise _Stop

    def string(self, value: object, path: str, *, allow_empty: bool = True) -> bool:
        if not isinstance(value, str):
            self.err(path, f"expected a string, got {_kind(value)}")
            return False
        if not allow_empty and not value:
            self.err(path, "must not be empty")
            return False
        if len(value) > MAX_STRING:
            self.err(path, f"string longer than {MAX_STRING} characters")
            return False
        return True

    # -- patterns

    def pattern(self, pat: object, path: str, depth: int = 1) -> None:
        if not isinstance(pat, dict):
            self.err(path, f"a pattern must be an object, got {_kind(pat)}")
            return
        if not pat:
            self.err(path, "a pattern must name at least one field")
            return
        if depth > MAX_DEPTH:
            self.err(path, f"pattern nested deeper than {MAX_DEPTH} levels")
            return
        for key, value in pat.items():
            sub = _join(path, key)
            self.count(sub)
            if key == "$or":
                if not isinstance(value, list) or not value:
                    self.err(sub, "$or must be a non-empty array of patterns")
                    continue
                for i, branch in enumerate(value):
                    self.pattern(branch, f"{sub}[{i}]", depth + 1)
            elif isinstance(value, list):
                self.leaf(value, sub)
            elif isinstance(value, dict):
                self.pattern(value, sub, depth + 1)
            else:
                self.err(sub, f"expected an array of values or a nested pattern object, got {_kind(value)}")

    def leaf(self, values: list, path: str) -> None:
        if not values:
            self.err(path, "empty array matches nothing")
            return
        for i, value in enumerate(values):
            sub = f"{path}[{i}]"
            self.count(sub)
            if isinstance(value, dict):
                self.filter(value, sub)
            elif isinstance(value, list):
                self.err(sub, "nested arrays are not allowed in a pattern")
            elif isinstance(value, str):
                self.string(value, sub)
            elif isinstance(value, float) and not math.isfinite(value):
                self.err(sub, "number must be finite")
            elif value is not None and not isinstance(value, (bool, int, float)):
                self.err(sub, f"unsupported value {_kind(value)}")

    def filter(self, flt: dict, path: str) -> None:
        if len(flt) != 1:
            self.err(path, f"a filter object must have exactly one key, got {len(flt)}")
            return
        ((name, arg),) = flt.items()
        if name not in FILTERS:
            self.err(path, f"unknown filter {name!r}")
            return
        sub = f"{path}.{name}"
        if name in ("prefix", "suffix"):
            if isinstance(arg, dict):
                if list(arg) != ["equals-ignore-case"]:
                    self.err(sub, f'{name} takes a string or {{"equals-ignore-case": string}}')
                else:
                    self.string(arg["equals-ignore-case"], f"{sub}.equals-ignore-case")
            else:
                self.string(arg, sub)
        elif name == "equals-ignore-case":
            self.string(arg, sub)
        elif name == "wildcard":
            self.wildcard(arg, sub)
        elif name == "exists":
            if not isinstance(arg, bool):
                self.err(sub, f"exists takes true or false, got {_kind(arg)}")
        elif name == "numeric":
            self.numeric(arg, sub)
        elif name == "cidr":
            self.cidr(arg, sub)
        else:
            self.anything_but(arg, sub)

    def wildcard(self, arg: object, path: str) -> None:
        if self.string(arg, path):
            problem = _wildcard_problem(arg)  # type: ignore[arg-type]
            if problem:
                self.err(path, problem)

    def numeric(self, arg: object, path: str) -> None:
        if not isinstance(arg, list) or len(arg) not in (2, 4):
            self.err(path, 'numeric takes [op, number] or [op, number, op, number], e.g. [">", 0, "<=", 5]')
            return
        ops = arg[0::2]
        for i in range(0, len(arg), 2):
            op, num = arg[i], arg[i + 1]
            if op not in NUMERIC_OPS:
                self.err(
                    f"{path}[{i}]",
                    f"unknown numeric operator {op!r}; expected one of {' '.join(NUMERIC_OPS)}",
                )
            if not _is_number(num) or not _finite(num):
                self.err(f"{path}[{i + 1}]", f"expected a finite number, got {_kind(num)}")
        if len(ops) == 2 and all(op in NUMERIC_OPS for op in ops):
            lower = [op for op in ops if op in (">", ">=")]
            upper = [op for op in ops if op in ("<", "<=")]
            if len(lower) != 1 or len(upper) != 1:
                self.err(
                    path, "a numeric range needs one lower bound (> or >=) and one upper bound (< or <=)"
                )

    def cidr(self, arg: object, path: str) -> None:
        if not self.string(arg, path, allow_empty=False):
            return
        if "/" not in arg:  # type: ignore[operator]
            self.err(path, f"expected CIDR notation (address/prefix-length), got {arg!r}")
            return
        try:
            ipaddress.ip_network(arg)  # type: ignore[arg-type]
        except ValueError as exc:
            self.err(path, f"invalid CIDR: {exc}")

    def anything_but(self, arg: object, path: str) -> None:
        usage = (
            "anything-but takes a string, a number, a non-empty list of strings or of numbers, or an object "
            "with one of prefix/suffix/equals-ignore-case/wildcard"
        )
        if isinstance(arg, dict):
            if len(arg) != 1 or next(iter(arg)) not in STRING_FILTERS:
                self.err(path, usage)
                return
            ((name, value),) = arg.items()
            sub = f"{path}.{name}"
            values = value if isinstance(value, list) else [value]
            if not values:
                self.err(sub, "empty array matches nothing")
            for i, item in enumerate(values):
                isub = f"{sub}[{i}]" if isinstance(value, list) else sub
                if name == "wildcard":
                    self.wildcard(item, isub)
                else:
                    self.string(item, isub)
            return
        values = arg if isinstance(arg, list) else [arg]
        if not values:
            self.err(path, usage)
            return
        for i, item in enumerate(values):
            isub = f"{path}[{i}]" if isinstance(arg, list) else path
            if isinstance(item, str):
                self.string(item, isub)
            elif not _is_number(item) or not _finite(item):
                self.err(isub, usage)
        if any(isinstance(v, str) for v in values) and any(_is_number(v) for v in values):
            self.err(path, "anything-but list mixes strings and numbers")

    # -- config

    def rule(self, raw: object, path: str) -> Rule | None:
        if not isinstance(raw, dict):
            self.err(path, f"a rule must be an object, got {_kind(raw)}")
            return None
        n_before = len(self.errors)
        for key in raw:
            if key not in RULE_KEYS:
                self.err(f"{path}.{key}", f"unknown key (expected {', '.join(RULE_KEYS)})")
        rid = raw.get("id")
        if "id" not in raw:
            self.err(path, "missing 'id'")
        elif self.string(rid, f"{path}.id", allow_empty=False) and not ID_RE.fullmatch(rid):
            self.err(f"{path}.id", f"invalid id {rid!r}: use letters, digits and ._:@/+=- (at most 128)")
        for key in ("title", "description"):
            if key in raw:
                self.string(raw[key], f"{path}.{key}")
        severity = raw.get("severity", DEFAULT_SEVERITY)
        if severity not in SEVERITIES:
            self.err(
                f"{path}.severity", f"unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}"
            )
        if "pattern" not in raw:
            self.err(path, "missing 'pattern'")
        else:
            self.pattern(raw["pattern"], f"{path}.pattern")
        exclude = raw.get("exclude", [])
        if not isinstance(exclude, list):
            self.err(f"{path}.exclude", f"expected an array of patterns, got {_kind(exclude)}")
        else:
            for i, pat in enumerate(exclude):
                self.pattern(pat, f"{path}.exclude[{i}]")
        if len(self.errors) != n_before:
            return None
        return Rule(
            id=rid,
            title=raw.get("title", rid),
            severity=severity,
            description=raw.get("description", ""),
            pattern=copy.deepcopy(raw["pattern"]),  # the caller's later edits must not change the rule
            exclude=tuple(copy.deepcopy(exclude)),
        )


def _kind(value: object) -> str:
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


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _join(path: str, key: object) -> str:
    if isinstance(key, str) and _KEY_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _wildcard_problem(text: str) -> str | None:
    prev_star = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "*\\":
                return "invalid escape in wildcard: only \\* and \\\\ are allowed"
            i += 2
            prev_star = False
            continue
        if ch == "*":
            if prev_star:
                return "consecutive wildcard characters (**) are not allowed"
            prev_star = True
        else:
            prev_star = False
        i += 1
    return None


def validate_config(raw: object, source: str = "config") -> Config:
    """Validate a decoded config (object or bare list of event names); every fault goes into ConfigError."""
    v = _Validator()
    rules: list[Rule] = []
    names: list[str] = []
    raw_rules: list[object] = []
    try:
        if isinstance(raw, list):
            monitored: object = raw
            top = "monitored_events"
        elif isinstance(raw, dict):
            for key in raw:
                if key not in TOP_KEYS:
                    v.err(_join("", key), f"unknown top-level key (expected {' or '.join(TOP_KEYS)})")
            monitored = raw.get("monitored_events", [])
            raw_rules_obj = raw.get("rules", [])
            top = "monitored_events"
            if not isinstance(raw_rules_obj, list):
                v.err("rules", f"expected an array of rules, got {_kind(raw_rules_obj)}")
            else:
                raw_rules = raw_rules_obj
            if "monitored_events" not in raw and "rules" not in raw:
                v.err("(top level)", "no monitored_events or rules: nothing would be monitored")
        else:
            v.err("(top level)", f"expected an object or an array of event names, got {_kind(raw)}")
            raise _Stop
        if not isinstance(monitored, list):
            v.err(top, f"expected an array of event names, got {_kind(monitored)}")
            monitored = []
        if len(monitored) + len(raw_rules) > MAX_RULES:
            v.err("(top level)", f"more than {MAX_RULES} rules")
            raise _Stop
        seen: dict[str, str] = {}
        for i, name in enumerate(monitored):
            path = f"{top}[{i}]"
            if not v.string(name, path, allow_empty=False):
                continue
            if not ID_RE.fullmatch(name):
                v.err(path, f"invalid event name {name!r}: use letters, digits and ._:@/+=- (at most 128)")
                continue
            if name in seen:
                v.err(path, f"duplicate rule id {name!r} (also {seen[name]})")
                continue
            seen[name] = path
            names.append(name)
            pattern = {"eventName": [name]}
            rules.append(Rule(name, f"{name} event", DEFAULT_SEVERITY, f"Any {name} event.", pattern, ()))
        for i, item in enumerate(raw_rules):
            path = f"rules[{i}]"
            rule = v.rule(item, path)
            if rule is None:
                continue
            if rule.id in seen:
                v.err(f"{path}.id", f"duplicate rule id {rule.id!r} (also {seen[rule.id]})")
                continue
            seen[rule.id] = f"{path}.id"
            rules.append(rule)
        if not rules and not v.errors:
            v.err("(top level)", "no monitored_events or rules: nothing would be monitored")
    except _Stop:
        pass
    except RecursionError:
        v.errors.append("(top level): config nested too deeply")
    if v.errors:
        raise ConfigError(v.errors)
    normal = {
        "monitored_events": names,
        "rules": [
            {
                "id": r.id,
                "title": r.title,
                "severity": r.severity,
                "description": r.description,
                "pattern": r.pattern,
                "exclude": list(r.exclude),
            }
            for r in rules[len(names) :]
        ],
    }
    return Config(rules=tuple(rules), source=source, raw=normal)


def parse_config(data: bytes | str, source: str = "config") -> Config:
    """Decode JSON text (UTF-8) and validate it; decode faults name line and column."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{source}: config larger than {MAX_CONFIG_BYTES} bytes"])
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    else:
        text = data
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    def constant(name: str) -> float:
        raise ValueError(f"{name} is not valid JSON")

    try:
        raw = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from None
    except RecursionError:
        raise ConfigError([f"{source}: JSON nested too deeply"]) from None
    except ValueError as exc:
        raise ConfigError([f"{source}: invalid JSON: {exc}"]) from None
    if duplicates:
        keys = ", ".join(repr(k) for k in dict.fromkeys(duplicates))
        raise ConfigError(
            [f"{source}: duplicate object key(s) {keys}: JSON would silently keep only the last"]
        )
    return validate_config(raw, source)


def default_config_path() -> Path:
    return Path(__file__).resolve().with_name("default_events.json")


def load_default_config() -> Config:
    """The bundled default (``default_events.json`` next to this module; == top-level ``events.json``)."""
    path = Path(__file__).with_name("default_events.json")
    return parse_config(path.read_bytes(), source="default_events.json")


# ---------------------------------------------------------------------------------------------- matching

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


def _wildcard_segments(text: str) -> list[str]:
    """Split an (already validated) wildcard on unescaped stars, unescaping the literal parts."""
    segments, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            cur.append(text[i + 1])
            i += 2
            continue
        if ch == "*":
            segments.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    segments.append("".join(cur))
    return segments


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
    segments = _wildcard_segments(arg)  # type: ignore[arg-type]
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
    network = ipaddress.ip_network(arg)

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


# ---------------------------------------------------------------------------------------------- needles


def _enc(text: str) -> bytes:
    """Raw JSON form of a string's characters (no surrounding quotes), as CloudTrail writes it."""
    return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")


def _filter_literal(flt: object) -> bytes | None:
    if type(flt) is str:
        return b'"' + _enc(flt) + b'"'
    if type(flt) is not dict:
        return None  # numbers/true/false/null: a number has many spellings; skip all scalars
    ((name, arg),) = flt.items()
    if name == "prefix" and type(arg) is str:
        return b'"' + _enc(arg)
    if name == "suffix" and type(arg) is str:
        return _enc(arg) + b'"'
    if name == "wildcard":
        segments = _wildcard_segments(arg)
        if len(segments) == 1:
            return b'"' + _enc(segments[0]) + b'"'
        candidates = [b'"' + _enc(segments[0]), _enc(segments[-1]) + b'"']
        candidates += [_enc(s) for s in segments[1:-1]]
        return max(candidates, key=len)
    return None


def _leaf_literals(filters: list) -> frozenset[bytes] | None:
    out = set()
    for flt in filters:
        lit = _filter_literal(flt)
        if lit is None:
            return None
        out.add(lit)
    return frozenset(out)


def _pattern_literal_sets(pattern: dict, top: bool) -> list[tuple[bool, frozenset[bytes]]]:
    """Every literal set required by the pattern: (is top-level eventName, needles)."""
    found: list[tuple[bool, frozenset[bytes]]] = []
    for key, value in pattern.items():
        if key == "$or":
            union: set[bytes] = set()
            for branch in value:
                best = _best(_pattern_literal_sets(branch, False))
                if best is None:
                    union = set()
                    break
                union |= best
            else:
                found.append((False, frozenset(union)))
        elif isinstance(value, list):
            lits = _leaf_literals(value)
            if lits is not None:
                found.append((top and key == "eventName", lits))
        else:
            found.extend((False, s) for _, s in _pattern_literal_sets(value, False))
    return found


def _best(sets: list[tuple[bool, frozenset[bytes]]]) -> frozenset[bytes] | None:
    if not sets:
        return None
    return max(sets, key=lambda item: (item[0], min(len(n) for n in item[1]), -len(item[1])))[1]


def _rule_needles(rule: Rule) -> frozenset[bytes] | None:
    return _best(_pattern_literal_sets(rule.pattern, True))


def _minimise(needles: Iterable[bytes]) -> tuple[bytes, ...]:
    """Drop needles that contain another needle (the shorter one already flags those records)."""
    ordered = sorted(set(needles), key=lambda n: (len(n), n))
    kept: list[bytes] = []
    for needle in ordered:
        if not any(k in needle for k in kept):
            kept.append(needle)
    return tuple(sorted(kept))


@dataclass(frozen=True)
class KeyTest:
    """Raw spellings (``json.dumps(ensure_ascii=False)``, no quotes) a key's string value is tested with."""

    exact: frozenset[bytes] = frozenset()
    prefixes: frozenset[bytes] = frozenset()
    suffixes: frozenset[bytes] = frozenset()

    @staticmethod
    def union(tests: Iterable[KeyTest]) -> KeyTest:
        parts = list(tests)
        return KeyTest(
            frozenset().union(*(t.exact for t in parts)),
            frozenset().union(*(t.prefixes for t in parts)),
            frozenset().union(*(t.suffixes for t in parts)),
        )


@dataclass(frozen=True)
class PrefilterIndex:
    """``Matcher.prefilter_index``: top-level keys whose values a reader looks at, and the other needles."""

    keys: tuple[tuple[str, KeyTest], ...]
    needles: tuple[bytes, ...]


def _key_test(filters: list) -> KeyTest | None:
    """The leaf as a ``KeyTest`` when every filter needs a string value with a raw spelling to compare."""
    exact, prefixes, suffixes = set(), set(), set()
    for flt in filters:
        if type(flt) is str:
            exact.add(_enc(flt))
        elif type(flt) is dict and len(flt) == 1 and type(next(iter(flt.values()))) is str:
            ((name, arg),) = flt.items()
            if name == "prefix":
                prefixes.add(_enc(arg))
            elif name == "suffix":
                suffixes.add(_enc(arg))
            else:
                return None
        else:
            return None
    return KeyTest(frozenset(exact), frozenset(prefixes), frozenset(suffixes)) if filters else None


def _index_leaf(pattern: dict, indexable: Callable[[str], bool]) -> tuple[str, KeyTest] | None:
    """A required top-level leaf for the key index: eventName first, then the fewest prefix/suffix."""
    best: tuple[tuple[bool, int, str], str, KeyTest] | None = None
    for key, value in pattern.items():
        if key == "$or" or not isinstance(value, list) or not indexable(key):
            continue
        test = _key_test(value)
        if test is None:
            continue
        rank = (key != "eventName", len(test.prefixes) + len(test.suffixes), key)
        if best is None or rank < best[0]:
            best = (rank, key, test)
    return None if best is None else (best[1], best[2])


# ---------------------------------------------------------------------------------------------- matcher


def _required_event_names(pattern: dict) -> frozenset[str] | None:
    filters = pattern.get("eventName")
    if isinstance(filters, list) and all(type(f) is str for f in filters):
        return frozenset(filters)
    return None


class Matcher:
    """A config compiled once: per record, only rules that can match its eventName are evaluated.

    ``needles`` (prefilter proof): if a rule matches, some leaf L outside ``$or`` (or some ``$or`` group,
    all of whose branches yield literals) matched, because every field of a pattern must match, at every
    nesting level. We only take leaves whose every filter needs a present *string* value: an exact string
    ``s`` (raw text contains ``"s"``), a prefix ``p`` (``"p``), a suffix ``s`` (``s"``), a wildcard (each
    literal segment is a substring; the first is preceded by ``"``, the last followed by ``"``). Exact
    numbers, booleans, null, exists, numeric, cidr, equals-ignore-case and anything-but yield nothing.
    Without ``\\u`` and ``\\/`` escapes (records containing those are candidates for the reader anyway),
    JSON gives every character exactly one spelling, which is ``json.dumps(..., ensure_ascii=False)``
    encoded UTF-8, character by character; so the literal of the matched filter occurs in the raw text.
    A rule with no such leaf makes ``needles`` None.
    """

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
        self._indexes: dict[Callable[[str], bool], PrefilterIndex | None] = {}
        per_rule = [_rule_needles(rule) for rule in config.rules]
        if any(n is None for n in per_rule):
            self.needles: tuple[bytes, ...] | None = None
        else:
            self.needles = _minimise(n for s in per_rule for n in s)  # type: ignore[union-attr]

    def prefilter_index(self, indexable: Callable[[str], bool]) -> PrefilterIndex | None:
        """For a reader that looks at the values of top-level keys itself: which keys, which needles.

        Each rule is covered by one required top-level leaf on a key ``indexable`` accepts whose filters
        are all exact strings, prefixes or suffixes (rules indexed on exact eventNames always are, when
        ``indexable("eventName")``); else by its needles (the class docstring's proof). A matching
        record's value of that key is then a string passing one of the leaf's filters, or an array (a
        leaf matches an element). ``KeyTest`` holds the raw spellings a reader compares a string value's
        raw text with; the reader treats any other layout as a hit. None when a rule has neither.
        Computed once per ``indexable``.
        """
        cached = self._indexes.get(indexable, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        tests: dict[str, list[KeyTest]] = {}
        needles: set[bytes] = set()
        index: PrefilterIndex | None = None
        for rule in self.rules:
            leaf = _index_leaf(rule.pattern, indexable)
            if leaf is not None:
                tests.setdefault(leaf[0], []).append(leaf[1])
                continue
            found = _rule_needles(rule)
            if found is None:
                break
            needles |= found
        else:
            keys = tuple((key, KeyTest.union(parts)) for key, parts in sorted(tests.items()))
            index = PrefilterIndex(keys=keys, needles=_minimise(needles))
        self._indexes[indexable] = index
        return index

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
