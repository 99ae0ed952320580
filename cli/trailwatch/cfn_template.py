"""The one CloudFormation template evaluator: load YAML/JSON with short-form tags, resolve intrinsic
functions (Ref, Fn::Sub, Fn::FindInMap, Fn::If, Fn::Join, Fn::GetAtt through a caller's hook) and evaluate
Conditions (Fn::Equals/Not/And/Or, Condition).

Used by `trailwatch verify` (values "as declared"), the local AWS (which resources an update touches) and
the tests. Values compare as CloudFormation compares them: parameter values are strings, so `Fn::Equals`
compares the text of both sides (`0` equals `"0"`, `true` equals `"true"`) and is case-sensitive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

GetAtt = Callable[[str, str], Any]

_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class Unresolvable(ValueError):
    """A value depends on something the evaluator was not given (a resource's attribute, an unknown Ref)."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NOVALUE: Any = _NoValue()  # what `Ref AWS::NoValue` resolves to; dropped from lists and mappings


# ---------------------------------------------------------------- loading


# libyaml's parser when PyYAML has it (6x faster on main.yaml); the constructors and resolvers are the same.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """YAML loader that turns short-form tags (!Ref, !Sub, ...) into their long form and, as CloudFormation
    does, keeps dates (`2010-09-09`) as text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _construct_tag)


def load(text: str) -> Any:
    """A template's text (YAML or JSON) as plain dicts and lists, short-form tags in their long form."""
    return yaml.load(text, Loader=_Loader)


# ---------------------------------------------------------------- values


def scalar(value: Any) -> str:
    """The text CloudFormation compares for a scalar (parameter values are strings; YAML `true` is "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def references(value: Any) -> set[str]:
    """Every name (parameter, resource, condition) a piece of template refers to through Ref, Fn::GetAtt, a
    `${...}` of Fn::Sub (not its own variables), Fn::If or Condition."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key in ("Ref", "Condition") and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add((arg if isinstance(arg, list) else str(arg).split("."))[0])
            elif key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                names = {m.split(".")[0] for m in _SUB_VARIABLE.findall(text) if not m.startswith("!")}
                found |= (names - set(variables)) | references(variables)
            elif key == "Fn::If":
                found.add(arg[0])
                found |= references(arg[1:])
            else:
                found |= references(arg)
    return found


class Evaluator:
    """Resolves values and conditions of one template under given parameter values.

    `env` maps names a `Ref` may name (parameters, pseudo parameters, and resources when the caller knows
    their physical ids) to values; `get_att(resource, attribute)` answers Fn::GetAtt (by default: raise
    Unresolvable). Conditions are evaluated once each, on first use."""

    def __init__(
        self,
        env: Mapping[str, Any],
        conditions: Mapping[str, Any] | None = None,
        mappings: Mapping[str, Any] | None = None,
        get_att: GetAtt | None = None,
    ) -> None:
        self.env = env
        self.conditions = conditions or {}
        self.mappings = mappings or {}
        self._get_att = get_att
        self._results: dict[str, bool] = {}

    @classmethod
    def for_template(
        cls, template: Mapping[str, Any], given: Mapping[str, Any], get_att: GetAtt | None = None
    ) -> Evaluator:
        """An evaluator for `template` with the parameters' defaults overridden by `given`."""
        env = {
            name: scalar(spec["Default"])
            for name, spec in (template.get("Parameters") or {}).items()
            if isinstance(spec, Mapping) and "Default" in spec
        }
        env.update(given)
        return cls(env, template.get("Conditions"), template.get("Mappings"), get_att)

    # -- conditions
    def condition(self, name: str) -> bool:
        if name not in self._results:
            if name not in self.conditions:
                raise Unresolvable(f"Condition {name}")
            self._results[name] = self.holds(self.conditions[name])
        return self._results[name]

    def all_conditions(self) -> dict[str, bool]:
        return {name: self.condition(name) for name in self.conditions}

    def holds(self, expression: Any) -> bool:
        """The truth of a condition expression."""
        if isinstance(expression, bool):
            return expression
        if not isinstance(expression, Mapping) or len(expression) != 1:
            raise Unresolvable(f"condition {expression!r}")
        ((key, arg),) = expression.items()
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Equals":
            left, right = (scalar(self.resolve(a)) for a in arg)
            return left == right
        if key == "Fn::Not":
            return not self.holds(arg[0])
        if key == "Fn::And":
            return all(self.holds(a) for a in arg)
        if key == "Fn::Or":
            return any(self.holds(a) for a in arg)
        raise Unresolvable(f"condition function {key}")

    # -- values
    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NOVALUE
        if name in self.env:
            return self.env[name]
        raise Unresolvable(f"Ref {name}")

    def get_att(self, resource: str, attribute: str) -> Any:
        if self._get_att is None:
            raise Unresolvable(f"Fn::GetAtt {resource}.{attribute}")
        return self._get_att(resource, attribute)

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return scalar(variables[token])
            if "." in token and token not in self.env:
                return scalar(self.get_att(*token.split(".", 1)))
            return scalar(self.ref(token))

        return _SUB_VARIABLE.sub(replace, text)

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function resolved; `Ref AWS::NoValue` entries dropped."""
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NOVALUE]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(*(arg if isinstance(arg, list) else arg.split(".", 1)))
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::FindInMap":
                name, first, second = (scalar(self.resolve(a)) for a in arg)
                try:
                    return self.mappings[name][first][second]
                except KeyError as err:
                    raise Unresolvable(f"Fn::FindInMap [{name}, {first}, {second}]") from err
            if key == "Fn::Join":
                return arg[0].join(scalar(v) for v in self.resolve(arg[1]))
            if key.startswith("Fn::"):
                raise Unresolvable(key)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NOVALUE}
