"""Convert Sigma rules for AWS CloudTrail into trailwatch rules (EventBridge pattern syntax).

pySigma parses each rule and its condition; this module only translates the parsed tree, and refuses (with
the reason) whatever EventBridge's pattern syntax cannot express exactly. The reading of a Sigma rule it
preserves: values compare as text, case-insensitively, with the record's scalars (a JSON boolean as
``true``/``false``, a number as its JSON text; null and objects have no text); ``*`` matches any run of
characters; a dotted field name is a path of nested keys; a list in the record matches when any element
matches.

Translation:

* a condition is normalised to ``P and not N1 and not N2 ...``; ``P`` becomes the rule's ``pattern`` (its
  disjunctive normal form, one ``$or`` branch per term) and each ``Ni`` term an ``exclude`` pattern, which
  the matcher applies exactly as ``not``. A ``not`` anywhere else is refused: negating a pattern of several
  fields (or of a field that may be an array) is not one EventBridge pattern in general.
* values: plain text -> ``equals-ignore-case`` (a literal when it has no letters), ``foo*`` -> ``prefix``
  with ``equals-ignore-case``, ``*foo`` -> ``suffix`` likewise; a value with inner or both-end wildcards
  becomes an EventBridge ``wildcard``, which is case-sensitive, so it is refused when its text has letters;
  ``?`` (one character) has no EventBridge form; ``re`` converts only a literal with an optional ``^``;
  ``cidr`` -> ``cidr``; ``exists`` -> ``exists`` and ``null`` -> ``[null, {"exists": false}]`` on fields
  CloudTrail documents as single values.

This module runs in the CLI only; the Lambda never imports pySigma.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from re import _constants as sre_constants  # the stdlib's regex parser (sre_parse is deprecated)
from re import _parser as sre_parse

import click
from trailwatch_processor.config import ConfigError
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.filter_pattern import nest_paths

from trailwatch.ui import format_table, printable

SEVERITY_OF_LEVEL = {
    "informational": "info",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}
# CloudTrail record fields the CloudTrail record-contents documentation gives as objects: two constraints
# below one of these may share it (EventBridge's nested pattern then means the same object, as Sigma does).
OBJECT_FIELDS = frozenset(
    {
        "userIdentity",
        "userIdentity.sessionContext",
        "userIdentity.sessionContext.sessionIssuer",
        "userIdentity.sessionContext.attributes",
        "userIdentity.sessionContext.webIdFederationData",
        "tlsDetails",
    }
)
# Object-valued fields: a string match on them reads the serialized object in SIEM backends, which
# EventBridge (leaf values only) cannot do.
OBJECT_VALUED = OBJECT_FIELDS | {
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "serviceEventDetails",
    "resources",
    "edgeDeviceDetails",
    "insightDetails",
}
# Documented as single strings: `exists` on these means the same in Sigma and EventBridge.
SCALAR_FIELDS = frozenset(
    {
        "eventVersion",
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "errorCode",
        "errorMessage",
        "requestID",
        "eventID",
        "eventType",
        "apiVersion",
        "recipientAccountId",
        "sharedEventID",
        "vpcEndpointId",
        "eventCategory",
        "userIdentity.type",
        "userIdentity.principalId",
        "userIdentity.arn",
        "userIdentity.accountId",
        "userIdentity.accessKeyId",
        "userIdentity.userName",
        "userIdentity.invokedBy",
        "userIdentity.identityProvider",
        "userIdentity.sessionContext.sessionIssuer.type",
        "userIdentity.sessionContext.sessionIssuer.principalId",
        "userIdentity.sessionContext.sessionIssuer.arn",
        "userIdentity.sessionContext.sessionIssuer.accountId",
        "userIdentity.sessionContext.sessionIssuer.userName",
        "userIdentity.sessionContext.attributes.creationDate",
        "userIdentity.sessionContext.attributes.mfaAuthenticated",
        "tlsDetails.tlsVersion",
        "tlsDetails.cipherSuite",
        "tlsDetails.clientProvidedHostHeader",
    }
)
MAX_TERMS = 64  # DNF terms of one pattern: beyond, the rule is refused rather than blown up

Path_ = tuple[str, ...]
Term = dict[Path_, list]  # field path -> EventBridge leaf filters (OR); all paths of a term are ANDed


class Refused(Exception):
    """The rule cannot be expressed exactly; the message says why."""


@dataclass
class Result:
    """One Sigma rule's outcome: ``rule`` (a trailwatch rule object) or ``reason`` (why it was refused)."""

    source: str
    sigma_id: str
    title: str
    rule: dict | None = None
    reason: str | None = None

    @property
    def converted(self) -> bool:
        return self.rule is not None


