"""Config schema and validation: decoded JSON in, a ``Config`` of ``Rule`` objects out, or a ``ConfigError``
naming every fault by its path (``rules[2].pattern.eventName[0]``). The pattern syntax is EventBridge's
(``patterns`` says what it means); the limits bound the matcher's depth and the literals a reader searches.
A rule may instead give a CloudWatch Logs ``filter_pattern`` (the ``filter_pattern`` module translates it),
and carry ``tests`` and ``origin``: metadata for the CLI's ``rules test``/``rules list``, validated for shape
only (the Lambda never reads test files and the matcher never looks at tests). A ``monitored_events`` entry is
an event name (the original short form) or ``{"name": ..., "tests": [...]}``: the same rule with tests.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import math
import re

from .config import DEFAULT_SEVERITY, SEVERITIES, Config, ConfigError, Rule
from .filter_pattern import FilterPatternError
from .filter_pattern import translate as translate_filter_pattern
from .noise_config import Suppression, unique_ids, validate_rule_noise, validate_suppressions
from .noise_config import json_kind as _kind

MAX_RULES = 1000
MAX_DEPTH = 10  # nesting of pattern objects (incl. $or branches)
MAX_NODES = 50_000  # keys + filter values over the whole config
MAX_STRING = 4096
MAX_ERRORS = 50

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")
_KEY_RE = re.compile(r"[A-Za-z0-9_$@:-]+")
RULE_KEYS = (
    "id",
    "title",
    "severity",
    "description",
    "pattern",
    "filter_pattern",
    "exclude",
    "origin",
    "tests",
    "sigma",
    "dedup",  # noise control (noise_config.py)
    "threshold",
)
ORIGINS = ("shipped", "sigma", "filter_pattern", "yours")
TEST_KEYS = ("name", "record", "file", "expect")
EXPECTS = ("match", "no-match")
TOP_KEYS = ("monitored_events", "rules", "suppressions")
MONITORED_KEYS = ("name", "tests")  # the object form of a monitored_events entry
STRING_FILTERS = ("prefix", "suffix", "equals-ignore-case", "wildcard")
FILTERS = ("prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "exists", "numeric", "cidr")
NUMERIC_OPS = ("<", "<=", "=", ">", ">=")


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
                if not isinstance(value, list) or len(value) < 2:
                    self.err(sub, "$or must be an array of at least two patterns")
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
        try:  # host bits are allowed and masked, as EventBridge does (10.0.0.7/24 is 10.0.0.0/24)
            ipaddress.ip_network(arg, strict=False)  # type: ignore[arg-type]
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
                else:  # EventBridge rejects an empty anything-but prefix/suffix (it would never match)
                    self.string(item, isub, allow_empty=name not in ("prefix", "suffix"))
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
        for key in ("title", "description", "origin"):
            if key in raw:
                self.string(raw[key], f"{path}.{key}")
        if "sigma" in raw and not isinstance(raw["sigma"], dict):  # metadata of an imported Sigma rule
            self.err(f"{path}.sigma", f"expected an object, got {_kind(raw['sigma'])}")
        severity = raw.get("severity", DEFAULT_SEVERITY)
        if severity not in SEVERITIES:
            self.err(
                f"{path}.severity", f"unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}"
            )
        pattern = self.rule_pattern(raw, path)
        exclude = raw.get("exclude", [])
        if not isinstance(exclude, list):
            self.err(f"{path}.exclude", f"expected an array of patterns, got {_kind(exclude)}")
        else:
            for i, pat in enumerate(exclude):
                self.pattern(pat, f"{path}.exclude[{i}]")
        origin = raw.get("origin", "filter_pattern" if "filter_pattern" in raw else "yours")
        if origin not in ORIGINS:
            self.err(f"{path}.origin", f"unknown origin {origin!r}; expected one of {', '.join(ORIGINS)}")
        tests = self.tests(raw["tests"], f"{path}.tests") if "tests" in raw else ()
        dedup, threshold = validate_rule_noise(self, raw, path)
        if len(self.errors) != n_before:
            return None
        return Rule(
            id=rid,
            title=raw.get("title", rid),
            severity=severity,
            description=raw.get("description", ""),
            pattern=copy.deepcopy(pattern),  # the caller's later edits must not change the rule
            exclude=tuple(copy.deepcopy(exclude)),
            origin=origin,
            filter_pattern=raw.get("filter_pattern"),
            tests=tests,
            dedup=dedup,
            threshold=threshold,
        )

    def rule_pattern(self, raw: dict, path: str) -> object:
        """The rule's EventBridge pattern: ``pattern`` as written, or ``filter_pattern`` translated."""
        if "pattern" not in raw and "filter_pattern" not in raw:
            self.err(path, "missing 'pattern'")  # or 'filter_pattern' (CloudWatch Logs syntax)
            return None
        if "pattern" in raw and "filter_pattern" in raw:
            self.err(path, "give only one of 'pattern' (EventBridge) and 'filter_pattern' (CloudWatch Logs)")
            return None
        if "pattern" in raw:
            self.pattern(raw["pattern"], f"{path}.pattern")
            return raw["pattern"]
        sub = f"{path}.filter_pattern"
        if not self.string(raw["filter_pattern"], sub, allow_empty=False):
            return None
        try:
            translated = translate_filter_pattern(raw["filter_pattern"])
        except FilterPatternError as exc:
            self.err(sub, str(exc))
            return None
        n_before = len(self.errors)
        self.pattern(translated, f"{sub}(translated)")
        return translated if len(self.errors) == n_before else None

    def monitored_entry(self, entry: object, path: str) -> tuple[str | None, str, tuple[dict, ...]]:
        """A ``monitored_events`` entry: an event name, or ``{"name": ..., "tests": [...]}`` (the same rule
        with tests beside it). Returns (name or None when invalid, the name's path, tests)."""
        if not isinstance(entry, dict):
            ok = self.string(entry, path, allow_empty=False)
            return (entry if ok else None), path, ()  # type: ignore[return-value]
        n_before = len(self.errors)
        for key in entry:
            if key not in MONITORED_KEYS:
                self.err(_join(path, key), f"unknown key (expected {', '.join(MONITORED_KEYS)})")
        name_path = f"{path}.name"
        if "name" not in entry:
            self.err(path, "missing 'name' (the event name)")
        else:
            self.string(entry["name"], name_path, allow_empty=False)
        tests = self.tests(entry["tests"], f"{path}.tests") if "tests" in entry else ()
        if len(self.errors) != n_before:
            return None, name_path, ()
        return entry["name"], name_path, tests

    def tests(self, tests: object, path: str) -> tuple[dict, ...]:
        """Validate a rule's tests (shape only: the CLI reads ``file`` references, the Lambda never does)."""
        if not isinstance(tests, list):
            self.err(path, f"expected an array of tests, got {_kind(tests)}")
            return ()
        out: list[dict] = []
        for i, test in enumerate(tests):
            sub = f"{path}[{i}]"
            if not isinstance(test, dict):
                self.err(sub, f"a test must be an object, got {_kind(test)}")
                continue
            for key in test:
                if key not in TEST_KEYS:
                    self.err(f"{sub}.{key}", f"unknown key (expected {', '.join(TEST_KEYS)})")
            if "name" in test:
                self.string(test["name"], f"{sub}.name", allow_empty=False)
            if ("record" in test) == ("file" in test):
                self.err(
                    sub, "give exactly one of 'record' (inline) and 'file' (path relative to the config)"
                )
            elif "record" in test and not isinstance(test["record"], dict):
                self.err(f"{sub}.record", f"a record must be an object, got {_kind(test['record'])}")
            elif (
                "file" in test
                and self.string(test["file"], f"{sub}.file", allow_empty=False)
                and (test["file"].startswith(("/", "\\")) or ":" in test["file"])
            ):
                self.err(f"{sub}.file", "must be a path relative to the config file")
            if test.get("expect") not in EXPECTS:
                self.err(f"{sub}.expect", f"expected one of {', '.join(EXPECTS)}, got {test.get('expect')!r}")
            out.append(test)
        return tuple(out)


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


