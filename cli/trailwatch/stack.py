"""CloudFormation through change sets: plan (create + describe), execute, and stream stack events."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions

from trailwatch import cfn_template
from trailwatch.errors import (
    AwsError,
    DeployFailed,
    TemplateRejected,
    continue_rollback_command,
    error_code,
    error_message,
    is_rollback_complete_message,
    is_update_rollback_failed_message,
    stack_rollback_complete,
    stack_update_rollback_failed,
)
from trailwatch.session import Aws
from trailwatch.ui import UI

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
MAX_TEMPLATE_BODY = 51_200
POLL_SECONDS = 2.0
STACK_TIMEOUT_SECONDS = 3600.0
HEARTBEAT_SECONDS = 15.0  # a line at least this often while CloudFormation works silently
SUCCESS_STATUSES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
NO_CHANGES_MARKERS = ("didn't contain changes", "No updates are to be performed")


# -- template ------------------------------------------------------------------------------------
def parse_template(text: str) -> dict[str, Any]:
    data = cfn_template.load(text)
    if not isinstance(data, dict):
        raise TemplateRejected("The template is not a YAML/JSON mapping.")
    return data


def template_parameters(text: str) -> dict[str, dict[str, Any]]:
    params = parse_template(text).get("Parameters") or {}
    return {str(k): (v or {}) for k, v in params.items()}


# -- stack state ---------------------------------------------------------------------------------
def describe_stack(aws: Aws, name: str) -> dict[str, Any] | None:
    try:
        stacks = aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in error_message(exc):
            return None
        raise
    return stacks[0] if stacks else None


def stack_outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def stack_parameters(stack: dict[str, Any]) -> dict[str, str]:
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}


def deployed_parameters(stack: dict[str, Any] | None) -> dict[str, str] | None:
    """The parameters of a deployed stack; None when there is none, or only the REVIEW_IN_PROGRESS
    placeholder a first change set leaves (nothing of it was ever created)."""
    if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        return None
    return stack_parameters(stack)


def require_stack(aws: Aws, name: str) -> dict[str, Any]:
    stack = describe_stack(aws, name)
    if stack is None:
        raise AwsError(
            f"Stack {name!r} not found in {aws.region}.",
            hint="Deploy it with `trailwatch deploy --bucket NAME --email ADDR`, "
            "or pass --stack-name/--region.",
        )
    return stack


# -- plan ----------------------------------------------------------------------------------------
@dataclass
class Plan:
    stack_name: str
    change_set_type: str
    change_set_id: str | None = None
    stack_id: str | None = None
    changes: list[dict[str, str]] = field(default_factory=list)
    no_changes: bool = False


def template_argument(aws: Aws, template: str, artifacts_bucket: str | None) -> dict[str, str]:
    if len(template.encode()) <= MAX_TEMPLATE_BODY or artifacts_bucket is None:
        return {"TemplateBody": template}
    key = f"trailwatch/templates/main-{hashlib.sha256(template.encode()).hexdigest()[:16]}.yaml"
    aws.client("s3").put_object(
        Bucket=artifacts_bucket, Key=key, Body=template.encode(), ExpectedBucketOwner=aws.account_id()
    )
    return {"TemplateURL": f"https://s3.{aws.region}.amazonaws.com/{artifacts_bucket}/{key}"}


def _prepare_existing(aws: Aws, ui: UI, name: str) -> str:
    """CREATE or UPDATE, after refusing stacks that cannot take a change set."""
    stack = describe_stack(aws, name)
    if stack is None:
        return "CREATE"
    status = stack["StackStatus"]
    if status == "ROLLBACK_COMPLETE":
        raise stack_rollback_complete(name)
    if status == "UPDATE_ROLLBACK_FAILED":
        raise stack_update_rollback_failed(name, aws.cli_flags())
    if status == "REVIEW_IN_PROGRESS":
        ui.progress(f"Removing empty stack {name} left in REVIEW_IN_PROGRESS by an earlier plan")
        delete_and_wait(aws, ui, stack["StackId"])
        return "CREATE"
    if status.endswith("_IN_PROGRESS"):
        raise AwsError(
            f"Stack {name} is busy ({status}).", hint="Wait for the current operation, then retry."
        )
    if status == "DELETE_FAILED":
        raise AwsError(f"Stack {name} is in DELETE_FAILED.", hint="Run `trailwatch destroy` again.")
    return "UPDATE"


def create_plan(
    aws: Aws, ui: UI, name: str, template_arg: dict[str, str], parameters: list[dict[str, Any]]
) -> Plan:
    cfn = aws.client("cloudformation")
    plan = Plan(stack_name=name, change_set_type=_prepare_existing(aws, ui, name))
    change_set_name = "trailwatch-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    try:
        created = cfn.create_change_set(
            StackName=name,
            ChangeSetName=change_set_name,
            ChangeSetType=plan.change_set_type,
            Parameters=parameters,
            Capabilities=CAPABILITIES,
            Description="trailwatch deploy",
            **template_arg,
        )
    except botocore.exceptions.ClientError as exc:
        message = error_message(exc)
        if error_code(exc) == "ValidationError" and any(m in message for m in NO_CHANGES_MARKERS):
            plan.no_changes = True
            return plan
        if error_code(exc) == "ValidationError" and is_rollback_complete_message(message):
            raise stack_rollback_complete(name) from exc
        if error_code(exc) == "ValidationError" and is_update_rollback_failed_message(message):
            raise stack_update_rollback_failed(name, aws.cli_flags()) from exc
        if error_code(exc) == "ValidationError":
            raise TemplateRejected(
                f"CloudFormation rejected the template: {message}",
                hint="Check --param values against the template's parameters.",
            ) from exc
        raise
    plan.change_set_id, plan.stack_id = created["Id"], created["StackId"]
    described = _wait_change_set(aws, ui, plan.change_set_id)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        if any(m in reason for m in NO_CHANGES_MARKERS):
            plan.no_changes = True
            _delete_change_set(aws, plan.change_set_id)
            return plan
        _delete_change_set(aws, plan.change_set_id)
        raise TemplateRejected(f"CloudFormation rejected the change set: {reason}")
    plan.changes = [_change_row(c) for c in described.get("Changes") or []]
    return plan


def _wait_change_set(aws: Aws, ui: UI, change_set_id: str) -> dict[str, Any]:
    cfn = aws.client("cloudformation")
    started = time.monotonic()
    while True:
        described = _describe_change_set_all(cfn, change_set_id)
        if described["Status"] in ("CREATE_COMPLETE", "FAILED", "DELETE_COMPLETE"):
            return described
        if time.monotonic() - started > STACK_TIMEOUT_SECONDS:
            raise AwsError(f"Change set {change_set_id} did not finish ({described['Status']}).")
        ui.progress(f"Change set {described['Status']}", since=started)
        time.sleep(POLL_SECONDS)


def _describe_change_set_all(cfn: Any, change_set_id: str) -> dict[str, Any]:
    """The first page of the change set's description, with the Changes of every page (botocore paginates)."""
    pages = iter(cfn.get_paginator("describe_change_set").paginate(ChangeSetName=change_set_id))
    described = dict(next(pages))
    described["Changes"] = [c for page in [described, *pages] for c in page.get("Changes") or []]
    return described


