"""The fast path's CLI side: the EventBridge rule's pattern and state from the config, the
forwarder stacks of other regions, and verify's checks of both.

The stack creates the rule `<stack>-fast-path` on the default bus with a broad CloudTrail pattern; after
every deploy and config upload the CLI puts the config's own pattern on it (`events:PutRule` with the same
name, description and bus): `trailwatch_processor.eventbridge_pattern.event_pattern(config)` generates it,
exactly when it can and a broad pattern (with a note) when the config cannot be expressed within
EventBridge's limits; the processor filters either way. A forwarder stack (`Role=forwarder`, the same
main.yaml, deployed by `deploy --regions`) has a rule of the same name forwarding its region's events to the
home region's bus; it gets the same pattern and state, so only events a rule can match cross regions.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import boto3
import botocore.exceptions

from trailwatch.errors import UsageError, error_code
from trailwatch.session import Aws
from trailwatch.ui import UI

if TYPE_CHECKING:
    from trailwatch.verify import Context

RULE_SUFFIX = "-fast-path"
# The home rule's tag naming the regions `deploy --regions` gave a forwarder (space-separated), so sync and
# verify find them with one call instead of a CloudFormation call in every region.
FORWARDERS_TAG = "trailwatch:forwarder-regions"
DISABLED = "DISABLED"
ALL_MANAGEMENT_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
ENABLED_STATES = frozenset({"ENABLED", ALL_MANAGEMENT_STATE})
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


class Pattern(Protocol):
    """What `trailwatch_processor.eventbridge_pattern.event_pattern` returns (FastPathPattern)."""

    pattern: dict[str, Any]
    exact: bool
    note: str | None
    read_only: bool

    @property
    def state(self) -> str: ...


def rule_name(stack_name: str) -> str:
    """The rule's name in the home stack and in every forwarder (main.yaml: `${AWS::StackName}-fast-path`)."""
    return stack_name + RULE_SUFFIX


def generate(config: Any) -> Pattern:
    """The rule's pattern and state for `config` (the processor's generator, so both sides agree)."""
    from trailwatch_processor.eventbridge_pattern import event_pattern

    return event_pattern(config)  # type: ignore[no-any-return]


def pattern_text(pattern: dict[str, Any]) -> str:
    return json.dumps(pattern, sort_keys=True, separators=(",", ":"))


def in_region(aws: Aws, region: str) -> Aws:
    """The same credentials, endpoint and stack name in another region (the session's own credentials:
    an `Aws` may carry a session not built from the options, as the demo's)."""
    creds = aws.session.get_credentials()
    if creds is None:
        return Aws(replace(aws.options, region=region))
    frozen = creds.get_frozen_credentials()
    session = boto3.Session(
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
        region_name=region,
    )
    return Aws(replace(aws.options, region=region), _session=session)


def parse_regions(text: str | None, home: str) -> list[str]:
    """`--regions us-west-2,eu-west-1` -> the forwarder regions (the home region itself is left out)."""
    if not text:
        return []
    regions: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if not _REGION.fullmatch(item):
            raise UsageError(f"--regions: {item!r} is not a region name (e.g. us-west-2).")
        if item != home and item not in regions:
            regions.append(item)
    return regions


# -- the rule's pattern and state ---------------------------------------------------------------------
@dataclass(frozen=True)
class Applied:
    region: str
    name: str
    state: str
    changed: bool


def apply_rule(events: Any, name: str, generated: Pattern) -> tuple[str, bool]:
    """PutRule with the generated pattern and state, keeping name, description and bus. A rule the operator
    disabled stays disabled (detections then come from the log files only); returns (state, changed)."""
    rule = events.describe_rule(Name=name)
    state = DISABLED if rule.get("State") == DISABLED else generated.state
    text = pattern_text(generated.pattern)
    current = rule.get("EventPattern")
    same = current is not None and pattern_text(json.loads(current)) == text and rule.get("State") == state
    if same:
        return state, False
    events.put_rule(
        Name=name,
        EventPattern=json.dumps(generated.pattern, separators=(",", ":"), ensure_ascii=False),
        State=state,
        Description=rule.get("Description") or "trailwatch fast path",
        EventBusName=rule.get("EventBusName") or "default",
    )
    return state, True


