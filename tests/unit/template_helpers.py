"""Reading main.yaml as CloudFormation (not as text): loading, references, dependency order, S3 filters.

The template is loaded and resolved by the product's one evaluator (`trailwatch.cfn_template`), so short-form
tags (`!Ref`, `!Sub`, `!GetAtt`...) become their long forms (`{"Ref": ...}`, `{"Fn::Sub": ...}`) and the
result is plain data that tests can patch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trailwatch import cfn_template

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "main.yaml"

# The trail's ARN as every aws:SourceArn condition for CloudTrail must spell it (known trail name).
TRAIL_ARN = "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/${TrailName}"


class TemplateError(ValueError):
    """The template is not what a helper expects; the message names what and where."""


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Load a CloudFormation YAML/JSON file into plain dicts and lists."""
    decoded = cfn_template.load(path.read_text())
    if not isinstance(decoded, dict):
        raise TemplateError(f"{path}: not a template mapping")
    return decoded


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resources_of_type(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == type_name}


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    try:
        return template["Resources"][logical_id]["Properties"]
    except KeyError as exc:
        raise TemplateError(f"Resources.{logical_id}: no such resource or no Properties") from exc


def sub_text(value: Any, where: str = "value") -> str:
    """The template string of a `!Sub` (or a plain string); anything else is an error naming `where`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        body = value["Fn::Sub"]
        return body if isinstance(body, str) else body[0]
    raise TemplateError(f"{where}: expected a string or !Sub, got {value!r}")


def direct_dependencies(template: dict[str, Any], logical_id: str) -> set[str]:
    """Resources `logical_id` waits for: its references (Ref/GetAtt/Sub) and its DependsOn."""
    resource = template["Resources"][logical_id]
    names = cfn_template.references(resource.get("Properties", {})) | set(
        as_list(resource.get("DependsOn", []))
    )
    return names & set(template["Resources"])


def depends_on(template: dict[str, Any], logical_id: str, other: str) -> bool:
    """True when CloudFormation must create `other` before `logical_id` (transitively)."""
    seen: set[str] = set()
    todo = [logical_id]
    while todo:
        for dep in direct_dependencies(template, todo.pop()):
            if dep == other:
                return True
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return False


def find_cycle(template: dict[str, Any]) -> list[str] | None:
    """A dependency cycle among the resources (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dep in sorted(direct_dependencies(template, name)):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for name in template["Resources"]:
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    return as_list(policy_document["Statement"])


def statement_by_sid(policy_document: dict[str, Any], sid: str) -> dict[str, Any]:
    for stmt in statements(policy_document):
        if stmt.get("Sid") == sid:
            return stmt
    raise TemplateError(f"policy has no statement with Sid {sid!r}")


def iter_policy_documents(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, document) for every key, bucket, topic, queue and IAM policy document in the template."""
    for name, res in template["Resources"].items():
        p = res.get("Properties", {})
        for key in ("KeyPolicy", "PolicyDocument", "AssumeRolePolicyDocument"):
            if key in p:
                yield f"{name}.{key}", p[key]
        for i, policy in enumerate(p.get("Policies", [])):
            yield f"{name}.Policies[{i}]", policy["PolicyDocument"]


# ---------------------------------------------------------------- S3 event notifications

_NOTIFICATION_KINDS = ("TopicConfigurations", "QueueConfigurations", "LambdaConfigurations")


def notification_entries(notification: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(kind[index], entry) for each notification configuration on a bucket."""
    return [
        (f"{kind}[{i}]", entry)
        for kind in _NOTIFICATION_KINDS
        for i, entry in enumerate(notification.get(kind, []))
    ]


def key_filter(entry: dict[str, Any]) -> tuple[str, str]:
    """(prefix, suffix) of one notification entry; absent rules are empty strings."""
    rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules", [])
    by_name = {rule["Name"].lower(): rule["Value"] for rule in rules}
    return by_name.get("prefix", ""), by_name.get("suffix", "")


def key_matches(entry: dict[str, Any], key: str) -> bool:
    prefix, suffix = key_filter(entry)
    return key.startswith(prefix) and key.endswith(suffix)


def _events_overlap(a: str, b: str) -> bool:
    if a == b:
        return True
    return any(wide.endswith("*") and narrow.startswith(wide[:-1]) for wide, narrow in ((a, b), (b, a)))


def notification_overlaps(notification: dict[str, Any]) -> list[tuple[str, str]]:
    """Pairs of configurations S3 rejects as "Configurations overlap": a shared event type and prefixes and
    suffixes that can both match one key (one prefix starts the other, one suffix ends the other)."""
    entries = notification_entries(notification)
    clashes: list[tuple[str, str]] = []
    for i, (where_a, a) in enumerate(entries):
        for where_b, b in entries[i + 1 :]:
            (pa, sa), (pb, sb) = key_filter(a), key_filter(b)
            events = any(_events_overlap(x, y) for x in as_list(a["Event"]) for y in as_list(b["Event"]))
            prefixes = pa.startswith(pb) or pb.startswith(pa)
            suffixes = sa.endswith(sb) or sb.endswith(sa)
            if events and prefixes and suffixes:
                clashes.append((where_a, where_b))
    return clashes


# ---------------------------------------------------------------- queue visibility


def visibility_timeout_for(template: dict[str, Any], function_timeout: int) -> int:
    """The processing queue's visibility timeout when the stack is deployed with FunctionTimeout."""
    value = props(template, "LogProcessingQueue")["VisibilityTimeout"]
    return int(resolve(template, value, {"FunctionTimeout": str(function_timeout)}))


def visibility_violations(template: dict[str, Any]) -> list[int]:
    """Allowed FunctionTimeout values (and the default) whose visibility timeout is below 6x the timeout."""
    param = template["Parameters"]["FunctionTimeout"]
    timeouts = {int(v) for v in param.get("AllowedValues", [])} | {int(param["Default"])}
    bad: list[int] = []
    for timeout in sorted(timeouts):
        try:
            visible = visibility_timeout_for(template, timeout)
        except cfn_template.Unresolvable:
            bad.append(timeout)
            continue
        if visible < 6 * timeout:
            bad.append(timeout)
    return bad


# ---------------------------------------------------------------- parameter-dependent values


def resolve(template: dict[str, Any], value: Any, parameters: dict[str, str]) -> Any:
    """``value`` as CloudFormation resolves it for ``parameters`` (defaults for the rest)."""
    return cfn_template.Evaluator.for_template(template, parameters).resolve(value)


# ---------------------------------------------------------------- what a deployment creates


def deployment(
    template: dict[str, Any], parameters: dict[str, str], *, account: str, region: str
) -> cfn_template.Evaluator:
    """The evaluator of a deployment with ``parameters`` in ``account``/``region``: a Ref of a resource is its
    logical id and a GetAtt is ``Resource.Attribute``, so resolved values name what they point at."""
    env = {name: name for name in template["Resources"]}
    env |= {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": "aws", "AWS::StackName": "tw"}
    return cfn_template.Evaluator.for_template(
        template, {**env, **parameters}, get_att=lambda r, a: f"{r}.{a}"
    )


def created(
    template: dict[str, Any], evaluator: cfn_template.Evaluator, section: str = "Resources"
) -> set[str]:
    """The entries of ``section`` (Resources or Outputs) whose Condition holds under ``evaluator``."""
    return {
        name
        for name, entry in template[section].items()
        if "Condition" not in entry or evaluator.condition(entry["Condition"])
    }
