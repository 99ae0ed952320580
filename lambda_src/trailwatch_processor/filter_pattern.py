"""CloudWatch Logs JSON filter patterns, translated into the EventBridge patterns ``patterns`` runs.

Accepted syntax (CloudWatch Logs "Using filter patterns to match terms in JSON log events"):
``{ SELECTOR OP VALUE }`` joined with ``&&`` / ``||`` and grouped with parentheses, where SELECTOR is
``$.a.b`` (``$.a[0]`` array indexing is refused: EventBridge cannot address an array element), OP is one of
``= != < > <= >=``, VALUE a quoted string, a bare token or a number; also ``SELECTOR IS NULL``,
``SELECTOR NOT EXISTS``, ``SELECTOR IS TRUE`` / ``IS FALSE``.

Translation and the choices where the documentation is silent (each is an exact rewrite, or refused):

* ``= "text"`` -> the string literal; ``*`` inside a value (quoted or not) is a wildcard: ``"a*"`` -> prefix,
  ``"*a"`` -> suffix, any other -> EventBridge ``wildcard``; ``= *`` alone (any value) -> ``exists: true``.
* ``= 5`` (an unquoted number) -> numeric equality; ``< > <= >=`` -> ``numeric`` (numbers only: a string
  operand is refused).
* ``!= X`` -> ``anything-but X``. A record WITHOUT the field does not match ``!=``: CloudWatch filter patterns
  "only return the log events that contain the terms you define" (FilterAndPatternSyntax) and absent fields
  have their own ``NOT EXISTS`` (no sentence covers ``!=`` on an absent field explicitly); EventBridge's
  ``anything-but`` likewise never matches a missing field. To also catch the missing field, write
  ``($.x != "y") || ($.x NOT EXISTS)``.
* ``IS NULL`` -> ``[null]`` (a JSON null only; a missing field is ``NOT EXISTS``); ``NOT EXISTS`` ->
  ``exists: false``; ``IS TRUE``/``IS FALSE`` -> the boolean literal.
* ``&&`` binds conditions into one pattern object (nested by selector path); ``||`` becomes ``$or`` over the
  disjunctive normal form, after merging alternatives that differ in one single-condition field into one
  leaf array (``($.e = A) || ($.e = B)`` -> ``{"e": ["A", "B"]}``) - exact, because a leaf array is an OR.
* Mixing ``&&`` and ``||`` at one parenthesis level is refused: CloudWatch does not document their
  precedence. Two conditions on one field in one conjunction are merged when exact (``!=`` with ``!=``
  -> one ``anything-but`` list, a lower with an upper numeric bound -> one range) and refused otherwise.

Known differences that a pattern cannot reveal at validation time (README, "Rules as code"): EventBridge
flattens arrays (a condition on ``$.a.b`` holds when any element of ``a`` satisfies it) and treats an object
value as absent for ``NOT EXISTS``; CloudWatch addresses arrays by index only.

Standard library only; the parser recurses only on parentheses, whose depth is checked first
(``MAX_PAREN_DEPTH``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MAX_LENGTH = 1024  # CloudWatch's own limit on a filter pattern
MAX_PAREN_DEPTH = 8
MAX_CONJUNCTIONS = 64  # size of the disjunctive normal form before merging

_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SELECTOR_RE = re.compile(r"\$((?:\.[A-Za-z0-9_@:-]+)+)")
_BARE_STOP = set(' \t\r\n()"&|}{')


class FilterPatternError(ValueError):
    """A filter pattern that is malformed or cannot be expressed exactly as an EventBridge pattern."""


@dataclass(frozen=True)
class _Cond:
    path: tuple[str, ...]
    flt: object  # one EventBridge filter (a literal or a filter object)
    op: str  # the CloudWatch operator, for merging and messages


@dataclass(frozen=True)
class _Tok:
    kind: str  # "(" ")" "&&" "||" "sel" "op" "str" "bare" "word"
    text: str
    pos: int


def _tokenize(text: str, start: int, n: int) -> list[_Tok]:
    """Tokens of ``text[start:n]``; positions count from the start of the whole pattern."""
    toks: list[_Tok] = []
    i = start
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in "()":
            toks.append(_Tok(ch, ch, i))
            i += 1
        elif text.startswith("&&", i) or text.startswith("||", i):
            toks.append(_Tok(text[i : i + 2], text[i : i + 2], i))
            i += 2
        elif ch in "!<>=":
            op = text[i : i + 2] if text[i : i + 2] in ("!=", "<=", ">=") else ch
            if op == "!":
                raise FilterPatternError(f"position {i}: '!' must be followed by '='")
            toks.append(_Tok("op", op, i))
            i += len(op)
        elif ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    raise FilterPatternError(f"position {j}: backslash escapes in values are not supported")
                j += 1
            if j >= n:
                raise FilterPatternError(f"position {i}: unterminated quoted string")
            toks.append(_Tok("str", text[i + 1 : j], i))
            i = j + 1
        elif ch == "$":
            m = _SELECTOR_RE.match(text, i)
            end = m.end() if m else i + 1
            if end < n and text[end] == "[":
                raise FilterPatternError(
                    f"position {end}: array indexing ({text[i : end + 1]}...) cannot be expressed: "
                    "EventBridge patterns match any element of an array, never a given index"
                )
            if not m or (end < n and text[end] not in _BARE_STOP and text[end] not in "!<>="):
                raise FilterPatternError(f"position {i}: invalid selector (expected $.field.subfield)")
            toks.append(_Tok("sel", m.group(1), i))
            i = end
        else:
            j = i
            while j < n and text[j] not in _BARE_STOP and text[j] not in "!<>=":
                j += 1
            if j == i:
                raise FilterPatternError(f"position {i}: unexpected {ch!r}")
            word = text[i:j]
            kind = "word" if word in ("IS", "NOT", "NULL", "EXISTS", "TRUE", "FALSE") else "bare"
            toks.append(_Tok(kind, word, i))
            i = j
    return toks


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise FilterPatternError("unexpected end of the pattern")
        self.i += 1
        return tok

    def expr(self, depth: int) -> tuple:
        """A node: ("cond", _Cond) | ("and", [nodes]) | ("or", [nodes])."""
        items = [self.primary(depth)]
        joiner: str | None = None
        while (tok := self.peek()) is not None and tok.kind in ("&&", "||"):
            if joiner is not None and tok.kind != joiner:
                raise FilterPatternError(
                    f"position {tok.pos}: '&&' and '||' mixed without parentheses; CloudWatch does not "
                    "document their precedence, so group them explicitly"
                )
            joiner = tok.kind
            self.take()
            items.append(self.primary(depth))
        if joiner is None:
            return items[0]
        return ("and" if joiner == "&&" else "or", items)

    def primary(self, depth: int) -> tuple:
        tok = self.take()
        if tok.kind == "(":
            if depth >= MAX_PAREN_DEPTH:
                raise FilterPatternError(
                    f"position {tok.pos}: parentheses nested deeper than {MAX_PAREN_DEPTH}"
                )
            node = self.expr(depth + 1)
            close = self.peek()
            if close is None or close.kind != ")":
                where = f"position {close.pos}" if close else "at the end"
                raise FilterPatternError(f"{where}: expected ')' to close the '(' at position {tok.pos}")
            self.take()
            return node
        if tok.kind != "sel":
            raise FilterPatternError(
                f"position {tok.pos}: expected a selector ($.field) or '(', got {tok.text!r}"
            )
        return ("cond", self.condition(tok))

    def condition(self, sel: _Tok) -> _Cond:
        path = tuple(sel.text[1:].split("."))
        tok = self.take()
        if tok.kind == "word":
            second = self.take()
            phrase = f"{tok.text} {second.text}"
            if phrase == "IS NULL":
                return _Cond(path, None, "IS NULL")
            if phrase == "NOT EXISTS":
                return _Cond(path, {"exists": False}, "NOT EXISTS")
            if phrase in ("IS TRUE", "IS FALSE"):
                return _Cond(path, phrase == "IS TRUE", phrase)
            raise FilterPatternError(f"position {tok.pos}: unknown operator {phrase!r}")
        if tok.kind != "op":
            raise FilterPatternError(f"position {tok.pos}: expected an operator after ${sel.text}")
        value = self.take()
        if value.kind not in ("str", "bare"):
            raise FilterPatternError(f"position {value.pos}: expected a value, got {value.text!r}")
        return _Cond(path, _filter(tok.text, value), tok.text)


def _filter(op: str, value: _Tok) -> object:
    text = value.text
    where = f"position {value.pos}"
    is_number = value.kind == "bare" and _NUMBER_RE.fullmatch(text) is not None
    if value.kind == "bare" and text.startswith("%"):
        raise FilterPatternError(f"{where}: regular expressions (%...%) cannot be expressed exactly")
    if op in ("<", ">", "<=", ">="):
        if not is_number:
            raise FilterPatternError(f"{where}: {op} compares numbers only, got {text!r}")
        return {"numeric": [op, _number(text)]}
    if is_number:
        return _number(text) if op == "=" else {"anything-but": _number(text)}
    if "**" in text:
        raise FilterPatternError(f"{where}: consecutive wildcards (**) cannot be expressed")
    if op == "=":
        if text == "*":
            return {"exists": True}
        return _string_filter(text)
    if text == "*":
        raise FilterPatternError(f"{where}: != * (no value at all) cannot be expressed; use NOT EXISTS")
    return {"anything-but": _string_filter(text)}


def _number(text: str) -> int | float:
    number = float(text)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _string_filter(text: str) -> object:
    if "*" not in text:
        return text
    inner = text.strip("*")
    stars_inside = "*" in inner
    if not stars_inside and text.endswith("*") and not text.startswith("*") and text.count("*") == 1:
        return {"prefix": inner}
    if not stars_inside and text.startswith("*") and not text.endswith("*") and text.count("*") == 1:
        return {"suffix": inner}
    return {"wildcard": text}


# ------------------------------------------------------------------------------------------- translation


def _dnf(node: tuple) -> list[list[_Cond]]:
    """Disjunctive normal form; recursion follows the parenthesis depth (bounded by the parser)."""
    kind = node[0]
    if kind == "cond":
        return [[node[1]]]
    if kind == "or":
        out: list[list[_Cond]] = []
        for child in node[1]:
            out.extend(_dnf(child))
            if len(out) > MAX_CONJUNCTIONS:
                raise FilterPatternError(f"pattern expands to more than {MAX_CONJUNCTIONS} alternatives")
        return out
    acc: list[list[_Cond]] = [[]]
    for child in node[1]:
        acc = [a + b for a in acc for b in _dnf(child)]
        if len(acc) > MAX_CONJUNCTIONS:
            raise FilterPatternError(f"pattern expands to more than {MAX_CONJUNCTIONS} alternatives")
    return acc


def _merge_same_field(path: tuple[str, ...], conds: list[_Cond]) -> object:
    """One filter for several AND-ed conditions on one field, when exact; else refused."""
    if len(conds) == 1:
        return conds[0].flt
    name = "$." + ".".join(path)
    flts = [c.flt for c in conds]
    if all(
        isinstance(f, dict) and "anything-but" in f and not isinstance(f["anything-but"], dict) for f in flts
    ):
        values = [f["anything-but"] for f in flts]  # type: ignore[index]
        if len({type(v) is str for v in values}) == 1:
            return {"anything-but": list(dict.fromkeys(values))}
    if len(flts) == 2 and all(isinstance(f, dict) and "numeric" in f for f in flts):
        ops = [f["numeric"][0] for f in flts]  # type: ignore[index]
        if {o[0] for o in ops} == {"<", ">"}:
            return {"numeric": [*flts[0]["numeric"], *flts[1]["numeric"]]}  # type: ignore[index]
    ops_text = " and ".join(c.op for c in conds)
    raise FilterPatternError(
        f"{name}: conditions {ops_text} on one field in one && group cannot be expressed as one "
        "EventBridge filter"
    )


def _conjunction(conds: list[_Cond]) -> dict[tuple[str, ...], object]:
    by_path: dict[tuple[str, ...], list[_Cond]] = {}
    for cond in conds:
        by_path.setdefault(cond.path, []).append(cond)
    paths = list(by_path)
    for a in paths:
        for b in paths:
            if a != b and b[: len(a)] == a:
                raise FilterPatternError(
                    f"$.{'.'.join(a)} and $.{'.'.join(b)} in one && group: a field cannot be both a value "
                    "and an object in an EventBridge pattern"
                )
    return {path: _merge_same_field(path, group) for path, group in by_path.items()}


def _key(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def _merge_alternatives(conjs: list[dict[tuple[str, ...], object]]) -> list[dict[tuple[str, ...], list]]:
    """Alternatives as {path: [filters]}; two that differ in one field only become one leaf array."""
    alts: list[dict[tuple[str, ...], list]] = []
    for conj in conjs:
        candidate = {path: [flt] for path, flt in conj.items()}
        for alt in alts:
            if set(alt) != set(candidate):
                continue
            differing = [p for p in alt if _key(alt[p]) != _key(candidate[p])]
            if len(differing) == 1 and all(len(alt[p]) == 1 for p in alt if p != differing[0]):
                leaf = alt[differing[0]]
                for flt in candidate[differing[0]]:
                    if _key(flt) not in {_key(f) for f in leaf}:
                        leaf.append(flt)
                break
            if not differing:
                break
        else:
            alts.append(candidate)
    return alts


def nest_paths(alt: dict[tuple[str, ...], list]) -> dict:
    """An EventBridge pattern from leaves keyed by field path: {("a", "b"): x} -> {"a": {"b": x}}."""
    out: dict = {}
    for path, leaf in alt.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = leaf
    return out


def translate(text: str) -> dict:
    """The EventBridge pattern equivalent to a CloudWatch Logs JSON filter pattern, or FilterPatternError."""
    if not isinstance(text, str):
        raise FilterPatternError("a filter pattern must be a string")
    if len(text) > MAX_LENGTH:
        raise FilterPatternError(f"longer than {MAX_LENGTH} characters (CloudWatch's limit)")
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise FilterPatternError(
            "only JSON filter patterns { ... } are supported (term and space-delimited patterns match text, "
            "not CloudTrail fields)"
        )
    first = text.index("{")
    toks = _tokenize(text, first + 1, text.rindex("}"))
    if not toks:
        raise FilterPatternError("empty pattern")
    parser = _Parser(toks)
    tree = parser.expr(0)
    if parser.peek() is not None:
        tok = parser.peek()
        raise FilterPatternError(f"position {tok.pos}: unexpected {tok.text!r}")  # type: ignore[union-attr]
    alts = _merge_alternatives([_conjunction(c) for c in _dnf(tree)])
    if len(alts) == 1:
        return nest_paths(alts[0])
    return {"$or": [nest_paths(alt) for alt in alts]}
