"""The fast path's EventBridge rule pattern, made from the config: pure, no AWS calls.

EventBridge puts each CloudTrail record under ``detail`` of its envelope (``detail-type`` "AWS API Call via
CloudTrail", "AWS Console Sign In via CloudTrail", "AWS Service Event via CloudTrail", ...; ``source``
``aws.<service>``). Our rules are already EventBridge patterns over the record, so the rule's pattern is::

    {"source": [{"prefix": "aws."}], "detail-type": [{"suffix": "via CloudTrail"}],
     "detail": {"$or": [{"eventName": [<monitored_events and every names-only rule>]}, <rule pattern>, ...]}}

(one branch: no ``$or``). The processor matches what arrives with the config itself (``patterns.Matcher``,
excludes included), so the rule may deliver MORE than the config matches, never less: what the pattern
cannot say is widened, never dropped, and the function filters. ``exact`` says the rule delivers exactly the
events some rule matches; ``note`` says why not.

What EventBridge cannot take, and what we do (``FastPathPattern.relaxed`` names the widened rules):

* ``exclude``: a pattern cannot say "not this pattern" in general (``anything-but`` on a field is not the
  negation of a match when the field is an array: any element vs. every element). The rule's pattern goes
  in without its excludes; the function applies them (``excluded_in_function``).
* Pattern size: 2048 characters by default (a quota, adjustable up to 4096: ``max_chars``). Over it, the
  least widening that fits: for 0, 1, 2... of the largest rules that name their events, matched by those
  names only (``{"eventName": [...]}``: a superset), the names as they are, then names sharing their first
  camel-case words replaced by one prefix, the longest shared prefix first (``PutBucketAcl``,
  ``PutBucketPolicy`` -> ``{"prefix": "PutBucket"}``; one-word prefixes such as ``Delete`` only with every
  such rule widened); then the broad pattern (every CloudTrail event). The default config needs this at
  2048 characters (about 1,900 with prefixes); at 4096 only its self-protection rule is widened.
* A field named like a filter keyword (``prefix``, ``numeric``, ``exists``...) inside ``$or``: EventBridge
  (its Ruler) rejects it (``RESERVED_IN_OR``). ``anything-but`` over a list of prefixes or suffixes: only one
  string is documented. ``numeric`` bounds beyond +-5e9 or with more than 6 decimals: EventBridge's numeric
  matching stops there. Such a rule is widened to its event names (the broad pattern if it names none).
* Complexity: EventBridge refuses rules it finds too complex (many ``$or`` combinations, many wildcards)
  without publishing the formula; ``MAX_OR_COMBINATIONS`` and ``MAX_WILDCARDS`` are our own cautious bounds.
* Numbers in records beyond +-5e9 are not matched by EventBridge's ``numeric``: such an event reaches the
  function only from its log file (the fast path is best effort; the files stay complete).

``read_only``: read-only management events (``readOnly: true``) reach only a rule in state
``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS``. A rule needs them unless its pattern requires ``readOnly``
false, or names only events known to be writes (``KNOWN_WRITE_EVENTS``); in doubt, it needs them (the state
widens what may match; the pattern still filters).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import Config, Rule

MAX_PATTERN_CHARS = 2048  # EventBridge's default "Event pattern size" quota (adjustable to 4096)
MAX_OR_COMBINATIONS = 1000  # our bound: EventBridge publishes no figure for "too complex"
MAX_WILDCARDS = 20  # our bound, likewise
NUMERIC_LIMIT = 5e9  # EventBridge numeric matching: values in [-5e9, 5e9]...
NUMERIC_DECIMALS = 6  # ...with 6 digits after the decimal point

STATE_ENABLED = "ENABLED"
STATE_ALL_MANAGEMENT = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
SOURCE_FILTER = [{"prefix": "aws."}]
DETAIL_TYPE_FILTER = [{"suffix": "via CloudTrail"}]

# Field names EventBridge's Ruler refuses inside "$or" (its RESERVED_FIELD_NAMES_IN_OR_RELATIONSHIP).
RESERVED_IN_OR = frozenset(
    {
        "exactly",
        "equals-ignore-case",
        "prefix",
        "suffix",
        "anything-but",
        "exists",
        "wildcard",
        "numeric",
        "cidr",
        "=",
        "<",
        "<=",
        ">",
        ">=",
        "regex",
        "not-wildcard",
        "not-equals-ignore-case",
        "date-after",
        "date-on-or-after",
        "date-before",
        "date-on-or-before",
        "in-date-range",
        "ip-address-in-range",
        "ip-address-not-in-range",
    }
)

# Management events CloudTrail records with readOnly false: a rule naming only these needs no read-only
# events. Conservative: the CIS monitoring controls' names and the common IAM/S3/KMS/logging writes; a name
# not here counts as possibly read-only (e.g. AssumeRole and Decrypt are read-only). tests check that no
# vendored real record shows one of them read-only.
KNOWN_WRITE_EVENTS = frozenset(
    [
        "ConsoleLogin",
        "DeleteGroupPolicy",
        "DeleteRolePolicy",
        "DeleteUserPolicy",
        "PutGroupPolicy",
        "PutRolePolicy",
        "PutUserPolicy",
        "CreatePolicy",
        "DeletePolicy",
        "CreatePolicyVersion",
        "DeletePolicyVersion",
        "AttachRolePolicy",
        "DetachRolePolicy",
        "AttachUserPolicy",
        "DetachUserPolicy",
        "AttachGroupPolicy",
        "DetachGroupPolicy",
        "CreateTrail",
        "UpdateTrail",
        "DeleteTrail",
        "StopLogging",
        "PutEventSelectors",
        "PutInsightSelectors",
        "DisableKey",
        "ScheduleKeyDeletion",
        "PutKeyPolicy",
        "PutBucketAcl",
        "PutBucketPolicy",
        "PutBucketCors",
        "PutBucketLifecycle",
        "PutBucketReplication",
        "DeleteBucketPolicy",
        "DeleteBucketCors",
        "DeleteBucketLifecycle",
        "DeleteBucketReplication",
        "PutBucketPublicAccessBlock",
        "DeleteBucketPublicAccessBlock",
        "PutBucketVersioning",
        "PutBucketNotification",
        "DeleteBucket",
        "StopConfigurationRecorder",
        "DeleteDeliveryChannel",
        "PutDeliveryChannel",
        "PutConfigurationRecorder",
        "AuthorizeSecurityGroupIngress",
        "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupIngress",
        "RevokeSecurityGroupEgress",
        "CreateSecurityGroup",
        "DeleteSecurityGroup",
        "CreateNetworkAcl",
        "CreateNetworkAclEntry",
        "DeleteNetworkAcl",
        "DeleteNetworkAclEntry",
        "ReplaceNetworkAclEntry",
        "ReplaceNetworkAclAssociation",
        "CreateCustomerGateway",
        "DeleteCustomerGateway",
        "AttachInternetGateway",
        "CreateInternetGateway",
        "DeleteInternetGateway",
        "DetachInternetGateway",
        "CreateRoute",
        "CreateRouteTable",
        "ReplaceRoute",
        "ReplaceRouteTableAssociation",
        "DeleteRouteTable",
        "DeleteRoute",
        "DisassociateRouteTable",
        "CreateVpc",
        "DeleteVpc",
        "ModifyVpcAttribute",
        "AcceptVpcPeeringConnection",
        "CreateVpcPeeringConnection",
        "DeleteVpcPeeringConnection",
        "RejectVpcPeeringConnection",
        "AttachClassicLinkVpc",
        "DetachClassicLinkVpc",
        "DisableVpcClassicLink",
        "EnableVpcClassicLink",
        "AcceptHandshake",
        "AttachPolicy",
        "CreateAccount",
        "CreateOrganizationalUnit",
        "DeclineHandshake",
        "DeleteOrganization",
        "DeleteOrganizationalUnit",
        "DetachPolicy",
        "DisablePolicyType",
        "EnablePolicyType",
        "InviteAccountToOrganization",
        "LeaveOrganization",
        "MoveAccount",
        "RemoveAccountFromOrganization",
        "UpdatePolicy",
        "UpdateOrganizationalUnit",
        "CreateUser",
        "DeleteUser",
        "CreateAccessKey",
        "DeleteAccessKey",
        "UpdateAccessKey",
        "CreateLoginProfile",
        "UpdateLoginProfile",
        "DeleteLoginProfile",
        "AddUserToGroup",
        "RemoveUserFromGroup",
        "CreateRole",
        "DeleteRole",
        "UpdateAssumeRolePolicy",
        "DeactivateMFADevice",
        "DeleteVirtualMFADevice",
    ]
)

_CAMEL_WORD = re.compile(r"[A-Z]+[a-z0-9]*|[a-z0-9]+")


@dataclass(frozen=True)
class FastPathPattern:
    pattern: dict[str, Any]  # the event pattern to put on the EventBridge rule
    exact: bool  # the rule delivers exactly the events some rule of the config matches
    note: str | None  # why not exact (widened rules, excludes, the broad fallback); None when exact
    read_only: bool  # some rule can match a read-only management event
    relaxed: tuple[str, ...] = ()  # rule ids matched by a wider pattern than their own
    excluded_in_function: tuple[str, ...] = ()  # rule ids whose excludes only the function applies
    broad: bool = False  # the fallback: every CloudTrail event (the function filters all)
    names_shortened: bool = field(default=False)  # event names replaced by shared prefixes

    @property
    def state(self) -> str:
        """The EventBridge rule's state."""
        return STATE_ALL_MANAGEMENT if self.read_only else STATE_ENABLED

    @property
    def text(self) -> str:
        """The pattern as put on the rule (compact JSON; its length is what the size quota counts)."""
        return pattern_text(self.pattern)

    def in_force(self, event_pattern: str | None, state: str | None) -> bool:
        """Whether a deployed rule (its EventPattern text and State, as DescribeRule returns them) is this
        one: the same pattern as JSON (whatever its spacing or key order) and the same state."""
        try:
            deployed = json.loads(event_pattern) if event_pattern else None
        except ValueError:
            return False
        return deployed == self.pattern and state == self.state


