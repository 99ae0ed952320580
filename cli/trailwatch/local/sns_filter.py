"""SNS subscription filter policies with AWS's documented semantics, replacing moto 5.2.1's matcher.

Where moto's ``FilterPolicyMatcher.matches`` differs from the SNS documentation (Developer Guide, "Amazon SNS
subscription filter policies", "Key matching", "AND/OR logic", "Filter policy scope"):

- a message with no message attributes matches no ``MessageAttributes``-scoped filter policy at all, not even
  one made of ``"exists": false`` ("exists: false only matches if at least one attribute is present. An
  empty set of attributes results in the filter not matching"); moto lets it through. Every CloudWatch alarm
  notification carries no attributes, so this is what decides whether an alarm reaches a filtered endpoint;
- ``$or`` (a list of sub-policies, any of which may match, combined by AND with the keys beside it) in the
  ``MessageBody`` scope can make moto's matcher raise instead of answering;
- ``exists: true`` needs a non-null value; ``anything-but`` never matches an absent key; ``prefix``/``suffix``
  may wrap ``equals-ignore-case``; ``anything-but`` takes a value, a list, or a ``prefix``/``suffix``;
  ``numeric`` takes one or two comparisons; ``cidr`` matches IP addresses; a ``String.Array`` attribute or a
  JSON array in the body matches a rule when any of its elements does;
- in the ``MessageBody`` scope the policy is nested like the body; a leaf under an absent intermediate key is
  absent (so only ``exists: false`` matches it); a body that is not a JSON object matches nothing.

`matches` replaces the method on moto's class, installed from the table in `moto_patches` (moto's files are
untouched); moto's own validation of a policy when it is set (``SetSubscriptionAttributes``/``Subscribe``)
still applies.
"""

from __future__ import annotations

import ipaddress
import json
import math
from typing import Any

MESSAGE_ATTRIBUTES = "MessageAttributes"
MESSAGE_BODY = "MessageBody"
_ABSENT = object()  # a key the message does not have


def policy_matches(
    policy: dict[str, Any] | None,
    scope: str | None,
    message_attributes: dict[str, Any] | None,
    message: str,
) -> bool:
    """Whether SNS delivers a message with `message_attributes` ({name: {"Type", "Value"}}, as moto keeps
    them) and body `message` to a subscription with `policy` and `scope` (default MessageAttributes)."""
    if not policy:
        return True
    if (scope or MESSAGE_ATTRIBUTES) == MESSAGE_ATTRIBUTES:
        if not message_attributes:
            return False  # no attributes: no attribute-scoped policy matches, "exists": false included
        values = {name: _attribute_values(attr) for name, attr in message_attributes.items()}
        return _match_level(policy, values, flat=True)
    try:
        body = json.loads(message)
    except (TypeError, ValueError):
        return False
    if not isinstance(body, dict):
        return False
    return _match_level(policy, body, flat=False)