# ------------------------------------------------------------------------------------------- values


def _has_case(text: str) -> bool:
    return text.casefold() != text or text.upper() != text


def _wildcard_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


_NUMBER_CHARS = frozenset("0123456789+-.eE")
# Every JSON number: EventBridge's numeric filter compares by value, so these two cover them all.
ALL_NUMBERS = [{"numeric": [">=", 0]}, {"numeric": ["<", 0]}]


def _typed_extras(field_name: str, shown: str, regex: re.Pattern, texts: list[str]) -> list:
    """Filters for the JSON booleans and numbers whose text the value matches (Sigma compares as text).

    ``true``/``false`` are two texts: test them. Numbers are unbounded: a value that matches every text
    (``*``) takes every number; one whose literal text could be part of a number's text (digits, sign, point,
    exponent) is refused unless CloudTrail documents the field as a string.
    """
    extras: list = [b for b in (True, False) if regex.fullmatch("true" if b else "false")]
    if not any(texts):
        return extras + ALL_NUMBERS
    if field_name not in SCALAR_FIELDS and all(set(t) <= _NUMBER_CHARS for t in texts):
        raise Refused(
            f"value {shown!r} on {field_name!r} could match a JSON number's text, which Sigma compares as "
            "text and EventBridge by numeric value"
        )
    return extras


def _string_filters(field_name: str, value: object, case_sensitive: bool = False) -> list:
    """A SigmaString (modifiers already applied by pySigma) -> EventBridge leaf filters (OR)."""
    from sigma.types import SpecialChars

    parts: list[object] = []
    for part in value.s:  # type: ignore[attr-defined]
        if part == SpecialChars.WILDCARD_SINGLE:
            raise Refused("the single-character wildcard '?' has no EventBridge equivalent")
        if part == SpecialChars.WILDCARD_MULTI:
            if not parts or parts[-1] is not SpecialChars.WILDCARD_MULTI:
                parts.append(SpecialChars.WILDCARD_MULTI)
        elif isinstance(part, str):
            if parts and isinstance(parts[-1], str):
                parts[-1] += part
            elif part:
                parts.append(part)
        else:
            raise Refused(f"unsupported placeholder {part!r} in a value")
    star = SpecialChars.WILDCARD_MULTI
    texts = [p for p in parts if isinstance(p, str)]
    shown = "".join("*" if p is star else p for p in parts)  # type: ignore[misc]
    regex = re.compile(
        "".join(".*" if p is star else re.escape(p) for p in parts),  # type: ignore[arg-type]
        re.DOTALL if case_sensitive else re.IGNORECASE | re.DOTALL,
    )
    folds = (lambda _text: False) if case_sensitive else _has_case
    extras = _typed_extras(field_name, shown, regex, texts or [""]) if parts else []
    if not parts:
        return [""]
    if star not in parts:
        (text,) = texts
        return [{"equals-ignore-case": text} if folds(text) else text, *extras]
    if len(texts) == 1 and len(parts) == 2:
        text = texts[0]
        kind = "prefix" if parts[1] is star else "suffix"
        return [{kind: {"equals-ignore-case": text}} if folds(text) else {kind: text}, *extras]
    if any(folds(t) for t in texts):
        raise Refused(
            f"case-insensitive wildcard {shown!r}: EventBridge's wildcard (and contains) is case-sensitive "
            "and its text has letters"
        )
    return [{"wildcard": "".join("*" if p is star else _wildcard_escape(p) for p in parts)}, *extras]  # type: ignore[misc]


def _regex_filters(field_name: str, value: object) -> list:
    """``re``: only a literal, optionally anchored with ``^``, has an exact EventBridge form."""
    flags = {getattr(f, "name", str(f)).lower() for f in value.flags}  # type: ignore[attr-defined]
    pattern = value.regexp.to_plain() if hasattr(value.regexp, "to_plain") else str(value.regexp)  # type: ignore[attr-defined]
    ignore_case = bool(flags & {"ignorecase", "i"})
    if flags - {"ignorecase", "i"}:
        raise Refused(f"regular expression flags {sorted(flags)} are not supported")
    try:
        parsed = list(sre_parse.parse(pattern))
    except (sre_constants.error, re.error) as exc:
        raise Refused(f"invalid regular expression {pattern!r}: {exc}") from None
    anchored = bool(parsed) and parsed[0] == (sre_constants.AT, sre_constants.AT_BEGINNING)
    body = parsed[1:] if anchored else parsed
    chars = []
    for op, arg in body:
        if op is not sre_constants.LITERAL:
            raise Refused(
                f"regular expression {pattern!r} is not a plain literal (EventBridge has no regular "
                "expressions; only a literal with an optional ^ converts exactly)"
            )
        chars.append(chr(arg))
    text = "".join(chars)
    if not text:
        raise Refused(f"regular expression {pattern!r} matches every string")
    as_glob = re.compile(
        ("" if anchored else ".*") + re.escape(text) + ".*", re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    )
    extras = _typed_extras(field_name, pattern, as_glob, [text])
    if anchored:
        prefix = {"equals-ignore-case": text} if ignore_case and _has_case(text) else text
        return [{"prefix": prefix}, *extras]
    if ignore_case and _has_case(text):
        raise Refused(
            f"case-insensitive regular expression {pattern!r}: EventBridge's wildcard is case-sensitive"
        )
    return [{"wildcard": f"*{_wildcard_escape(text)}*"}, *extras]