def _change_row(change: dict[str, Any]) -> dict[str, str]:
    rc = change.get("ResourceChange") or {}
    return {
        "action": str(rc.get("Action", "")),
        "logical_id": str(rc.get("LogicalResourceId", "")),
        "type": str(rc.get("ResourceType", "")),
        "replacement": str(rc.get("Replacement") or "-"),
    }


def _delete_change_set(aws: Aws, change_set_id: str) -> None:
    try:
        aws.client("cloudformation").delete_change_set(ChangeSetName=change_set_id)
    except botocore.exceptions.ClientError:
        pass


def discard_plan(aws: Aws, ui: UI, plan: Plan) -> None:
    """After --dry-run: drop the change set, and the empty stack a CREATE change set leaves."""
    if plan.change_set_id:
        _delete_change_set(aws, plan.change_set_id)
    if plan.change_set_type == "CREATE" and plan.stack_id:
        stack = describe_stack(aws, plan.stack_id)
        if stack and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
            aws.client("cloudformation").delete_stack(StackName=plan.stack_id)


def print_plan(ui: UI, plan: Plan) -> None:
    if plan.no_changes:
        ui.info("No changes: the stack already matches this template, parameters and package.")
        return
    verb = "Create" if plan.change_set_type == "CREATE" else "Update"
    ui.info(f"{verb} stack {plan.stack_name}: {len(plan.changes)} resource change(s)")
    ui.table(
        ["action", "resource", "type", "replacement"],
        [(c["action"], c["logical_id"], c["type"], c["replacement"]) for c in plan.changes],
    )


