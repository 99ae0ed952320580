"""Template parameters checked against their constraints as CloudFormation does (moto checks none).

CloudFormation refuses CreateStack, UpdateStack and CreateChangeSet, before any resource is touched, with a
``ValidationError`` when a parameter value (given, previous, or the default) breaks its declaration:

- ``AllowedPattern`` must match the whole value: "Parameter 'X' must match pattern P";
- ``AllowedValues``: "Parameter 'X' must be one of AllowedValues";
- ``MinLength``/``MaxLength``: "Parameter 'X' must contain at least N characters" / "at most N characters";
- ``Number``: "Parameter 'X' must be a number"; ``MinValue``/``MaxValue``: "Parameter 'X' must be a number
  not less than N" / "not greater than N";
- with a ``ConstraintDescription`` the message is "Parameter 'X' failed to satisfy constraint: <text>".

List types (``CommaDelimitedList``, ``List<Number>``) are checked element by element. The pattern is
Java's regular expression on AWS and Python's here: the constructs main.yaml uses mean the same in both.
`create_stack`, `update_stack` and `create_change_set` wrap moto's backend methods; they are rows of the
table in `moto_patches` (moto's files are untouched).
"""

from __future__ import annotations

import re
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import CloudFormationBackend, Stack

# moto's methods, taken when this module is imported: `moto_patches` imports it (to build its table) before it
# installs the wrappers below in their place.
_MOTO_CREATE_STACK = CloudFormationBackend.create_stack
_MOTO_UPDATE_STACK = CloudFormationBackend.update_stack
_MOTO_CREATE_CHANGE_SET = CloudFormationBackend.create_change_set


class ParameterError(ValueError):
    """A parameter value breaks its declaration; the message is CloudFormation's."""


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _fmt(number: Any) -> str:
    value = float(number)
    return str(int(value)) if value.is_integer() else str(value)


def check_value(name: str, spec: dict[str, Any], value: str) -> None:
    """Raise ParameterError when `value` breaks `spec` (one entry of the template's Parameters)."""
    kind = str(spec.get("Type", "String"))
    elements = [v.strip() for v in value.split(",")] if "List" in kind else [value]
    numeric = kind in ("Number", "List<Number>")
    for element in elements:
        problem = _problem(name, spec, element, numeric)
        if problem is not None:
            if "ConstraintDescription" in spec and not problem.endswith("must be a number"):
                problem = f"Parameter '{name}' failed to satisfy constraint: {spec['ConstraintDescription']}"
            raise ParameterError(problem)


def _problem(name: str, spec: dict[str, Any], value: str, numeric: bool) -> str | None:
    prefix = f"Parameter '{name}'"
    if numeric and _number(value) is None:
        return f"{prefix} must be a number"
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        return f"{prefix} must match pattern {pattern}"
    allowed = spec.get("AllowedValues")
    if allowed is not None and not _allowed(value, allowed, numeric):
        return f"{prefix} must be one of AllowedValues"
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"{prefix} must contain at least {int(spec['MinLength'])} characters"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"{prefix} must contain at most {int(spec['MaxLength'])} characters"
    number = _number(value)
    if "MinValue" in spec and (number is None or number < float(spec["MinValue"])):
        return f"{prefix} must be a number not less than {_fmt(spec['MinValue'])}"
    if "MaxValue" in spec and (number is None or number > float(spec["MaxValue"])):
        return f"{prefix} must be a number not greater than {_fmt(spec['MaxValue'])}"
    return None


def _allowed(value: str, allowed: list[Any], numeric: bool) -> bool:
    if numeric:
        number = _number(value)
        return any(_number(str(a)) == number for a in allowed)
    return value in {_text(a) for a in allowed}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_parameters(template: dict[str, Any], values: dict[str, Any]) -> None:
    """Check every declared parameter: the given value, else its Default (a missing one is moto's error)."""
    for name, spec in (template.get("Parameters") or {}).items():
        if not isinstance(spec, dict):
            continue
        value = values.get(name, spec.get("Default"))
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        check_value(name, spec, _text(value))


def _template(body: str | None) -> dict[str, Any]:
    parsed = Stack.parse_template(body) if body else {}
    return parsed if isinstance(parsed, dict) else {}


def _refuse(err: ParameterError) -> Exception:
    return ValidationError(message=str(err))


def create_stack(self: Any, name: str, template: str, parameters: dict[str, Any], *a: Any, **k: Any) -> Any:
    """moto's ``CloudFormationBackend.create_stack``, refusing constraint-breaking parameters first."""
    _check(template, parameters)
    return _MOTO_CREATE_STACK(self, name, template, parameters, *a, **k)


def update_stack(self: Any, name: str, template: str, *a: Any, **k: Any) -> Any:
    """moto's ``CloudFormationBackend.update_stack``; a ``UsePreviousValue`` parameter is checked with the
    stack's current value."""
    parameters = k.get("parameters", a[1] if len(a) > 1 else None) or []
    previous = self.get_stack(name).stack_parameters
    values = {}
    for p in parameters:
        key = p["ParameterKey"]
        if p.get("UsePreviousValue"):
            if key in previous:
                values[key] = previous[key]
        elif "ParameterValue" in p:
            values[key] = p["ParameterValue"]
    _check(template, values)
    return _MOTO_UPDATE_STACK(self, name, template, *a, **k)


def create_change_set(
    self: Any,
    stack_name: str,
    change_set_name: str,
    template: str,
    parameters: dict[str, Any],
    *a: Any,
    **k: Any,
) -> Any:
    """moto's ``CloudFormationBackend.create_change_set``, refusing constraint-breaking parameters first."""
    _check(template, parameters)
    return _MOTO_CREATE_CHANGE_SET(self, stack_name, change_set_name, template, parameters, *a, **k)


def _check(template: str, values: dict[str, Any]) -> None:
    try:
        check_parameters(_template(template), values)
    except ParameterError as err:
        raise _refuse(err) from None