def _leaf(field_name: str, value: object, case_sensitive: bool = False) -> list:
    """The EventBridge leaf for ``field_name`` compared with one parsed Sigma value."""
    from sigma import types as st

    if field_name in OBJECT_VALUED:
        raise Refused(
            f"{field_name!r} is an object in CloudTrail: Sigma matches its serialized text, EventBridge "
            "filters only apply to leaf values"
        )
    if isinstance(value, st.SigmaString):
        cased = case_sensitive or isinstance(value, st.SigmaCasedString)  # the `cased` modifier
        return _string_filters(field_name, value, cased)
    if isinstance(value, st.SigmaRegularExpression):
        return _regex_filters(field_name, value)
    if isinstance(value, st.SigmaCIDRExpression):
        return [{"cidr": str(value.network)}]
    if isinstance(value, st.SigmaExists):
        if field_name not in SCALAR_FIELDS:
            raise Refused(
                f"exists on {field_name!r}: exact only on fields CloudTrail documents as single values "
                "(EventBridge's exists ignores objects and empty arrays)"
            )
        return [{"exists": bool(value.exists)}]
    if isinstance(value, st.SigmaFieldReference):
        raise Refused(
            f"fieldref on {field_name!r}: EventBridge patterns compare with constants, not other fields"
        )
    if isinstance(value, st.SigmaNull):  # Sigma: the field is null or absent
        if field_name not in SCALAR_FIELDS:
            raise Refused(
                f"null on {field_name!r}: exact only on fields CloudTrail documents as single values "
                "(EventBridge's exists: false also matches objects and empty arrays)"
            )
        return [None, {"exists": False}]
    if isinstance(value, (st.SigmaNumber, st.SigmaBool)):
        raise Refused(
            f"{type(value).__name__} value on {field_name!r}: Sigma compares it with the text too, "
            "EventBridge literals are type-strict"
        )
    raise Refused(f"unsupported value {type(value).__name__} on {field_name!r}")


# ------------------------------------------------------------------------------------------- conditions


def _merge(a: Term, b: Term) -> Term:
    out = dict(a)
    for path, leaf in b.items():
        if path in out and out[path] != leaf:
            raise Refused(
                f"two conditions on the same field {'.'.join(path)!r} joined by AND (EventBridge puts one "
                "array of alternatives on a field)"
            )
        out[path] = leaf
    return out


def _or(terms: list[Term]) -> list[Term]:
    """Concatenate, folding terms that differ only in one field's alternatives into one leaf."""
    out: list[Term] = []
    for term in terms:
        for i, other in enumerate(out):
            if term.keys() != other.keys():
                continue
            diff = [p for p in term if term[p] != other[p]]
            if not diff:
                break
            if len(diff) == 1:
                (p,) = diff
                out[i] = {**other, p: other[p] + [f for f in term[p] if f not in other[p]]}
                break
        else:
            out.append(term)
    return out


def _dnf(node: object, cs: bool = False) -> list[Term]:
    from sigma import conditions as sc

    if isinstance(node, sc.ConditionFieldEqualsValueExpression):
        if not node.field:
            raise Refused("a keyword (full-text) search has no field to match")
        return [{tuple(node.field.split(".")): _leaf(node.field, node.value, cs)}]
    if isinstance(node, sc.ConditionValueExpression):
        raise Refused("a keyword (full-text) search has no field to match")
    if isinstance(node, sc.ConditionOR):
        return _or([t for arg in node.args for t in _dnf(arg, cs)])
    if isinstance(node, sc.ConditionAND):
        terms: list[Term] = [{}]
        for arg in node.args:
            terms = _or([_merge(a, b) for a, b in itertools.product(terms, _dnf(arg, cs))])
            if len(terms) > MAX_TERMS:
                raise Refused(f"the condition expands to more than {MAX_TERMS} alternatives")
        return terms
    if isinstance(node, sc.ConditionNOT):
        raise Refused(
            "'not' inside another expression: only 'X and not Y' converts exactly (Y becomes an exclude); "
            "negating several fields is not one EventBridge pattern"
        )
    raise Refused(f"unsupported condition element {type(node).__name__}")