def sync_rules(aws: Aws, ui: UI, config: Any, outputs: dict[str, str]) -> list[Applied]:
    """Set the pattern and state of the home rule and of every forwarder's rule from `config`."""
    name = outputs.get("FastPathRuleName")
    if not name:
        ui.info("Fast path off (FastPath=false): detections arrive from the log files only.")
        return []
    generated = generate(config)
    if getattr(generated, "broad", False):
        ui.warn(
            "fast path: the config cannot be expressed within EventBridge's pattern limits; the rule takes "
            f"every CloudTrail event and the function filters ({generated.note or 'no reason given'})."
        )
    elif not generated.exact:
        ui.info(
            f"Fast path: the rule's pattern is wider than the config, the function filters: {generated.note}"
        )
    done: list[Applied] = []
    targets = [(aws.region, aws)] + [
        (region, in_region(aws, region)) for region in forwarder_regions(aws, outputs)
    ]
    for region, regional in targets:
        state, changed = apply_rule(regional.client("events"), name, generated)
        done.append(Applied(region, name, state, changed))
        what = "pattern set" if changed else "pattern already current"
        extra = " (disabled by hand: detections from the log files only)" if state == DISABLED else ""
        ui.progress(f"fast path rule {name} in {region}: {what}, {state}{extra}")
    if generated.read_only:
        ui.info("Fast path: a rule needs read-only events, so the rule receives all management events.")
    return done


# -- forwarders ---------------------------------------------------------------------------------------
def forwarder_regions(aws: Aws, outputs: dict[str, str]) -> list[str]:
    """The regions recorded on the home rule as holding a forwarder (`deploy --regions`)."""
    arn = outputs.get("FastPathRuleArn")
    if not arn:
        return []
    tags = aws.client("events").list_tags_for_resource(ResourceARN=arn).get("Tags") or []
    value = next((t.get("Value", "") for t in tags if t.get("Key") == FORWARDERS_TAG), "")
    return [r for r in value.split() if _REGION.fullmatch(r) and r != aws.region]


def record_forwarders(aws: Aws, outputs: dict[str, str], regions: Iterable[str]) -> list[str]:
    """Add `regions` to the home rule's forwarder tag; the regions recorded now."""
    recorded = sorted(set(forwarder_regions(aws, outputs)) | set(regions))
    aws.client("events").tag_resource(
        ResourceARN=outputs["FastPathRuleArn"], Tags=[{"Key": FORWARDERS_TAG, "Value": " ".join(recorded)}]
    )
    return recorded


def forwarder_parameters(home: dict[str, str], home_region: str) -> dict[str, str]:
    """A forwarder's parameters: Role and HomeRegion; the home stack's values for the parameters without a
    default, which a forwarder does not use (CloudFormation still wants a value)."""
    given = {"Role": "forwarder", "HomeRegion": home_region}
    for key in ("TrailBucketName", "AlertEmail", "CodeBucket", "CodeKey", "TrailName", "FastPath"):
        if key in home:
            given[key] = home[key]
    return given


