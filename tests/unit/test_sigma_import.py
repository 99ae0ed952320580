"""Sigma import: the vendored SigmaHQ CloudTrail rules, converted or refused with a reason, and every
converted rule compared with an independent reading of the Sigma rule on real and near-miss records.

The reference evaluator below reads the rule's YAML with PyYAML and follows the Sigma specification
directly (condition grammar, modifiers, wildcards, case-insensitive strings); it shares no code with
``trailwatch.sigma_import`` or pySigma. The converted rule runs through the processor's own matcher. The
near-miss generator takes one thing from the importer: its list of fields CloudTrail documents as single
strings (``SCALAR_FIELDS``), so that generated records stay within CloudTrail's schema.
"""

# ruff: noqa: E501 -- the parametrize tables read best one case per line
from __future__ import annotations

import copy
import functools
import ipaddress
import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from trailwatch import sigma_import
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.patterns import compile_config

SIGMA_DIR = Path(__file__).resolve().parents[1] / "data" / "sigma"
RULE_FILES = sorted((SIGMA_DIR / "rules").glob("*.yml"))
# Measured on the vendored SigmaHQ commit (tests/data/sigma/SOURCES.md); README "Sigma import" quotes them.
EXPECTED_CONVERTED = 46
EXPECTED_REFUSED = 11

# ------------------------------------------------------------------------ independent Sigma evaluator

_MISSING = object()


def _resolve(record: object, path: str) -> tuple[bool, list]:
    """(present, scalar values) of a dotted field; arrays on the way and at the end are flattened."""
    nodes = [record]
    for key in path.split("."):
        nxt = []
        for node in nodes:
            stack = [node]
            while stack:
                cur = stack.pop()
                if isinstance(cur, list):
                    stack.extend(cur)
                elif isinstance(cur, dict) and key in cur:
                    nxt.append(cur[key])
        nodes = nxt
    values: list = []
    stack = list(nodes)
    while stack:
        cur = stack.pop()
        if isinstance(cur, list):
            stack.extend(cur)
        else:
            values.append(cur)
    return bool(nodes), values


