"""A plain, slow reference evaluator of EventBridge patterns, written independently of rules.py.

Semantics as documented in ``trailwatch_processor.patterns`` (module docstring). Used only by tests.
"""

from __future__ import annotations

import ipaddress
import json
import re

from trailwatch_processor.literals import Literals

_ABSENT = object()


def _flatten(value: list) -> list:
    out = []
    for item in value:
        if isinstance(item, list):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _literal_equal(lit: object, v: object) -> bool:
    if lit is None:
        return v is None
    if isinstance(lit, bool):
        return isinstance(v, bool) and v == lit
    if _is_num(lit):
        return _is_num(v) and v == lit
    return isinstance(v, str) and v == lit


def _glob_regex(text: str) -> re.Pattern:
    parts = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            parts.append(re.escape(text[i + 1]))
            i += 2
        elif text[i] == "*":
            parts.append(".*")
            i += 1
        else:
            parts.append(re.escape(text[i]))
            i += 1
    return re.compile("".join(parts), re.DOTALL)


def _string_filter(name: str, arg: object, v: object) -> bool:
    if not isinstance(v, str):
        return False
    if name == "prefix":
        if isinstance(arg, dict):
            return v.casefold().startswith(arg["equals-ignore-case"].casefold())
        return v.startswith(arg)
    if name == "suffix":
        if isinstance(arg, dict):
            return v.casefold().endswith(arg["equals-ignore-case"].casefold())
        return v.endswith(arg)
    if name == "equals-ignore-case":
        return v.casefold() == arg.casefold()
    if name == "wildcard":
        return _glob_regex(arg).fullmatch(v) is not None
    raise AssertionError(name)


def _numeric(arg: list, v: object) -> bool:
    if not _is_num(v):
        return False
    ops = {
        "=": lambda a, b: a == b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return all(ops[arg[i]](v, arg[i + 1]) for i in range(0, len(arg), 2))


def _cidr(arg: str, v: object) -> bool:
    if not isinstance(v, str):
        return False
    try:
        addr = ipaddress.ip_address(v)
    except ValueError:
        return False
    net = ipaddress.ip_network(arg, strict=False)  # host bits masked, as EventBridge does
    return addr.version == net.version and addr in net


def _filter_matches_value(flt: object, v: object) -> bool:
    """One filter against one present leaf value (exists handled by the caller)."""
    if not isinstance(flt, dict):
        return _literal_equal(flt, v)
    (name, arg), *_ = flt.items()
    if name in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
        return _string_filter(name, arg, v)
    if name == "numeric":
        return _numeric(arg, v)
    if name == "cidr":
        return _cidr(arg, v)
    if name == "exists":
        return arg is True
    if name == "anything-but":
        if isinstance(arg, dict):
            (inner, inner_arg), *_ = arg.items()
            items = inner_arg if isinstance(inner_arg, list) else [inner_arg]
            return not any(_string_filter(inner, item, v) for item in items)
        items = arg if isinstance(arg, list) else [arg]
        return not any(_literal_equal(item, v) for item in items)
    raise AssertionError(name)


def leaf_matches(filters: list, value: object) -> bool:
    if value is _ABSENT:
        values = []
    elif isinstance(value, list):
        values = [v for v in _flatten(value) if not isinstance(v, dict)]
    elif isinstance(value, dict):
        values = []
    else:
        values = [value]
    if not values:
        return any(isinstance(f, dict) and f.get("exists") is False for f in filters)
    return any(_filter_matches_value(f, v) for f in filters for v in values)


def pattern_matches(pattern: dict, node: object) -> bool:
    if isinstance(node, list):
        objects = [e for e in _flatten(node) if isinstance(e, dict)]
        if objects:
            return any(pattern_matches(pattern, e) for e in objects)
        node = _ABSENT
    for key, sub in pattern.items():
        if key == "$or":
            if not any(pattern_matches(branch, node) for branch in sub):
                return False
            continue
        child = node.get(key, _ABSENT) if isinstance(node, dict) else _ABSENT
        ok = leaf_matches(sub, child) if isinstance(sub, list) else pattern_matches(sub, child)
        if not ok:
            return False
    return True


def rule_matches(pattern: dict, exclude: list[dict], record: dict) -> bool:
    return pattern_matches(pattern, record) and not any(pattern_matches(e, record) for e in exclude)


def literal_hit(literals: Literals, record: dict) -> bool:
    """Whether the record's compact text holds what the reader counts as a hit (literals' docstring)."""
    raw = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    if "\\u" in raw or "\\/" in raw or any(n in raw for n in literals.needles):
        return True
    members = re.finditer(r'"eventName"(?::"([^"\\]*)")?', raw)
    return any(
        m[1] is None or m[1] in literals.event_names or m[1].startswith(literals.event_name_prefixes)
        for m in members
    )
