"""Where moto's CloudFormation engine (not a model) departs from CloudFormation in a way main.yaml or
`trailwatch deploy` meets: Fn::FindInMap with Number parameters (`clean_json`), the outputs after a change
set (`execute_change_set`), which resources an update adds/modifies/removes (`build_resource_diff`,
`update`), per-resource stack events and failed creations/updates ending as stack states
(`parse_and_create_resource` etc.), and the resource listing (`stack_resources`).

Each function here replaces one of moto's; `moto_patches.PATCHES` installs them.
"""

from __future__ import annotations

import warnings
from typing import Any

from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import ChangeSet, CloudFormationBackend, Stack
from moto.cloudformation.parsing import ResourceMap

from trailwatch.cfn_template import Evaluator, references, scalar
from trailwatch.local.cfn_common import Json, warn

# ---------------------------------------------------------------- template functions

_original_clean_json = parsing.clean_json


def clean_json(resource_json: Any, resources_map: Any) -> Any:
    """moto's `clean_json`, except that Fn::FindInMap looks keys up as strings, as CloudFormation does, and an
    intrinsic resolving to AWS::NoValue inside a list removes its element.

    moto turns `Number` parameters into ints, so `!FindInMap [Map, Key, !Ref NumberParam]` looks up `60`
    where the mapping (like every CloudFormation mapping) has the key `"60"`, and the resource fails.
    """
    if isinstance(resource_json, dict) and isinstance(resource_json.get("Fn::FindInMap"), list):
        map_name, *path = resource_json["Fn::FindInMap"]
        keys = [_original_clean_json(key, resources_map) for key in path]
        keys = [scalar(key) if isinstance(key, bool | int | float) else key for key in keys]
        resource_json = {**resource_json, "Fn::FindInMap": [map_name, *keys]}
    if isinstance(resource_json, list):
        # An intrinsic that resolves to AWS::NoValue (e.g. `!If [Cond, {...}, !Ref AWS::NoValue]`) removes its
        # list element, as CloudFormation does; moto leaves a null there (a policy with a null statement).
        cleaned = [(item, clean_json(item, resources_map)) for item in resource_json]
        return [value for item, value in cleaned if not (value is None and isinstance(item, dict))]
    return _original_clean_json(resource_json, resources_map)


# ---------------------------------------------------------------- change sets

_original_execute_change_set = CloudFormationBackend.execute_change_set


def execute_change_set(
    self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None
) -> None:
    """moto's ExecuteChangeSet, then the stack as CloudFormation leaves it: with the change set's template,
    parameters and outputs. (moto keeps the outputs of the stack's previous template: none at all after a
    CREATE change set, which is how `trailwatch deploy` creates the stack.)"""
    change_set = self.change_sets.get(change_set_name) or next(
        (cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name), None
    )
    try:
        _original_execute_change_set(self, change_set_name, stack_name)
    except Exception as err:
        if change_set is None:
            raise
        change_set.execution_status = "EXECUTE_FAILED"
        if change_set.change_set_type == "CREATE":
            _roll_back_creation(change_set.stack, err)
        else:
            _update_failed(change_set.stack, err)
        return
    if change_set is None:
        return
    stack = change_set.stack
    stack.template = change_set.template
    stack._parse_template()
    stack.description = stack.template_dict.get("Description")
    if change_set.parameters:
        stack.parameters = change_set.parameters
    stack.output_map = stack._create_output_map()


def has_parameters(self: Stack, other_parameters: dict[str, Any]) -> bool:
    """Whether a change set's parameters leave each of the stack's parameters at its current value.

    moto compares them with the values given when the stack was made (`Stack.parameters`), so a deploy that
    keeps the rest through `UsePreviousValue` (resolved to every parameter, defaults included) "differs" from
    a create that named a few. CloudFormation compares effective values: given, else the template's default.
    moto asks only once the submitted template equals the stack's, so the stack's declarations are the new
    ones. (moto's response layer compares a TemplateBody with the stack's resolved values before, and answers
    "No updates are to be performed"; it skips a TemplateURL, whose template it reads from S3 only after.)"""
    declared: dict[str, Any] = self.template_dict.get("Parameters") or {}

    def effective(given: dict[str, Any]) -> dict[str, str | None]:
        return {
            name: _parameter_text(given.get(name, (spec or {}).get("Default")))
            for name, spec in declared.items()
        }

    return effective(dict(self.parameters or {})) == effective(other_parameters)