def deploy_forwarders(
    aws: Aws,
    ui: UI,
    regions: list[str],
    *,
    template: str,
    template_arg: dict[str, str],
    home_parameters: dict[str, str],
    home_outputs: dict[str, str],
    dry_run: bool = False,
) -> list[str]:
    """Create or update the forwarder stack (same name, same main.yaml) in each region; each one deployed is
    recorded on the home rule (FORWARDERS_TAG)."""
    from trailwatch import deploy, stack

    if home_parameters.get("FastPath", "true") == "false" or "FastPathRuleArn" not in home_outputs:
        ui.warn("FastPath=false: no forwarders deployed (there is no fast path to forward to).")
        return []
    declared = stack.template_parameters(template)
    deployed = []
    for region in regions:
        regional = in_region(aws, region)
        name = aws.options.stack_name
        ui.step(f"Fast path forwarder {name} in {region} -> {aws.region}")
        current = stack.describe_stack(regional, name)
        existing = stack.deployed_parameters(current)
        if existing is not None and existing.get("Role", "home") != "forwarder":
            raise UsageError(
                f"Stack {name} in {region} is a full trailwatch stack, not a forwarder; not changed.",
                hint="Pick another --stack-name, or remove that region from --regions.",
            )
        given = forwarder_parameters(home_parameters, aws.region)
        parameters = deploy.build_parameters(declared, given, existing)
        plan = stack.create_plan(regional, ui, name, template_arg, parameters)
        stack.print_plan(ui, plan)
        if dry_run:
            stack.discard_plan(regional, ui, plan)
            continue
        if not plan.no_changes:
            done = stack.execute_plan(regional, ui, plan)
            ui.success(f"Forwarder {name} in {region}: {done['StackStatus']}")
        deployed.append(region)
        record_forwarders(aws, home_outputs, [region])
    return deployed


# -- verify -------------------------------------------------------------------------------------------
def check_rule(events: Any, name: str, generated: Pattern | None, target_arn: str) -> tuple[str, str]:
    """One fast path rule: exists, enabled in the state the config needs, the config's pattern, the target."""
    try:
        rule = events.describe_rule(Name=name)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return "fail", f"no rule {name}: deploy again"
        raise
    state = rule.get("State")
    problems: list[str] = []
    if state == DISABLED:
        return "warn", f"{name} is DISABLED: detections arrive from the log files only (minutes later)"
    if state not in ENABLED_STATES:
        problems.append(f"state {state}")
    if generated is not None:
        if pattern_text(json.loads(rule.get("EventPattern") or "null")) != pattern_text(generated.pattern):
            problems.append("its pattern is not the config's: run `trailwatch upload-config`")
        if state != generated.state:
            problems.append(
                f"state {state}, the config needs {generated.state} (`aws events enable-rule` sets ENABLED): "
                "run `trailwatch upload-config`"
            )
    targets = events.list_targets_by_rule(Rule=name).get("Targets") or []
    if not any(t.get("Arn") == target_arn for t in targets):
        problems.append(f"no target {target_arn} (targets: {[t.get('Arn') for t in targets]})")
    if problems:
        return "fail", f"{name}: " + "; ".join(problems)
    shown = (
        "exact" if generated is None or generated.exact else "wider than the config (the function filters)"
    )
    return "pass", f"{name} {state}, pattern of the config in force ({shown}), target {target_arn}"


def verify_home(aws: Aws, outputs: dict[str, str], config: Any) -> tuple[str, str]:
    name = outputs.get("FastPathRuleName")
    if not name:
        return "pass", "off (FastPath=false): detections arrive from the log files only"
    generated = generate(config) if config is not None else None
    status, reason = check_rule(aws.client("events"), name, generated, outputs["FastPathQueueArn"])
    if generated is None and status == "pass":
        return "warn", reason + " (no valid config to compare the pattern with)"
    return status, reason


def verify_mapping(aws: Aws, outputs: dict[str, str]) -> tuple[str, str]:
    if "FastPathQueueArn" not in outputs:
        return "pass", "off (FastPath=false)"
    from trailwatch.verify import check_mapping  # verify imports this module

    fn, queue = outputs["ProcessorFunctionName"], outputs["FastPathQueueArn"]
    return check_mapping(aws, fn, queue, "fast path queue")


def verify_dlq(aws: Aws, outputs: dict[str, str]) -> tuple[str, str]:
    url = outputs.get("FastPathDeadLetterQueueUrl")
    if not url:
        return "pass", "off (FastPath=false)"
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    count = int(attrs["Attributes"].get("ApproximateNumberOfMessages", "0"))
    if count:
        return (
            "fail",
            f"{count} fast path event(s) in the dead-letter queue (their log files still bring them)",
        )
    return "pass", "empty"