# -- execute and watch ---------------------------------------------------------------------------
def execute_plan(aws: Aws, ui: UI, plan: Plan) -> dict[str, Any]:
    """Execute the change set, stream events until the stack settles; DeployFailed on failure."""
    assert plan.change_set_id and plan.stack_id
    cfn = aws.client("cloudformation")
    since = datetime.now(UTC)
    cfn.execute_change_set(ChangeSetName=plan.change_set_id, StackName=plan.stack_id)
    status, failures = watch_stack(aws, ui, plan.stack_id, since)
    stack = describe_stack(aws, plan.stack_id) or {}
    if status not in SUCCESS_STATUSES:
        raise DeployFailed(
            f"Stack {plan.stack_name} ended in {status}.",
            failures,
            hint=_failure_hint(status, failures, continue_rollback_command(plan.stack_name, aws.cli_flags())),
        )
    return stack


def _failure_hint(status: str, failures: list[tuple[str, str, str, str]], continue_rollback: str) -> str:
    hints = []
    if any(kind == "AWS::S3::Bucket" and "already exists" in reason for _, kind, _, reason in failures):
        hints.append("S3 bucket names are global: choose another --bucket.")
    if status == "UPDATE_ROLLBACK_FAILED":
        hints.append(
            f"The update's rollback failed too: fix its cause, run `{continue_rollback}`, then deploy again."
        )
    elif status == "ROLLBACK_COMPLETE":
        hints.append("Run `trailwatch destroy`, fix the cause above, then `trailwatch deploy` again.")
    else:
        hints.append("Fix the cause above and run `trailwatch deploy` again.")
    return " ".join(hints)


def delete_and_wait(aws: Aws, ui: UI, stack_id: str) -> str:
    since = datetime.now(UTC)
    aws.client("cloudformation").delete_stack(StackName=stack_id)
    status, failures = watch_stack(aws, ui, stack_id, since)
    if status != "DELETE_COMPLETE":
        raise DeployFailed(
            f"Stack deletion ended in {status}.", failures, hint="Run `trailwatch destroy` again."
        )
    return status


def watch_stack(
    aws: Aws, ui: UI, stack_id: str, since: datetime
) -> tuple[str, list[tuple[str, str, str, str]]]:
    """Print stack events as they appear until the stack leaves *_IN_PROGRESS; (status, failed resources)."""
    started = last_output = time.monotonic()
    seen: set[str] = set()
    failures: list[tuple[str, str, str, str]] = []
    while True:
        for event in _new_events(aws, stack_id, since, seen):
            _print_event(ui, event, started)
            last_output = time.monotonic()
            if event.get("ResourceStatus", "").endswith("FAILED"):
                failures.append(
                    (
                        event.get("LogicalResourceId", ""),
                        event.get("ResourceType", ""),
                        event.get("ResourceStatus", ""),
                        event.get("ResourceStatusReason", "") or "",
                    )
                )
        stack = describe_stack(aws, stack_id)
        status = "DELETE_COMPLETE" if stack is None else stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            for event in _new_events(aws, stack_id, since, seen):
                _print_event(ui, event, started)
            return status, _real_failures(failures)
        if time.monotonic() - started > STACK_TIMEOUT_SECONDS:
            raise AwsError(f"Timed out waiting for stack {stack_id} ({status}).")
        if time.monotonic() - last_output >= HEARTBEAT_SECONDS:
            ui.progress(f"still {status} ...", since=started)
            last_output = time.monotonic()
        time.sleep(POLL_SECONDS)


def _real_failures(failures: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """Resource failures first; the stack's own event only when no resource failed; no cancellations."""
    resources = [
        f
        for f in failures
        if f[1] != "AWS::CloudFormation::Stack" and "Resource creation cancelled" not in f[3]
    ]
    return resources or failures


def _new_events(aws: Aws, stack_id: str, since: datetime, seen: set[str]) -> list[dict[str, Any]]:
    cfn = aws.client("cloudformation")
    fresh: list[dict[str, Any]] = []
    try:
        pages = cfn.get_paginator("describe_stack_events").paginate(StackName=stack_id)
        for page in pages:
            older = False
            for event in page.get("StackEvents", []):
                stamp = event["Timestamp"]
                if stamp.tzinfo is None:
                    stamp = stamp.replace(tzinfo=UTC)
                if stamp < since.replace(microsecond=0):
                    older = True
                    continue
                if event["EventId"] not in seen:
                    seen.add(event["EventId"])
                    fresh.append(event)
            if older:
                break
    except botocore.exceptions.ClientError as exc:
        if "does not exist" not in error_message(exc):
            raise
    return sorted(fresh, key=lambda e: e["Timestamp"])


def _print_event(ui: UI, event: dict[str, Any], started: float) -> None:
    reason = event.get("ResourceStatusReason")
    status, kind = event.get("ResourceStatus", ""), event.get("ResourceType", "")
    text = f"{status:<20} {kind:<32} {event.get('LogicalResourceId', '')}"
    if reason and reason != "User Initiated":
        text += f"  ({reason})"
    ui.progress(text, since=started)