@functools.cache  # the reference meets the same values on every record
def _glob_regex(value: str, mods: tuple[str, ...], case_sensitive: bool) -> re.Pattern:
    """Sigma value -> regex: * any run, ? one character, backslash escapes * ? and itself."""
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in "*?\\":
            out.append(re.escape(value[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    body = "".join(out)
    if "contains" in mods or "endswith" in mods:
        body = ".*" + body
    if "contains" in mods or "startswith" in mods:
        body = body + ".*"
    return re.compile(body, re.DOTALL if case_sensitive else re.IGNORECASE | re.DOTALL)


def _text(value: object) -> str | None:
    """A scalar's text as Sigma compares it: strings as is, booleans and numbers as JSON; null has none."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return None


def _value_matches(record: dict, field: str, mods: list[str], expected: object, cs: bool) -> bool:
    present, raw_values = _resolve(record, field)
    values = [t for t in map(_text, raw_values) if t is not None]
    if "exists" in mods:
        return present is bool(expected)
    if expected is None:
        return not present or any(v is None for v in raw_values)
    if "cidr" in mods:
        net = ipaddress.ip_network(str(expected), strict=False)
        for v in values:
            try:
                if isinstance(v, str) and ipaddress.ip_address(v) in net:
                    return True
            except ValueError:
                pass
        return False
    if "re" in mods:
        flags = (
            (re.IGNORECASE if "i" in mods else 0)
            | (re.M if "m" in mods else 0)
            | (re.S if "s" in mods else 0)
        )
        return any(isinstance(v, str) and re.search(str(expected), v, flags) for v in values)
    if not isinstance(expected, str):
        raise NotImplementedError(f"non-string value {expected!r}")
    rx = _glob_regex(expected, tuple(mods), cs or "cased" in mods)
    return any(isinstance(v, str) and rx.fullmatch(v) for v in values)


def _selection_matches(record: dict, selection: object, cs: bool) -> bool:
    if isinstance(selection, list):
        return any(_selection_matches(record, item, cs) for item in selection)
    if not isinstance(selection, dict):
        raise NotImplementedError("keyword search")
    for key, raw in selection.items():
        field, *mods = key.split("|")
        if "fieldref" in mods:
            raise NotImplementedError("fieldref")
        values = raw if isinstance(raw, list) else [raw]
        results = [_value_matches(record, field, mods, v, cs) for v in values]
        if not (all(results) if "all" in mods else any(results)):
            return False
    return True


_TOKEN = re.compile(r"\s*(\(|\)|1 of [\w*]+|all of [\w*]+|\w+)")


def _condition(text: str, detection: dict, cs: bool):
    """Parse a Sigma condition (or > and > not; 1 of / all of; parentheses) into a record predicate."""
    tokens = _TOKEN.findall(text)
    assert "".join(tokens).replace(" ", "") == text.replace(" ", ""), text
    names = [k for k in detection if k != "condition"]
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def joined(word: str, operand, join):
        """``operand (word operand)*`` as one predicate: ``join`` is ``any`` for or, ``all`` for and."""
        parts = [operand()]
        while peek() == word:
            take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else lambda r: join(p(r) for p in parts)

    def expr_or():
        return joined("or", expr_and, any)

    def expr_and():
        return joined("and", expr_not, all)

    def expr_not():
        if peek() == "not":
            take()
            inner = expr_not()
            return lambda r: not inner(r)
        return atom()

    def atom():
        tok = take()
        if tok == "(":
            inner = expr_or()
            assert take() == ")"
            return inner
        if tok.startswith(("1 of ", "all of ")):
            quant, target = tok.split(" of ")
            if target == "them":
                chosen = [n for n in names if not n.startswith("_")]
            else:
                rx = re.compile(re.escape(target).replace(r"\*", ".*"))
                chosen = [n for n in names if rx.fullmatch(n)]
            sels = [detection[n] for n in chosen]
            agg = any if quant == "1" else all
            return lambda r: agg(_selection_matches(r, s, cs) for s in sels)
        sel = detection[tok]
        return lambda r: _selection_matches(r, sel, cs)

    pred = expr_or()
    assert pos == len(tokens), text
    return pred


def sigma_reference(rule_yaml: dict, case_sensitive: bool = False):
    """The Sigma rule as a record predicate (``case_sensitive``: the importer's stated departure)."""
    detection = rule_yaml["detection"]
    cond = detection["condition"]
    assert isinstance(cond, str)
    return _condition(cond, detection, case_sensitive)


# ------------------------------------------------------------------------ near-miss records


def _witness(value: object, mods: list[str]) -> object:
    """A record value satisfying one Sigma value (before mutations)."""
    if "exists" in mods:
        return "present" if value else _MISSING
    if value is None:
        return _MISSING
    if "cidr" in mods:
        return str(next(ipaddress.ip_network(str(value), strict=False).hosts()))
    if "re" in mods:  # the importer converts only literals with an optional ^
        return str(value).removeprefix("^") + "-post"
    text = re.sub(r"\\([*?\\])", r"\1", str(value).replace("*", "x").replace("?", "y"))
    if "contains" in mods:
        return f"pre-{text}-post"
    if "startswith" in mods:
        return f"{text}-post"
    if "endswith" in mods:
        return f"pre-{text}"
    return text


def _set(record: dict, path: str, value: object) -> None:
    keys = path.split(".")
    node = record
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if value is _MISSING:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value


def _items(selection: object):
    """(field, mods, values) of a selection (every map of a list-of-maps selection)."""
    maps = selection if isinstance(selection, list) else [selection]
    for m in maps:
        for key, raw in m.items():
            field, *mods = key.split("|")
            yield field, mods, (raw if isinstance(raw, list) else [raw])


def near_miss_records(rule_yaml: dict) -> list[dict]:
    """Records built from the rule's own values, then each field mutated in the ways matching trips on."""
    detection = rule_yaml["detection"]
    selections = {k: v for k, v in detection.items() if k != "condition"}
    bases: list[dict] = []
    union: dict = {}
    for sel in selections.values():
        for alt in range(3):  # the first three alternatives of each list value
            record: dict = {}
            for field, mods, values in _items(sel):
                _set(record, field, _witness(values[min(alt, len(values) - 1)], mods))
                _set(union, field, _witness(values[min(alt, len(values) - 1)], mods))
            bases.append(record)
    bases.append(union)
    for name in selections:  # everything except one selection
        rec: dict = {}
        for other, sel in selections.items():
            if other != name:
                for field, mods, values in _items(sel):
                    _set(rec, field, _witness(values[0], mods))
        bases.append(rec)
    fields = sorted({f for sel in selections.values() for f, _, _ in _items(sel)})
    out: list[dict] = []
    for base in bases:
        out.append(base)
        for field in fields:
            _, values = _resolve(base, field)
            current = values[0] if values else "value"
            variants: list[object] = [_MISSING, None, "", "zz", "true", "12345"]
            if isinstance(current, str):
                variants += [current.swapcase(), current + "z", "z" + current, current[:-1], current.upper()]
            if field not in sigma_import.SCALAR_FIELDS:  # CloudTrail documents these as single strings
                variants += [[current], ["other", current], ["other"], {"nested": current}]
                variants += [True, False, 12345, -1.5, 0, [False]]
            for variant in variants:
                rec = copy.deepcopy(base)
                _set(rec, field, variant)
                out.append(rec)
    return out


# ------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def results() -> list[sigma_import.Result]:
    return sigma_import.import_paths([SIGMA_DIR / "rules"])


@pytest.fixture(scope="module")
def converted(results) -> list[tuple[dict, dict]]:
    """(trailwatch rule, Sigma YAML) of every converted rule."""
    return [(r.rule, yaml.safe_load(Path(r.source).read_text())) for r in results if r.converted]


@pytest.fixture(scope="module", params=[False, True], ids=["sigma-case", "case-sensitive"])
def converted_in_mode(request, results) -> tuple[bool, list[tuple[dict, dict]]]:
    """(case_sensitive, converted pairs) for the importer's default and its --case-sensitive mode."""
    res = (
        sigma_import.import_paths([SIGMA_DIR / "rules"], case_sensitive=request.param)
        if request.param
        else results
    )
    return request.param, [(r.rule, yaml.safe_load(Path(r.source).read_text())) for r in res if r.converted]


def _convert_text(text: str) -> sigma_import.Result:
    from sigma.collection import SigmaCollection

    (rule,) = SigmaCollection.from_yaml(textwrap.dedent(text)).rules
    return sigma_import.convert_rule(rule, "inline.yml")


def _rule(detection: str, logsource: str = "product: aws\n    service: cloudtrail") -> str:
    return (
        "title: Test\nid: 11111111-2222-3333-4444-555555555555\nstatus: test\nlevel: high\n"
        f"logsource:\n    {logsource}\ndetection:\n{textwrap.indent(textwrap.dedent(detection), '    ')}"
    )


# ------------------------------------------------------------------------ tests


def test_vendored_rules_are_the_sigmahq_cloudtrail_folder():
    assert len(RULE_FILES) == EXPECTED_CONVERTED + EXPECTED_REFUSED == 57
    assert (SIGMA_DIR / "LICENSE.Detection.Rules.md").is_file()
    assert "8eaafff1f2845a696050e05e72ba1140ee190698" in (SIGMA_DIR / "SOURCES.md").read_text()


def test_most_sigmahq_cloudtrail_rules_convert_and_each_refusal_says_why(results):
    done = [r for r in results if r.converted]
    refused = [r for r in results if not r.converted]
    assert (len(done), len(refused)) == (EXPECTED_CONVERTED, EXPECTED_REFUSED)
    assert len(done) > len(results) / 2
    for r in refused:
        assert r.reason and len(r.reason) > 20, r.source
    config = validate_config(sigma_import.config_of(results))
    assert len(config.rules) == EXPECTED_CONVERTED


def test_case_sensitive_mode_converts_more_and_says_so():
    res = sigma_import.import_paths([SIGMA_DIR / "rules"], case_sensitive=True)
    done = [r for r in res if r.converted]
    assert (len(done), len(res) - len(done)) == (52, 5)
    assert all(r.rule["sigma"]["case_sensitive"] is True for r in done)
    text = json.dumps([r.rule["pattern"] for r in done])
    assert "equals-ignore-case" not in text
    # no equals-ignore-case: the processor's literal pre-filter applies to the whole imported set
    assert compile_config(validate_config(sigma_import.config_of(res))).literals is not None


def test_imported_rules_keep_the_sigma_metadata(converted):
    by_sigma = {rule["sigma"]["id"]: (rule, y) for rule, y in converted}
    rule, y = by_sigma["8ad1600d-e9dc-4251-b0ee-a65268f29add"]  # AWS Root Credentials
    assert rule["origin"] == "sigma"
    assert rule["id"] == "sigma-8ad1600d-e9dc-4251-b0ee-a65268f29add"
    assert rule["title"] == y["title"] == rule["sigma"]["title"]
    assert rule["severity"] == y["level"]
    assert rule["sigma"]["references"] == y["references"]
    assert rule["sigma"]["falsepositives"] == y["falsepositives"]
    assert rule["sigma"]["author"] == y["author"]
    assert rule["sigma"]["description"] == y["description"]
    assert rule["exclude"] == [{"eventType": [{"equals-ignore-case": "AwsServiceEvent"}]}]


def test_converted_rules_match_what_the_sigma_rule_says_on_real_and_near_miss_records(
    converted_in_mode, shared_records
):
    case_sensitive, converted = converted_in_mode
    config = validate_config({"rules": [rule for rule, _ in converted]})
    matcher = compile_config(config)
    total_real = 0
    matched = [{m.id for m in matcher.match(r)} for r in shared_records]  # every rule's matches at once
    for rule, y in converted:
        reference = sigma_reference(y, case_sensitive)
        single = compile_config(validate_config({"rules": [rule]}))
        near = near_miss_records(y)
        got_near = [bool(single.match(r)) for r in near]
        want_near = [reference(r) for r in near]
        diffs = [json.dumps(r) for r, g, w in zip(near, got_near, want_near, strict=True) if g != w]
        assert not diffs, f"{rule['id']} ({y['title']}) differs on {len(diffs)} records, e.g. {diffs[:3]}"
        assert any(want_near) and not all(want_near), rule["id"]  # the near misses straddle the rule
        want_real = {i for i, r in enumerate(shared_records) if reference(r)}
        got_real = {i for i, ids in enumerate(matched) if rule["id"] in ids}
        assert got_real == want_real, rule["id"]
        total_real += len(want_real)
    assert total_real > 0  # some imported rules do fire on the shared real records
    if not case_sensitive:  # the README quotes these (Sigma import section)
        fired = sum(1 for rule, y in converted if any(sigma_reference(y)(r) for r in shared_records))
        assert (total_real, fired, len(shared_records)) == (470, 27, 1017)


@pytest.mark.parametrize(
    ("detection", "pattern", "exclude"),
    [
        (
            "sel:\n    eventName: CreateUser\ncondition: sel",
            {"eventName": [{"equals-ignore-case": "CreateUser"}]},
            [],
        ),
        (
            "sel:\n    eventName|startswith: Put\ncondition: sel",
            {"eventName": [{"prefix": {"equals-ignore-case": "Put"}}]},
            [],
        ),
        (
            "sel:\n    eventName|endswith: Policy\ncondition: sel",
            {"eventName": [{"suffix": {"equals-ignore-case": "Policy"}}]},
            [],
        ),
        (
            "sel:\n    sourceIPAddress|contains: '10.0.'\ncondition: sel",
            {"sourceIPAddress": [{"wildcard": "*10.0.*"}]},
            [],
        ),
        (
            "sel:\n    requestParameters.enable: 'false'\ncondition: sel",
            {"requestParameters": {"enable": [{"equals-ignore-case": "false"}, False]}},
            [],
        ),
        (
            "sel:\n    requestParameters.name|contains: '*'\ncondition: sel",
            {
                "requestParameters": {
                    "name": [{"wildcard": "*"}, True, False, {"numeric": [">=", 0]}, {"numeric": ["<", 0]}]
                }
            },
            [],
        ),
        ("sel:\n    eventName|cased: CreateUser\ncondition: sel", {"eventName": ["CreateUser"]}, []),
        (
            "a:\n    eventName: A\nb:\n    awsRegion: '1'\nc:\n    errorCode: '2'\ncondition: (a and not b) and not c",
            {"eventName": [{"equals-ignore-case": "A"}]},
            [{"awsRegion": ["1"]}, {"errorCode": ["2"]}],
        ),
        (
            "sel:\n    sourceIPAddress|cidr: 10.0.0.0/8\ncondition: sel",
            {"sourceIPAddress": [{"cidr": "10.0.0.0/8"}]},
            [],
        ),
        (
            "sel:\n    errorCode|exists: false\n    eventName: X\ncondition: sel",
            {"errorCode": [{"exists": False}], "eventName": [{"equals-ignore-case": "X"}]},
            [],
        ),
        (
            "sel:\n    userIdentity.arn|re: '^arn:aws:iam'\ncondition: sel",
            {"userIdentity": {"arn": [{"prefix": "arn:aws:iam"}]}},
            [],
        ),
        (
            "a:\n    eventName: A\nb:\n    eventName: B\ncondition: 1 of a or b",
            {"eventName": [{"equals-ignore-case": "A"}, {"equals-ignore-case": "B"}]},
            [],
        ),
        (
            "a:\n    eventName: A\nb:\n    eventSource: b.amazonaws.com\ncondition: all of them",
            {
                "eventName": [{"equals-ignore-case": "A"}],
                "eventSource": [{"equals-ignore-case": "b.amazonaws.com"}],
            },
            [],
        ),
        (
            "a:\n    eventName: A\nb:\n    awsRegion: '10.1'\nc:\n    errorCode: '10.2'\ncondition: a and not (b or c)",
            {"eventName": [{"equals-ignore-case": "A"}]},
            [{"awsRegion": ["10.1"]}, {"errorCode": ["10.2"]}],
        ),
    ],
)
def test_conversion_forms(detection, pattern, exclude):
    result = _convert_text(_rule(detection))
    assert result.converted, result.reason
    assert result.rule["pattern"] == pattern
    assert result.rule.get("exclude", []) == exclude
    # and the form means what the Sigma rule says, on the rule's own near misses
    reference = sigma_reference(yaml.safe_load(_rule(detection)))
    matcher = compile_config(validate_config({"rules": [result.rule]}))
    near = near_miss_records(yaml.safe_load(_rule(detection)))
    for record in near:
        assert bool(matcher.match(record)) is reference(record), record
    assert any(reference(r) for r in near) and not all(reference(r) for r in near)


@pytest.mark.parametrize(
    ("detection", "reason"),
    [
        ("sel:\n    userAgent|contains: Boto3\ncondition: sel", "case-sensitive"),
        ("sel:\n    eventName: Get?bject\ncondition: sel", "single-character wildcard"),
        ("sel:\n    userAgent|re: 'aws-cli/.*'\ncondition: sel", "not a plain literal"),
        ("sel:\n    requestParameters|contains: '123'\ncondition: sel", "is an object"),
        ("sel:\n    userIdentity.arn|fieldref: requestParameters.userName\ncondition: sel", "fieldref"),
        ("a:\n    eventName: A\nb:\n    awsRegion: x\ncondition: a or not b", "'not' inside"),
        ("a:\n    eventName: A\ncondition: not a", "no positive part"),
        ("a:\n    eventName|contains|all:\n        - '1'\n        - '2'\ncondition: a", "same field"),
        ("a:\n    - 'keyword'\ncondition: a", "keyword"),
        ("a:\n    resources.ARN: a\n    resources.type: b\ncondition: a", "may be an array"),
        ("a:\n    requestParameters.port: '22'\ncondition: a", "JSON number's text"),
        ("a:\n    requestParameters.x|exists: true\ncondition: a", "exists on"),
    ],
)
def test_refusals_say_why(detection, reason):
    result = _convert_text(_rule(detection))
    assert not result.converted
    assert reason in result.reason


def test_other_logsources_are_refused():
    result = _convert_text(
        _rule("sel:\n    eventName: A\ncondition: sel", "product: azure\n    service: activitylogs")
    )
    assert "not aws/cloudtrail" in result.reason


def test_case_insensitive_equality_matches_other_cases():
    result = _convert_text(_rule("sel:\n    eventName: createuser\ncondition: sel"))
    matcher = compile_config(validate_config({"rules": [result.rule]}))
    assert matcher.match({"eventName": "CreateUser"})
    assert not matcher.match({"eventName": "CreateUsers"})


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"origin": 3}, "rules[0].origin: expected a string, got a number"),
        ({"sigma": "id"}, "rules[0].sigma: expected an object, got a string"),
    ],
)
def test_config_checks_the_origin_and_sigma_keys(extra, error):
    from trailwatch_processor.config import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_config({"rules": [{"id": "a", "pattern": {"f": ["x"]}, **extra}]})
    assert error in info.value.errors
    ok = validate_config(
        {"rules": [{"id": "a", "pattern": {"f": ["x"]}, "origin": "sigma", "sigma": {"id": "1"}}]}
    )
    assert ok.rules[0].id == "a"