def pattern_text(pattern: dict[str, Any]) -> str:
    return json.dumps(pattern, separators=(",", ":"), ensure_ascii=False)


def broad_pattern() -> dict[str, Any]:
    """Every CloudTrail event on the bus."""
    return {"source": list(SOURCE_FILTER), "detail-type": list(DETAIL_TYPE_FILTER)}


def event_pattern(config: Config, *, max_chars: int = MAX_PATTERN_CHARS) -> FastPathPattern:
    """The EventBridge rule pattern for ``config`` (see the module docstring)."""
    rules = config.rules
    read_only = any(can_match_read_only(rule.pattern) for rule in rules)
    excluded = tuple(rule.id for rule in rules if rule.exclude)
    names_only: list[Any] = []  # eventName filters of rules that are nothing else: merged exactly
    exact_rules: list[Rule] = []
    widened: dict[str, list[Any]] = {}  # rule id -> the eventName filters it is matched by
    problems: dict[str, str] = {}
    for rule in rules:
        names = widening(rule.pattern)
        problem = unsupported(rule.pattern)
        if problem is None and names is not None and set(rule.pattern) == {"eventName"}:
            names_only.extend(rule.pattern["eventName"])
        elif problem is None:
            exact_rules.append(rule)
        elif names is None:
            return _broad(rules, read_only, excluded, f"rule {rule.id} {problem} and names no event")
        else:
            problems[rule.id] = problem
            widened[rule.id] = names

    def names() -> list[Any]:
        return [*names_only, *(n for ns in widened.values() for n in ns)]

    def attempt(prefixes: frozenset[str]) -> tuple[dict[str, Any], str | None]:
        filters = names()
        branches: list[dict[str, Any]] = [rule.pattern for rule in exact_rules]
        if filters:
            branches.insert(0, {"eventName": _name_filters(filters, prefixes)})
        detail = branches[0] if len(branches) == 1 else {"$or": branches}
        pattern = {"source": list(SOURCE_FILTER), "detail-type": list(DETAIL_TYPE_FILTER), "detail": detail}
        return pattern, _limit_problem(pattern, max_chars)

    # Fit the limits, the least widening first: for 0, 1, 2... of the largest rules that name their events
    # matched by those names only, the names as they are, then names sharing their first camel-case words
    # replaced by a prefix (the longest shared prefixes first; at least 2 words, 1 only with every rule
    # widened); then the broad pattern.
    candidates = sorted(
        (r for r in exact_rules if widening(r.pattern) is not None),
        key=lambda r: len(pattern_text(r.pattern)),
        reverse=True,
    )
    first_problem: str | None = None
    size_widened: list[str] = []
    prefixes: frozenset[str] = frozenset()
    pattern, problem = attempt(prefixes)
    for count in range(len(candidates) + 1):
        if count:
            rule = candidates[count - 1]
            exact_rules.remove(rule)
            widened[rule.id] = widening(rule.pattern) or []
            size_widened.append(rule.id)
        prefixes = frozenset()
        pattern, problem = attempt(prefixes)
        first_problem = first_problem or problem
        min_words = 1 if count == len(candidates) else 2
        while problem is not None:
            shorter = _shorten(names(), prefixes, min_words)
            if shorter is None:
                break
            prefixes = shorter
            pattern, problem = attempt(prefixes)
        if problem is None:
            break
    if problem is not None:
        return _broad(rules, read_only, excluded, problem)
    reasons = [f"rule {rule_id} {why}: matched by its event names only" for rule_id, why in problems.items()]
    if size_widened:
        reasons.append(f"{first_problem}: {', '.join(size_widened)} matched by their event names only")
    if prefixes:
        shown = ", ".join(sorted(prefixes)[:10]) + (", ..." if len(prefixes) > 10 else "")
        reasons.append(f"event names shortened to the prefixes {shown} ({first_problem})")
    if excluded:
        reasons.append(f"the excludes of {', '.join(excluded)} are applied in the function")
    exact = not reasons
    return FastPathPattern(
        pattern=pattern,
        exact=exact,
        note=None if exact else "; ".join(reasons),
        read_only=read_only,
        relaxed=tuple(widened),
        excluded_in_function=excluded,
        names_shortened=bool(prefixes),
    )