def _parameter_text(value: Any) -> str | None:
    """A parameter value as CloudFormation compares it: text. moto resolves `UsePreviousValue` to its parsed
    value (a list for CommaDelimitedList, a number for Number)."""
    if value is None:
        return None
    if isinstance(value, list):
        return ",".join(scalar(item) for item in value)
    return scalar(value)


# ---------------------------------------------------------------- stack updates

_original_build_resource_diff = parsing.ResourceMap.build_resource_diff


def build_resource_diff(
    self: ResourceMap, other_template: dict[str, Any], parameters: dict[str, Any] | None = None
) -> dict[str, list[str]]:
    """Which resources an update adds, modifies and removes, as CloudFormation decides it.

    moto compares the resources' template text and, for parameter changes, only direct `Ref`s: a parameter
    used through a condition or `Fn::Sub` changes nothing, and a resource whose condition turns true (or
    false) is never created (or deleted). Here: resources are added/removed by their conditions under the new
    parameters; a resource is modified when its text changed or it refers (Ref, Fn::Sub, Fn::GetAtt,
    Fn::If, Condition) to a parameter or condition whose value changed, or to a resource added or removed.
    Falls back to moto's diff for templates these rules cannot evaluate."""
    try:
        return _resource_diff(self, other_template, parameters)
    except (KeyError, TypeError, ValueError) as err:
        warn(f"stack update: falling back to moto's resource diff ({err!r})")
        return _original_build_resource_diff(self, other_template, parameters)


def _resource_diff(
    resource_map: ResourceMap, template: dict[str, Any], parameters: dict[str, Any] | None
) -> dict[str, list[str]]:
    old: dict[str, Any] = resource_map._resource_json_map
    new: dict[str, Any] = template.get("Resources") or {}
    given = parameters if parameters is not None else resource_map.input_parameters
    pseudo = {k: v for k, v in resource_map._parsed_resources.items() if k.startswith("AWS::")}
    old_values = {k: v for k, v in resource_map.resolved_parameters.items()}
    new_values = {
        name: str(spec["Default"])
        for name, spec in (template.get("Parameters") or {}).items()
        if "Default" in spec
    }
    new_values.update({k: v for k, v in (given or {}).items()})
    old_conditions = {
        name: bool(resource_map.lazy_condition_map[name]) for name in resource_map.lazy_condition_map
    }
    new_conditions = Evaluator(
        {**new_values, **pseudo}, template.get("Conditions"), template.get("Mappings")
    ).all_conditions()

    created_old = [name for name in old if name in resource_map._parsed_resources]
    created_new = [
        name for name, spec in new.items() if "Condition" not in spec or new_conditions[spec["Condition"]]
    ]
    add = [name for name in created_new if name not in created_old]
    remove = [name for name in created_old if name not in created_new]
    changed = {
        name
        for name in set(old_values) | set(new_values)
        if str(old_values.get(name)).lower() != str(new_values.get(name)).lower()
    }
    changed |= {
        n for n in set(old_conditions) | set(new_conditions) if old_conditions.get(n) != new_conditions.get(n)
    }
    changed |= set(add) | set(remove)
    modify = [
        name
        for name in created_new
        if name in created_old
        and (_normal(new[name]) != _normal(old[name]) or references(new[name]) & changed)
    ]
    return {"Add": add, "Modify": modify, "Remove": remove}


def _normal(resource: dict[str, Any]) -> dict[str, Any]:
    """moto adds an empty Properties to a resource that has none: compare as if every resource had one."""
    return {**resource, "Properties": resource.get("Properties") or {}}


_original_update = parsing.ResourceMap.update

# Kept when the stack is deleted or the resource removed by an update. RetainExceptOnCreate resources are
# deleted when the stack's own creation rolls back (moto's ResourceMap.delete keeps "Retain" only).
RETAINED_ON_DELETE = ("Retain", "RetainExceptOnCreate")