def _check_siblings(term: Term) -> None:
    """Paths sharing a parent must share a known object: below an array EventBridge means one element."""
    paths = list(term)
    for a, b in itertools.combinations(paths, 2):
        common = 0
        while common < min(len(a), len(b)) and a[common] == b[common]:
            common += 1
        if common == min(len(a), len(b)):
            raise Refused(f"field {'.'.join(a)!r} and {'.'.join(b)!r}: one is inside the other")
        for depth in range(1, common + 1):
            parent = ".".join(a[:depth])
            if parent not in OBJECT_FIELDS:
                raise Refused(
                    f"{'.'.join(a)!r} and {'.'.join(b)!r} share {parent!r}, which may be an array: "
                    "EventBridge would require both in the same element"
                )


def _pattern(terms: list[Term]) -> dict:
    def nest(term: Term) -> dict:
        _check_siblings(term)
        return nest_paths(term)

    if not terms or terms == [{}]:
        raise Refused("the condition has no positive part to match")
    if len(terms) == 1:
        return nest(terms[0])
    return {"$or": [nest(t) for t in terms]}


def convert_condition(parsed: object, case_sensitive: bool = False) -> tuple[dict, list[dict]]:
    """A parsed Sigma condition -> (pattern, exclude patterns); Refused when not exact."""
    from sigma import conditions as sc

    conjuncts: list = []
    stack = [parsed]
    while stack:  # flatten nested ANDs: `a and not b and not c` may parse as AND(AND(a, not b), not c)
        node = stack.pop(0)
        if isinstance(node, sc.ConditionAND):
            stack[:0] = list(node.args)
        else:
            conjuncts.append(node)
    positives = [c for c in conjuncts if not isinstance(c, sc.ConditionNOT)]
    negatives = [c.args[0] for c in conjuncts if isinstance(c, sc.ConditionNOT)]
    if not positives:
        raise Refused("the condition has no positive part to match (only 'not ...')")
    positive = positives[0] if len(positives) == 1 else sc.ConditionAND(args=positives)
    pattern = _pattern(_dnf(positive, case_sensitive))
    excludes: list[dict] = []
    for neg in negatives:
        for term in _dnf(neg, case_sensitive):
            excludes.append(_pattern([term]))
    return pattern, excludes


# ------------------------------------------------------------------------------------------- rules


def _rule_id(sigma_id: str, stem: str) -> str:
    base = sigma_id or stem
    return f"sigma-{re.sub(r'[^A-Za-z0-9._:@/+=-]', '-', base)}"[:128]


def convert_rule(rule: object, source: str, case_sensitive: bool = False) -> Result:
    """One pySigma ``SigmaRule`` -> a Result (converted rule, or the reason for refusal).

    ``case_sensitive``: compare text values with their exact case instead of Sigma's case-insensitive
    matching (a stated departure, recorded in the rule's ``sigma.case_sensitive``).
    """
    sigma_id = str(rule.id) if rule.id else ""  # type: ignore[attr-defined]
    title = rule.title or Path(source).stem  # type: ignore[attr-defined]
    result = Result(source=source, sigma_id=sigma_id, title=title)
    logsource = rule.logsource  # type: ignore[attr-defined]
    if (logsource.product or "").lower() != "aws" or (logsource.service or "").lower() != "cloudtrail":
        result.reason = (
            f"logsource is product={logsource.product!r} service={logsource.service!r}, not aws/cloudtrail"
        )
        return result
    from sigma.exceptions import SigmaError

    conditions = rule.detection.parsed_condition  # type: ignore[attr-defined]
    try:
        if len(conditions) != 1:
            raise Refused("more than one condition")
        pattern, excludes = convert_condition(conditions[0].parsed, case_sensitive)
    except Refused as exc:
        result.reason = str(exc)
        return result
    except SigmaError as exc:  # pySigma's own parse errors (unknown identifier, bad syntax, ...)
        result.reason = f"pySigma could not parse the condition: {exc}"
        return result
    level = rule.level.name.lower() if rule.level else None  # type: ignore[attr-defined]
    meta: dict = {"id": sigma_id, "title": title}
    if case_sensitive:
        meta["case_sensitive"] = True
    for key, value in (
        ("description", rule.description),  # type: ignore[attr-defined]
        ("references", list(rule.references or [])),  # type: ignore[attr-defined]
        ("falsepositives", list(rule.falsepositives or [])),  # type: ignore[attr-defined]
        ("author", rule.author),  # type: ignore[attr-defined]
        ("level", level),
        ("status", rule.status.name.lower() if rule.status else None),  # type: ignore[attr-defined]
        ("tags", [str(t) for t in rule.tags or []]),  # type: ignore[attr-defined]
    ):
        if value:
            meta[key] = value
    out: dict = {
        "id": _rule_id(sigma_id, Path(source).stem),
        "title": title,
        "severity": SEVERITY_OF_LEVEL.get(level or "", "medium"),
        "description": (rule.description or title).strip(),  # type: ignore[attr-defined]
        "origin": "sigma",
        "sigma": meta,
        "pattern": pattern,
    }
    if excludes:
        out["exclude"] = excludes
    try:  # the processor's own validation is the final word on the syntax
        validate_config({"rules": [out]}, source=source)
    except ConfigError as exc:
        result.reason = f"the converted pattern is not valid: {exc}"
        return result
    result.rule = out
    return result


