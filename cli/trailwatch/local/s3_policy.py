"""S3 bucket policies as AWS evaluates them for the local AWS: moto's check ignores Condition blocks."""

from __future__ import annotations

import json
import re
from typing import Any

from moto.s3.models import FakeBucket

from trailwatch.local.cfn_common import warn

# What moto's bucket policy check cannot know about a request: the local endpoint is plain HTTP on loopback
# standing in for AWS's HTTPS endpoints, so requests count as aws:SecureTransport = true. Keys absent here
# (aws:SourceArn, ...) are absent from the request, as for a principal's own call on AWS.
REQUEST_CONTEXT = {"aws:securetransport": "true"}

_NEGATED = ("StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike")
_EQUALS = ("Bool", "StringEquals", "StringEqualsIgnoreCase", "ArnEquals")
_LIKE = ("StringLike", "ArnLike")


def _wildcard(pattern: str) -> re.Pattern[str]:
    """An IAM `*`/`?` pattern as a regex (case-insensitive: context values are lower-cased)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.I)


def _test_holds(operator: str, actual: str | None, values: list[str]) -> bool | None:
    """One condition key test as IAM evaluates it; None for an operator the local AWS does not know."""
    kind = operator.removesuffix("IfExists")
    if kind == "Null":
        return (actual is None) == (values[0] == "true")
    if actual is None:  # key not in the request: only ...IfExists and the negated operators hold
        return operator.endswith("IfExists") or kind in _NEGATED
    positive = kind.replace("Not", "")
    if positive in _EQUALS:
        matched = actual in values
    elif positive in _LIKE:
        matched = any(_wildcard(v).fullmatch(actual) for v in values)
    else:
        return None
    return matched != (kind in _NEGATED)


def condition_holds(conditions: dict[str, Any], context: dict[str, str] | None = None) -> bool:
    """Whether a statement's Condition block holds for `context` (lower-case keys; default
    REQUEST_CONTEXT). An unknown operator never holds (an Allow it guards is dropped; a Deny too -- the
    local AWS says so in the warning)."""
    context = REQUEST_CONTEXT if context is None else context
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            values = [str(v).lower() for v in (expected if isinstance(expected, list) else [expected])]
            actual = context.get(key.lower())
            holds = _test_holds(operator, actual.lower() if actual is not None else None, values)
            if holds is None:
                warn(f"bucket policy: condition operator {operator} is not evaluated locally")
                return False
            if not holds:
                return False
    return True


def bucket_permission(self: FakeBucket, action: str, resource: str) -> Any:
    """moto's bucket policy check (FakeBucket.get_permission, for every bucket, whichever way its policy
    was set), honouring Condition blocks: moto ignores them, so the usual "deny when aws:SecureTransport is
    false" statement would deny every request. A statement applies only when its conditions hold for
    REQUEST_CONTEXT."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if self.policy is None:
        return PermissionResult.NEUTRAL
    document = json.loads(self.policy)
    statements = document.get("Statement") or []
    statements = statements if isinstance(statements, list) else [statements]
    applicable = [
        {k: v for k, v in st.items() if k != "Condition"}
        for st in statements
        if condition_holds(st.get("Condition") or {})
    ]
    if not applicable:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**document, "Statement": applicable})).is_action_permitted(action, resource)