def _broad(rules: tuple[Rule, ...], read_only: bool, excluded: tuple[str, ...], why: str) -> FastPathPattern:
    return FastPathPattern(
        pattern=broad_pattern(),
        exact=False,
        note=f"broad pattern (every CloudTrail event; the function filters): {why}",
        read_only=read_only,
        relaxed=tuple(rule.id for rule in rules),
        excluded_in_function=excluded,
        broad=True,
    )


def literal_names(pattern: dict[str, Any]) -> list[str] | None:
    """The event names a pattern requires (a top-level ``eventName`` of string literals), else None."""
    filters = pattern.get("eventName")
    if isinstance(filters, list) and filters and all(type(f) is str for f in filters):
        return list(filters)
    return None


def widening(pattern: dict[str, Any]) -> list[Any] | None:
    """The pattern's top-level ``eventName`` filters when EventBridge takes them: ``{"eventName": those}``
    alone matches a superset of the pattern. None when it has none (it cannot be widened so)."""
    filters = pattern.get("eventName")
    if not isinstance(filters, list) or unsupported({"eventName": filters}) is not None:
        return None
    return list(filters)


def _name_filters(filters: list[Any], prefixes: frozenset[str] = frozenset()) -> list[Any]:
    """The merged eventName filters: names sorted and unique, then the other filters; each name a chosen
    prefix covers gives way to that ``prefix`` filter (a superset), and a name or prefix filter that a plain
    prefix filter already covers is dropped (the same set)."""
    others: list[Any] = []
    seen: set[str] = set()  # by JSON text: `false` and `0` are one value to Python's ==, two to EventBridge
    for flt in [*filters, *({"prefix": p} for p in sorted(prefixes))]:
        text = json.dumps(flt, sort_keys=True)
        if type(flt) is not str and text not in seen:
            seen.add(text)
            others.append(flt)
    plain = [f["prefix"] for f in others if isinstance(f, dict) and type(f.get("prefix")) is str]

    def covered(value: str, itself: str | None = None) -> bool:
        return any(value.startswith(p) and p != itself for p in plain)

    names = sorted({f for f in filters if type(f) is str and not covered(f)})
    kept = [
        f
        for f in others
        if not (isinstance(f, dict) and type(f.get("prefix")) is str and covered(f["prefix"], f["prefix"]))
    ]
    return [*names, *kept]