def rule_json(rule: Rule, *, noise: bool = True) -> dict:
    """``rule`` as a config document's rule entry; without its dedup/threshold when ``noise`` is False."""
    return {
        "id": rule.id,
        "title": rule.title,
        "severity": rule.severity,
        "description": rule.description,
        "pattern": rule.pattern,
        "exclude": list(rule.exclude),
        **({"dedup": rule.dedup.as_json()} if noise and rule.dedup else {}),
        **({"threshold": rule.threshold.as_json()} if noise and rule.threshold else {}),
    }


def validate_config(raw: object, source: str = "config") -> Config:
    """Validate a decoded config (object or bare list of event names); every fault goes into ConfigError."""
    v = _Validator()
    rules: list[Rule] = []
    suppressions: tuple[Suppression, ...] = ()
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
        for i, entry in enumerate(monitored):
            path = f"{top}[{i}]"
            name, name_path, tests = v.monitored_entry(entry, path)
            if name is None:
                continue
            if not ID_RE.fullmatch(name):
                v.err(
                    name_path, f"invalid event name {name!r}: use letters, digits and ._:@/+=- (at most 128)"
                )
                continue
            if name in seen:
                v.err(name_path, f"duplicate rule id {name!r} (also {seen[name]})")
                continue
            seen[name] = name_path
            names.append(name)
            pattern = {"eventName": [name]}
            rules.append(
                Rule(name, f"{name} event", DEFAULT_SEVERITY, f"Any {name} event.", pattern, (), tests=tests)
            )
        rules.extend(unique_ids(v, raw_rules, "rules", "rule", v.rule, seen))
        if not rules and not v.errors:
            v.err("(top level)", "no monitored_events or rules: nothing would be monitored")
        if isinstance(raw, dict) and "suppressions" in raw:
            known = set(names) | {r.get("id") for r in raw_rules if isinstance(r, dict)}  # type: ignore[misc]
            suppressions = validate_suppressions(v, raw["suppressions"], known)  # type: ignore[arg-type]
    except _Stop:
        pass
    except RecursionError:
        v.errors.append("(top level): config nested too deeply")
    if v.errors:
        raise ConfigError(v.errors)
    normal = {
        "monitored_events": names,
        "rules": [rule_json(r) for r in rules[len(names) :]],
    }
    if suppressions:
        normal["suppressions"] = [s.as_json() for s in suppressions]
    return Config(rules=tuple(rules), source=source, raw=normal, suppressions=suppressions)