def _attribute_values(attribute: dict[str, Any]) -> list[Any]:
    """The values a rule is compared with: a String's text, a Number's number, a String.Array's elements.
    Binary attributes are not matched by value (SNS ignores them for filtering); they still exist."""
    kind = str(attribute.get("Type", "String"))
    raw = attribute.get("Value")
    if kind.startswith("Number"):
        try:
            return [float(raw)]  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return []
    if kind.startswith("String.Array"):
        try:
            items = json.loads(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return []
        return list(items) if isinstance(items, list) else [items]
    if kind.startswith("String"):
        return [raw]
    return []


def _match_level(policy: dict[str, Any], data: Any, *, flat: bool) -> bool:
    """Every key of `policy` holds on `data` (one level of the body, or the attributes); ``$or`` is any-of."""
    for key, spec in policy.items():
        if key == "$or":
            if not isinstance(spec, list) or not any(
                isinstance(sub, dict) and _match_level(sub, data, flat=flat) for sub in spec
            ):
                return False
            continue
        value = data.get(key, _ABSENT) if isinstance(data, dict) else _ABSENT
        if isinstance(spec, dict) and not flat:
            if not _match_nested(spec, value):
                return False
        elif isinstance(spec, list):
            if not _match_leaf(spec, value if flat else _body_values(value)):
                return False
        else:
            return False  # not a valid policy value: SNS would have refused the policy
    return True


def _match_nested(spec: dict[str, Any], value: Any) -> bool:
    if isinstance(value, list):  # an array of objects: any element may satisfy the nested policy
        return any(_match_level(spec, item, flat=False) for item in value if isinstance(item, dict))
    return _match_level(spec, value if isinstance(value, dict) else _ABSENT, flat=False)


def _body_values(value: Any) -> Any:
    if value is _ABSENT:
        return _ABSENT
    if isinstance(value, list):
        return [v for v in value if not isinstance(v, (dict, list))]
    if isinstance(value, dict):
        return []  # an object where the policy has a leaf: no value rule matches it
    return [value]


def _match_leaf(rules: list[Any], values: Any) -> bool:
    """At least one rule matches the key's values (`_ABSENT` when the key is missing)."""
    return any(_rule_matches(rule, values) for rule in rules)


def _rule_matches(rule: Any, values: Any) -> bool:
    if isinstance(rule, dict) and len(rule) == 1:
        ((operator, operand),) = rule.items()
        if operator == "exists":
            present = values is not _ABSENT and any(v is not None for v in values)
            return present if operand is True else values is _ABSENT if operand is False else False
        if values is _ABSENT:
            return False
        test = _OPERATORS.get(operator)
        return test is not None and any(test(operand, v) for v in values)
    if values is _ABSENT:
        return False
    return any(_equals(rule, v) for v in values)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equals(rule: Any, value: Any) -> bool:
    if _is_number(rule):
        return _is_number(value) and math.isclose(float(rule), float(value), rel_tol=0, abs_tol=1e-6)
    if rule is None or isinstance(rule, bool):
        return value is rule
    return isinstance(value, str) and value == rule


def _string_test(operand: Any, value: Any, test: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(operand, dict) and set(operand) == {"equals-ignore-case"}:
        needle = operand["equals-ignore-case"]
        return isinstance(needle, str) and test(value.lower(), needle.lower())
    return isinstance(operand, str) and test(value, operand)


def _prefix(operand: Any, value: Any) -> bool:
    return _string_test(operand, value, str.startswith)


def _suffix(operand: Any, value: Any) -> bool:
    return _string_test(operand, value, str.endswith)


def _equals_ignore_case(operand: Any, value: Any) -> bool:
    return isinstance(operand, str) and isinstance(value, str) and value.lower() == operand.lower()


def _anything_but(operand: Any, value: Any) -> bool:
    if isinstance(operand, dict):
        if len(operand) != 1:
            return False
        ((operator, inner),) = operand.items()
        test = {"prefix": _prefix, "suffix": _suffix, "equals-ignore-case": _equals_ignore_case}.get(operator)
        if test is None or not isinstance(value, str):
            return False
        inner_values = inner if isinstance(inner, list) else [inner]
        return not any(test(i, value) for i in inner_values)
    denied = operand if isinstance(operand, list) else [operand]
    return not any(_equals(d, value) for d in denied)


_COMPARE = {
    "=": lambda a, b: math.isclose(a, b, rel_tol=0, abs_tol=1e-6),
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _numeric(operand: Any, value: Any) -> bool:
    if not _is_number(value) or not isinstance(operand, list) or len(operand) not in (2, 4):
        return False
    for op, bound in zip(operand[0::2], operand[1::2], strict=True):
        compare = _COMPARE.get(op)
        if compare is None or not _is_number(bound) or not compare(float(value), float(bound)):
            return False
    return True


def _cidr(operand: Any, value: Any) -> bool:
    if not isinstance(operand, str) or not isinstance(value, str):
        return False
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(operand, strict=False)
    except ValueError:
        return False


_OPERATORS = {
    "prefix": _prefix,
    "suffix": _suffix,
    "equals-ignore-case": _equals_ignore_case,
    "anything-but": _anything_but,
    "numeric": _numeric,
    "cidr": _cidr,
}


def matches(self: Any, message_attributes: dict[str, Any] | None, message: str) -> bool:
    """moto's ``FilterPolicyMatcher.matches`` answered by `policy_matches` (a row of moto_patches.PATCHES)."""
    return policy_matches(self.filter_policy, self.filter_policy_scope, message_attributes, message)