def _shorten(filters: list[Any], prefixes: frozenset[str], min_words: int) -> frozenset[str] | None:
    """``prefixes`` plus the longest camel-case prefix (at least ``min_words`` words) shared by two or more of
    the names not yet covered; None when there is none."""
    names = [f for f in filters if type(f) is str and not any(f.startswith(p) for p in prefixes)]
    counts: dict[str, int] = {}
    for name in set(names):
        words = _CAMEL_WORD.findall(name)
        for k in range(min_words, len(words)):
            head = "".join(words[:k])
            if name.startswith(head) and head != name:
                counts[head] = counts.get(head, 0) + 1
    shared = [(len(head), count, head) for head, count in counts.items() if count >= 2]
    if not shared:
        return None
    return prefixes | {max(shared)[2]}


def unsupported(pattern: dict[str, Any]) -> str | None:
    """Why EventBridge cannot take this rule pattern as it is (inside an ``$or``), or None."""
    for key, value, in_filter in _walk(pattern):
        if not in_filter and key in RESERVED_IN_OR:
            return f"names a field {key!r}, which EventBridge refuses inside $or"
        if in_filter and key == "anything-but" and isinstance(value, dict):
            ((name, arg),) = value.items()
            if name in ("prefix", "suffix") and isinstance(arg, list) and len(arg) > 1:
                return f"uses anything-but with a list of {name}es (EventBridge takes one)"
        if in_filter and key == "numeric":
            for bound in value[1::2]:
                if abs(bound) > NUMERIC_LIMIT or round(bound, NUMERIC_DECIMALS) != bound:
                    return f"has a numeric bound {bound!r} beyond EventBridge's (+-5e9, 6 decimals)"
    return None