def verify_forwarders(aws: Aws, outputs: dict[str, str], config: Any) -> tuple[str, str]:
    name = outputs.get("FastPathRuleName")
    if not name:
        return "pass", "off (FastPath=false)"
    regions = forwarder_regions(aws, outputs)
    if not regions:
        return "pass", (
            f"no forwarder: events of regions other than {aws.region} (and us-east-1's global services) "
            "arrive from the log files only; `trailwatch deploy --regions R1,R2` adds forwarders"
        )
    generated = generate(config) if config is not None else None
    home_bus = f"arn:{aws.partition}:events:{aws.region}:{aws.account_id()}:event-bus/default"
    worst, reasons = "pass", []
    for region in regions:
        status, reason = check_rule(in_region(aws, region).client("events"), name, generated, home_bus)
        if status != "pass":
            worst = "fail" if "fail" in (status, worst) else "warn"
            reasons.append(f"{region}: {reason}")
    if reasons:
        return worst, "; ".join(reasons)
    return "pass", f"forwarders in {', '.join(regions)} -> {aws.region}, pattern of the config in force"


# verify's rows for the fast path (verify.CHECKS runs them after "config": ctx.config is the config in force
# the pattern must equal).
VERIFY_CHECKS: list[tuple[str, Callable[[Context], tuple[str, str]]]] = [
    ("fast path rule", lambda ctx: verify_home(ctx.aws, ctx.outputs, ctx.config)),
    ("fast path queue -> function mapping", lambda ctx: verify_mapping(ctx.aws, ctx.outputs)),
    ("fast path dead-letter queue", lambda ctx: verify_dlq(ctx.aws, ctx.outputs)),
    ("fast path forwarders", lambda ctx: verify_forwarders(ctx.aws, ctx.outputs, ctx.config)),
]


# -- verify's probe -----------------------------------------------------------------------------------
def probe_envelope(record: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    """The EventBridge event CloudTrail would make of `record` (what the rule puts in the queue)."""
    service = str(record.get("eventSource", "")).split(".", 1)[0]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": f"aws.{service}",
        "account": account,
        "time": record.get("eventTime"),
        "region": region,
        "resources": [],
        "detail": record,
    }


def run_probe(aws: Aws, ui: UI, outputs: dict[str, str], config: Any, timeout: float) -> tuple[str, str]:
    """A probe event sent into the fast path queue as the rule would send it -> stored -> alerted.

    AWS does not let anyone but AWS put `aws.*` events on a bus, so the probe starts at the queue: what it
    measures is the queue, the function, the table and the alert; EventBridge's own delivery (seconds) is not
    in the figure."""
    from trailwatch import verify

    url = outputs.get("FastPathQueueUrl")
    if not url:
        return "pass", "skipped: no fast path (FastPath=false)"
    if config is None:
        return "fail", "skipped: no valid live config to pick a monitored event from"
    event_id = f"trailwatch-probe-{uuid.uuid4()}"
    record = verify.probe_record(config, event_id, datetime.now(UTC), aws.account_id(), aws.region)
    if record is None:
        return "fail", "no rule of the live config matches a plain eventName record"
    table = outputs["EventsTableName"]
    ui.progress(f"fast path probe: sending {record['eventName']} ({event_id}) to the fast path queue")
    started = time.monotonic()
    aws.client("sqs").send_message(
        QueueUrl=url, MessageBody=json.dumps(probe_envelope(record, aws.account_id(), aws.region))
    )
    try:
        stored_at, alerted_at = verify.wait_for_probe(aws, table, event_id, started, timeout)
    finally:
        try:
            aws.client("dynamodb").delete_item(TableName=table, Key={"EventId": {"S": event_id}})
        except botocore.exceptions.ClientError as exc:
            ui.warn(f"could not remove the fast path probe item {event_id} ({error_code(exc)})")
    if stored_at is None:
        return "fail", f"no item for {event_id} after {timeout:.0f}s: check the fast path DLQ and the logs"
    if alerted_at is None:
        return "fail", f"stored after {stored_at:.1f}s but not alerted within {timeout:.0f}s"
    return "pass", (
        f"queue -> stored {stored_at:.1f}s, queue -> alerted {alerted_at:.1f}s "
        "(plus EventBridge's own delivery, seconds)"
    )