def sigma_files(paths: list[Path]) -> list[Path]:
    """Every .yml/.yaml file named, or below a named directory (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()))
        else:
            found.append(path)
    return found


def import_paths(paths: list[Path], case_sensitive: bool = False) -> list[Result]:
    """Parse every Sigma file with pySigma and convert each rule; a file pySigma rejects is a refusal."""
    import yaml
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError

    results: list[Result] = []
    for path in sigma_files(paths):
        try:
            collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"), collect_errors=True)
        except (SigmaError, yaml.YAMLError, UnicodeDecodeError, AttributeError, TypeError) as exc:
            # (pySigma raises AttributeError/TypeError on YAML that is not a mapping)
            results.append(Result(str(path), "", path.stem, reason=f"not a Sigma rule file: {exc}"))
            continue
        if collection.errors:
            results.append(Result(str(path), "", path.stem, reason=f"pySigma: {collection.errors[0]}"))
            continue
        if not collection.rules:
            results.append(Result(str(path), "", path.stem, reason="no Sigma rule in the file"))
        for rule in collection.rules:
            results.append(convert_rule(rule, str(path), case_sensitive))
    ids: dict[str, str] = {}
    for res in results:
        if res.rule is None:
            continue
        if res.rule["id"] in ids:
            res.reason = f"duplicate Sigma id {res.sigma_id} (also {ids[res.rule['id']]})"
            res.rule = None
        else:
            ids[res.rule["id"]] = res.source
    return results


def config_of(results: list[Result]) -> dict:
    """The trailwatch config holding every converted rule (validated by the processor's own code)."""
    config = {"rules": [r.rule for r in results if r.rule is not None]}
    validate_config(config, source="sigma import")
    return config


def dumps(config: dict) -> str:
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------- command


@click.command("import-sigma")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the converted rules as a trailwatch config here (default: print it on stdout).",
)
@click.option(
    "--case-sensitive",
    is_flag=True,
    help="Match text with its exact case, not Sigma's case-insensitive way (converts contains with letters; "
    "lets the processor index event names). Recorded in each rule as sigma.case_sensitive.",
)
def import_sigma(paths: tuple[Path, ...], output: Path | None, case_sensitive: bool) -> None:
    """Convert Sigma rules for AWS CloudTrail (files or directories) into trailwatch rules.

    Each rule is converted exactly or refused with the reason; the table goes to stdout with -o, to stderr
    without (stdout then carries the config). Exit 1 when no rule converted.

    \b
    Example:
      trailwatch rules import-sigma sigma/rules/cloud/aws/cloudtrail -o sigma-rules.json
      trailwatch upload-config sigma-rules.json
    """
    results = import_paths(list(paths), case_sensitive)
    to_err = output is None
    rows = [
        (
            Path(r.source).name,
            "converted" if r.converted else "refused",
            r.rule["id"] if r.rule else (r.sigma_id or "-"),
            printable(r.reason or ""),
        )
        for r in results
    ]
    for line in format_table(("file", "result", "rule", "reason"), rows):
        click.echo(line, err=to_err)
    converted = sum(r.converted for r in results)
    click.echo(f"{converted} converted, {len(results) - converted} refused", err=to_err)
    if not converted:
        raise click.exceptions.Exit(1)
    text = dumps(config_of(results))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