def _walk(pattern: dict[str, Any]) -> Iterator[tuple[str, Any, bool]]:
    """(key, value, is_filter) for every field key and filter of a pattern; iterative."""
    stack: list[dict[str, Any]] = [pattern]
    while stack:
        node = stack.pop()
        for key, value in node.items():
            if key == "$or":
                stack.extend(value)
                continue
            yield key, value, False
            if isinstance(value, dict):
                stack.append(value)
            else:
                for flt in value:
                    if isinstance(flt, dict):
                        ((name, arg),) = flt.items()
                        yield name, arg, True


def _limit_problem(pattern: dict[str, Any], max_chars: int) -> str | None:
    size = len(pattern_text(pattern))
    if size > max_chars:
        return f"pattern of {size} characters over the limit of {max_chars}"
    combinations = or_combinations(pattern)
    if combinations > MAX_OR_COMBINATIONS:
        return f"{combinations} $or combinations (more than {MAX_OR_COMBINATIONS})"
    wildcards = sum(1 for key, _, in_filter in _walk(pattern) if in_filter and key == "wildcard")
    if wildcards > MAX_WILDCARDS:
        return f"{wildcards} wildcard filters (more than {MAX_WILDCARDS})"
    return None


def or_combinations(pattern: dict[str, Any]) -> int:
    """How many plain patterns the ``$or``s expand to: a sum over an ``$or``'s branches, a product over the
    fields and ``$or``s of one object."""
    total = 1
    for key, value in pattern.items():
        if key == "$or":
            total *= sum(or_combinations(branch) for branch in value)
        elif isinstance(value, dict):
            total *= or_combinations(value)
    return total


def can_match_read_only(pattern: dict[str, Any]) -> bool:
    """Whether a record with ``readOnly: true`` may match: False only when the pattern requires readOnly
    false, or event names all in KNOWN_WRITE_EVENTS (on every ``$or`` branch, if that is where it says so)."""
    return not _excludes_read_only(pattern)


def _excludes_read_only(pattern: dict[str, Any]) -> bool:
    flags = pattern.get("readOnly")
    if (
        isinstance(flags, list)
        and flags
        and all(type(f) is bool or f is None for f in flags)
        and True not in flags
    ):
        return True
    names = literal_names(pattern)
    if names is not None and all(name in KNOWN_WRITE_EVENTS for name in names):
        return True
    branches = pattern.get("$or")
    return isinstance(branches, list) and all(_excludes_read_only(b) for b in branches)