def update(self: ResourceMap, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
    """moto's update, except that a removed resource leaves the stack (moto keeps listing it) and one with
    DeletionPolicy Retain is kept, not deleted (moto deletes it)."""
    removed = build_resource_diff(self, template, parameters)["Remove"]
    for name in removed:
        if self._resource_json_map[name].get("DeletionPolicy") in RETAINED_ON_DELETE:
            self._parsed_resources.pop(name, None)  # moto then skips it ("never created")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unable to delete .*, as it was never created")
        _original_update(self, template, parameters)
    for name in removed:
        self._parsed_resources.pop(name, None)


def _build_change_set_actions(
    self: ResourceMap, template: dict[str, Any], parameters: dict[str, Any] | None = None
) -> dict[str, dict[str, dict[str, str]]]:
    """moto's change set preview, from the same diff as the update (with the change set's parameters)."""
    diff = build_resource_diff(self, template, parameters)
    actions: dict[str, dict[str, dict[str, str]]] = {"Add": {}, "Modify": {}, "Remove": {}}
    for action, names in diff.items():
        for name in names:
            spec = (template["Resources"] if action != "Remove" else self._resource_json_map)[name]
            actions[action][name] = {"LogicalResourceId": name, "ResourceType": spec["Type"]}
    return actions


def change_set_diff(self: ChangeSet) -> list[Any]:
    from moto.cloudformation.models import Change

    actions = _build_change_set_actions(self.stack.resource_map, self.template_dict, self.parameters)
    return [
        Change(action=action, logical_resource_id=name, resource_type=spec["ResourceType"])
        for action, resources in actions.items()
        for name, spec in resources.items()
    ]


def stack_resources(self: Stack) -> list[Any]:
    """The stack's resources: those it created. (moto's listing creates missing ones as a side effect and
    shows resources whose condition is false as blank entries.)"""
    resource_map = self.resource_map
    created = (resource_map._parsed_resources.get(name) for name in resource_map._resource_json_map)
    return [resource for resource in created if resource is not None and not isinstance(resource, str)]


# ---------------------------------------------------------------- resource events, failures, rollback

_original_parse_and_create = parsing.parse_and_create_resource
_original_parse_and_update = parsing.parse_and_update_resource
_original_delete_resource = parsing.ResourceMap._delete_resource
_original_create_resources = Stack.create_resources
_original_stack_update = Stack.update
_original_stack_delete = Stack.delete


def _stack_of(resource_map: ResourceMap) -> Stack | None:
    from moto.cloudformation.models import cloudformation_backends

    deleting = getattr(resource_map, "_trailwatch_stack", None)  # DeleteStack takes the stack out first
    if deleting is not None:
        return deleting
    backend = cloudformation_backends[resource_map._account_id][resource_map._region_name]
    return backend.stacks.get(resource_map.stack_id)


def stack_delete(self: Stack) -> None:
    """moto's DeleteStack, with DELETE_SKIPPED events for the resources kept by DeletionPolicy Retain (or
    RetainExceptOnCreate)."""
    resource_map = self.resource_map
    resource_map._trailwatch_stack = self  # type: ignore[attr-defined]
    retained = [
        (name, spec["Type"], _physical_id(resource_map._parsed_resources.get(name)))
        for name, spec in resource_map._resource_json_map.items()
        if spec.get("DeletionPolicy") in RETAINED_ON_DELETE
        and resource_map._parsed_resources.get(name) is not None
    ]
    for name, _, _ in retained:  # moto keeps only "Retain"; a failed creation's rollback does not come here
        resource_map._resource_json_map[name]["DeletionPolicy"] = "Retain"
    _original_stack_delete(self)
    for name, kind, physical_id in retained:
        _resource_event(resource_map, name, kind, "DELETE_SKIPPED", physical_id)


def _resource_event(
    resource_map: ResourceMap,
    logical_id: str,
    resource_type: str,
    status: str,
    physical_id: str = "",
    reason: str | None = None,
) -> None:
    """A stack event for one resource, as CloudFormation records them (moto records stack events only)."""
    from moto.cloudformation.models import Event

    stack = _stack_of(resource_map)
    if stack is not None:
        stack.events.append(
            Event(
                stack_id=stack.stack_id,
                stack_name=stack.name,
                logical_resource_id=logical_id,
                physical_resource_id=physical_id,
                resource_type=resource_type,
                resource_status=status,
                resource_status_reason=reason,
                resource_properties=None,
            )
        )


def _reason(err: BaseException) -> str:
    return str(getattr(err, "message", "") or err)


def _physical_id(resource: Any) -> str:
    return str(getattr(resource, "physical_resource_id", "") or "")


def parse_and_create_resource(
    logical_id: str, resource_json: Json, resources_map: ResourceMap, account_id: str, region_name: str
) -> Any:
    """moto's resource creation with CREATE_* events; a type moto cannot create fails (moto skips it)."""
    kind = resource_json.get("Type", "")
    condition = resource_json.get("Condition")
    if condition and not resources_map.lazy_condition_map[condition]:
        return None
    _resource_event(resources_map, logical_id, kind, "CREATE_IN_PROGRESS")
    try:
        resource = _original_parse_and_create(
            logical_id, resource_json, resources_map, account_id, region_name
        )
        if resource is None and kind not in parsing.NULL_MODELS:
            raise ValidationError(
                message=f"{kind} is not supported by the local AWS ({logical_id} not created)"
            )
    except Exception as err:
        _resource_event(resources_map, logical_id, kind, "CREATE_FAILED", reason=_reason(err))
        raise
    _resource_event(resources_map, logical_id, kind, "CREATE_COMPLETE", _physical_id(resource))
    return resource


def parse_and_update_resource(
    logical_id: str, resource_json: Json, resources_map: ResourceMap, account_id: str, region_name: str
) -> Any:
    kind = resource_json.get("Type", "")
    stack = _stack_of(resources_map)
    mine = [e for e in (stack.events if stack else []) if e.logical_resource_id == logical_id]
    retry = bool(mine) and mine[-1].resource_status == "UPDATE_FAILED"  # moto retries a failed update
    if not retry:
        _resource_event(resources_map, logical_id, kind, "UPDATE_IN_PROGRESS")
    try:
        resource = _original_parse_and_update(
            logical_id, resource_json, resources_map, account_id, region_name
        )
    except Exception as err:
        if not retry:
            _resource_event(resources_map, logical_id, kind, "UPDATE_FAILED", reason=_reason(err))
        raise
    _resource_event(resources_map, logical_id, kind, "UPDATE_COMPLETE", _physical_id(resource))
    return resource


def delete_resource(self: ResourceMap, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
    """moto's deletion (retried by moto in dependency order), with DELETE_* events once it succeeds."""
    _original_delete_resource(self, parsed_resource, resource_json)
    logical_id = getattr(parsed_resource, "logical_resource_id", "")
    for status in ("DELETE_IN_PROGRESS", "DELETE_COMPLETE"):
        _resource_event(
            self, logical_id, resource_json.get("Type", ""), status, _physical_id(parsed_resource)
        )


def _roll_back_creation(stack: Stack, err: BaseException) -> None:
    """A failed creation as CloudFormation ends it: resources deleted, stack ROLLBACK_COMPLETE (moto answers
    the API call with the error and leaves the stack CREATE_IN_PROGRESS)."""
    failed = [e.logical_resource_id for e in stack.events if e.resource_status == "CREATE_FAILED"]
    stack.status = "ROLLBACK_IN_PROGRESS"
    stack._add_stack_event(
        "ROLLBACK_IN_PROGRESS",
        resource_status_reason=f"The following resource(s) failed to create: [{', '.join(failed)}]",
    )
    try:
        stack.resource_map.delete()
    except Exception as cleanup:  # the stack still ends; say what is left behind
        warn(f"stack {stack.name}: rollback could not delete every resource: {_reason(cleanup)}")
    stack.resource_map._resource_json_map = {}  # a rolled-back stack has no resources and no outputs
    stack.output_map._output_json_map = {}
    stack.status = "ROLLBACK_COMPLETE"
    stack._add_stack_event("ROLLBACK_COMPLETE")


def _update_failed(stack: Stack, err: BaseException) -> None:
    """A failed update: the local AWS cannot restore the previous resources, and says so."""
    stack.status = "UPDATE_ROLLBACK_FAILED"
    stack._add_stack_event(
        "UPDATE_ROLLBACK_FAILED",
        resource_status_reason=f"{_reason(err)} (the local AWS does not roll back updates)",
    )


def create_resources(self: Stack) -> None:
    try:
        _original_create_resources(self)
    except Exception as err:
        _roll_back_creation(self, err)


def stack_update(self: Stack, *args: Any, **kwargs: Any) -> None:
    try:
        _original_stack_update(self, *args, **kwargs)
    except Exception as err:
        _update_failed(self, err)
