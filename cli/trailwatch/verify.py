"""`trailwatch verify`: configuration checks (pass / warn / fail), then an end-to-end probe.

Warnings (e.g. an email subscription still pending confirmation) do not fail the command: exit 0 when
no check failed, 1 otherwise.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions

from trailwatch import fast_path, stack
from trailwatch.cfn_template import Evaluator, Unresolvable
from trailwatch.configcmd import config_location, owned_bucket_args
from trailwatch.errors import EXIT_CHECK_FAILED, EXIT_OK, error_code, error_message
from trailwatch.session import Aws
from trailwatch.ui import UI

PROBE_USER_AGENT = "trailwatch-verify/probe (TEST EVENT written by `trailwatch verify`; no action needed)"
POLL_SECONDS = 0.5


@dataclass
class Report:
    ui: UI
    results: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, status: str, name: str, reason: str) -> None:
        self.results.append((status, name, reason))
        self.ui.check(status, name, reason)

    @property
    def failed(self) -> bool:
        return any(status == "fail" for status, _, _ in self.results)


@dataclass
class Context:
    aws: Aws
    stack: dict[str, Any]
    outputs: dict[str, str]
    template: dict[str, Any]
    config: Any = None
    trail_status: dict[str, Any] | None = None  # GetTrailStatus, read once
    newest_delivery: datetime | None = None  # attach mode: the newest log object's LastModified


def template_env(ctx: Context) -> dict[str, str]:
    env = {
        k: str(v.get("Default")) for k, v in (ctx.template.get("Parameters") or {}).items() if "Default" in v
    }
    env.update(stack.stack_parameters(ctx.stack))
    env.update(
        {
            "AWS::Region": ctx.aws.region,
            "AWS::AccountId": ctx.aws.account_id(),
            "AWS::Partition": ctx.aws.partition,
            "AWS::StackName": ctx.stack["StackName"],
            "AWS::StackId": ctx.stack["StackId"],
            "AWS::URLSuffix": "amazonaws.com",
        }
    )
    return env


def normalise_selectors(selectors: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out = []
    for sel in selectors:
        fields = []
        for fs in sel.get("FieldSelectors") or []:
            ops = tuple(sorted((k, tuple(sorted(v))) for k, v in fs.items() if k != "Field" and v))
            fields.append((fs["Field"], ops))
        out.append((sel.get("Name") or "", tuple(sorted(fields))))
    return sorted(out)


# -- checks ---------------------------------------------------------------------------------------
def _checked(report: Report, name: str, fn: Callable[[], tuple[str, str]]) -> None:
    try:
        status, reason = fn()
    except botocore.exceptions.ClientError as exc:
        status, reason = "fail", f"{error_code(exc)}: {error_message(exc)}"
    except Unresolvable as exc:
        status, reason = "warn", f"cannot compare with the template ({exc})"
    except KeyError as exc:
        status, reason = "fail", f"the stack has no {exc.args[0]} output (deployed from another template?)"
    report.add(status, name, reason)


def check_stack(ctx: Context) -> tuple[str, str]:
    status = ctx.stack["StackStatus"]
    ok = status in stack.SUCCESS_STATUSES
    return ("pass" if ok else "fail"), status


def _trail(ctx: Context) -> dict[str, Any]:
    trails = ctx.aws.client("cloudtrail").describe_trails(trailNameList=[ctx.outputs["TrailArn"]])[
        "trailList"
    ]
    if not trails:
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "TrailNotFound", "Message": ctx.outputs["TrailArn"]}}, "DescribeTrails"
        )
    return trails[0]


def check_trail_logging(ctx: Context) -> tuple[str, str]:
    status = _trail_status(ctx)
    if status.get("IsLogging"):
        return "pass", "the trail is logging"
    return "fail", "the trail is NOT logging (StopLogging?): run `aws cloudtrail start-logging --name TRAIL`"


# The last processed file may lag the trail's last delivery by this much before verify warns: files are
# delivered about every 5 minutes and processed within seconds; the marker is written at most once a minute.
PROCESSING_LAG = timedelta(minutes=30)
# No delivery for this long is worth a word (an idle account, or delivery has stopped).
DELIVERY_QUIET = timedelta(hours=1)


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def delivery_verdict(status: dict[str, Any], now: datetime) -> tuple[str, str]:
    """GetTrailStatus -> (status, reason): LatestDeliveryError fails, a long silence warns."""
    delivered = status.get("LatestDeliveryTime")
    error = status.get("LatestDeliveryError")
    if error:
        when = f" (last successful delivery {_utc(delivered).isoformat()})" if delivered else ""
        return "fail", f"the trail's last log file delivery failed: {error}{when}"
    if not delivered:
        return "warn", "the trail has not delivered a log file yet"
    delivered = _utc(delivered)
    shown = f"last log file delivered {delivered.isoformat()} ({_ago(delivered, now)})"
    if now - delivered > DELIVERY_QUIET:
        return "warn", f"{shown}: an idle account, or delivery has stopped"
    return "pass", shown


def last_processed_verdict(
    marker: dict[str, Any] | None, delivered: datetime | None, now: datetime
) -> tuple[str, str]:
    """The processor's last-processed marker (plain item) against the trail's last delivery."""
    if marker is None or "processed_at" not in marker:
        if delivered is not None and now - _utc(delivered) > PROCESSING_LAG:
            return "warn", "no log file processed yet, although the trail has delivered"
        return "warn", "no log file processed yet (the processor records one at most once a minute)"
    processed = datetime.fromisoformat(str(marker["processed_at"]).replace("Z", "+00:00"))
    shown = f"{marker.get('object_key', '?')} at {processed.isoformat()} ({_ago(processed, now)})"
    if delivered is not None and _utc(delivered) > processed and now - processed > PROCESSING_LAG:
        return "warn", (
            f"last processed file {shown}, while the trail delivered since "
            f"({_utc(delivered).isoformat()}): is the processor running? (dead-letter queue, mapping, "
            "function errors)"
        )
    return "pass", f"last processed file {shown}"


def _trail_status(ctx: Context) -> dict[str, Any]:
    if ctx.trail_status is None:
        ctx.trail_status = ctx.aws.client("cloudtrail").get_trail_status(Name=ctx.outputs["TrailArn"])
    return ctx.trail_status


def check_trail_delivery(ctx: Context) -> tuple[str, str]:
    return delivery_verdict(_trail_status(ctx), datetime.now(UTC))


def check_last_processed(ctx: Context) -> tuple[str, str]:
    from trailwatch_processor import markers, store

    item = (
        ctx.aws.client("dynamodb")
        .get_item(
            TableName=ctx.outputs["EventsTableName"],
            Key={"EventId": {"S": markers.last_processed_id(ctx.outputs["TrailBucketName"])}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    marker = store.plain(item) if item else None
    return last_processed_verdict(marker, _trail_status(ctx).get("LatestDeliveryTime"), datetime.now(UTC))


def check_trail_settings(ctx: Context) -> tuple[str, str]:
    trail = _trail(ctx)
    problems = []
    if not trail.get("IsMultiRegionTrail"):
        problems.append("not multi-region")
    if not trail.get("LogFileValidationEnabled"):
        problems.append("log file validation off")
    if trail.get("S3BucketName") != ctx.outputs.get("TrailBucketName"):
        problems.append(f"delivers to {trail.get('S3BucketName')}, not {ctx.outputs.get('TrailBucketName')}")
    if problems:
        return "fail", "; ".join(problems)
    return "pass", "multi-region, log file validation on, delivering to the trail bucket"


def check_selectors(ctx: Context) -> tuple[str, str]:
    trail_props = _find_resource(ctx.template, "AWS::CloudTrail::Trail").get("Properties") or {}
    template = Evaluator(template_env(ctx), ctx.template.get("Conditions"), ctx.template.get("Mappings"))
    got = ctx.aws.client("cloudtrail").get_event_selectors(TrailName=ctx.outputs["TrailArn"])
    if "AdvancedEventSelectors" in trail_props:
        declared = template.resolve(trail_props["AdvancedEventSelectors"])
        actual = got.get("AdvancedEventSelectors") or []
        if normalise_selectors(declared) == normalise_selectors(actual):
            return "pass", f"{len(actual)} advanced event selector(s) as declared"
        return "fail", f"selectors differ from the template: declared {declared}, found {actual}"
    declared = template.resolve(trail_props.get("EventSelectors") or [])
    actual = got.get("EventSelectors") or []
    if len(declared) == len(actual):
        return "pass", f"{len(actual)} event selector(s)"
    return "fail", f"declared {len(declared)} event selector(s), found {len(actual)}"


def _find_resource(template: dict[str, Any], kind: str) -> dict[str, Any]:
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") == kind:
            return resource
    return {}


def check_public_access(ctx: Context) -> tuple[str, str]:
    conf = ctx.aws.client("s3").get_public_access_block(
        Bucket=ctx.outputs["TrailBucketName"], **owned_bucket_args(ctx.aws)
    )
    flags = conf["PublicAccessBlockConfiguration"]
    off = [
        k
        for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
        if not flags.get(k)
    ]
    return ("fail", f"public access block off: {', '.join(off)}") if off else ("pass", "all four settings on")


def check_encryption(ctx: Context) -> tuple[str, str]:
    try:
        conf = ctx.aws.client("s3").get_bucket_encryption(
            Bucket=ctx.outputs["TrailBucketName"], **owned_bucket_args(ctx.aws)
        )
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
            return "fail", "no default encryption"
        raise
    rules = conf["ServerSideEncryptionConfiguration"]["Rules"]
    algos = [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules]
    return "pass", f"default encryption {', '.join(algos)}"


def check_policy(ctx: Context) -> tuple[str, str]:
    try:
        text = ctx.aws.client("s3").get_bucket_policy(
            Bucket=ctx.outputs["TrailBucketName"], **owned_bucket_args(ctx.aws)
        )["Policy"]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "NoSuchBucketPolicy":
            return "fail", "no bucket policy: CloudTrail cannot deliver, TLS is not enforced"
        raise
    statements = json.loads(text).get("Statement", [])
    tls = any(
        s.get("Effect") == "Deny" and "aws:SecureTransport" in json.dumps(s.get("Condition", {}))
        for s in statements
    )
    cloudtrail = any(
        s.get("Effect") == "Allow"
        and "cloudtrail.amazonaws.com" in json.dumps(s.get("Principal", {}))
        and "s3:PutObject" in json.dumps(s.get("Action", ""))
        for s in statements
    )
    problems = ([] if tls else ["no TLS-only deny"]) + (
        [] if cloudtrail else ["CloudTrail may not write logs"]
    )
    return ("fail", "; ".join(problems)) if problems else ("pass", "TLS only, CloudTrail delivery allowed")


def _queue_arn(ctx: Context) -> str:
    if "LogQueueArn" in ctx.outputs:
        return ctx.outputs["LogQueueArn"]
    attrs = ctx.aws.client("sqs").get_queue_attributes(
        QueueUrl=ctx.outputs["LogQueueUrl"], AttributeNames=["QueueArn"]
    )
    return attrs["Attributes"]["QueueArn"]


def check_bucket_notification(ctx: Context) -> tuple[str, str]:
    conf = ctx.aws.client("s3").get_bucket_notification_configuration(
        Bucket=ctx.outputs["TrailBucketName"], **owned_bucket_args(ctx.aws)
    )
    topic = ctx.outputs["LogDeliveryTopicArn"]
    for tc in conf.get("TopicConfigurations") or []:
        if tc.get("TopicArn") == topic and any(
            e.startswith("s3:ObjectCreated") for e in tc.get("Events", [])
        ):
            return "pass", "new objects notify the log delivery topic"
    return "fail", f"the bucket does not notify {topic} of new objects: log files are never processed"


def _subscriptions(ctx: Context, topic: str) -> list[dict[str, Any]]:
    pages = ctx.aws.client("sns").get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
    return [s for page in pages for s in page.get("Subscriptions", [])]


def check_queue_subscription(ctx: Context) -> tuple[str, str]:
    queue = _queue_arn(ctx)
    for sub in _subscriptions(ctx, ctx.outputs["LogDeliveryTopicArn"]):
        if sub.get("Protocol") == "sqs" and sub.get("Endpoint") == queue:
            return "pass", "the log delivery topic feeds the processing queue"
    return (
        "fail",
        f"the log delivery topic has no subscription for {queue}: log files never reach the processor",
    )


def check_event_source(ctx: Context) -> tuple[str, str]:
    return check_mapping(ctx.aws, ctx.outputs["ProcessorFunctionName"], _queue_arn(ctx), "queue")


def check_mapping(aws: Aws, fn: str, queue: str, name: str) -> tuple[str, str]:
    """Whether ``fn`` has a live event source mapping from the queue ``queue`` (called ``name`` in the
    messages)."""
    mappings = aws.client("lambda").list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]
    for m in mappings:
        if m.get("EventSourceArn") == queue:
            state = m.get("State", "")
            if state in ("Enabled", "Enabling", "Updating", "Creating"):
                return "pass", f"{fn} consumes the {name} ({state})"
            return "fail", f"the {name} mapping of {fn} is {state}"
    return "fail", f"{fn} has no event source mapping for the {name}"


def check_config(ctx: Context) -> tuple[str, str]:
    from trailwatch_processor.config import ConfigError
    from trailwatch_processor.config_load import parse_config

    bucket, key = config_location(ctx.outputs)
    try:
        data = (
            ctx.aws.client("s3")
            .get_object(Bucket=bucket, Key=key, **owned_bucket_args(ctx.aws))["Body"]
            .read()
        )
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return (
                "fail",
                f"s3://{bucket}/{key} is missing (the processor falls back to its default): "
                "run `trailwatch upload-config`",
            )
        raise
    try:
        ctx.config = parse_config(data, source=f"s3://{bucket}/{key}")
    except ConfigError as exc:
        return "fail", f"s3://{bucket}/{key} is invalid: {'; '.join(exc.errors[:3])}"
    return "pass", f"s3://{bucket}/{key}: {len(ctx.config.rules)} rule(s)"


def check_suppressions(ctx: Context, now: datetime | None = None) -> tuple[str, str]:
    """Noise control: suppressions that expired (still in the config, no longer applied) or
    expire within 14 days are warnings, so their owners renew or drop them before alerts come back."""
    from trailwatch.suppress import EXPIRING_SOON_DAYS, expiry_warnings

    if ctx.config is None:
        return "warn", "skipped: no valid live config read"
    warnings = expiry_warnings(ctx.config, now or datetime.now(UTC))
    count = len(ctx.config.suppressions)
    if warnings:
        return "warn", "; ".join(warnings)
    return "pass", f"{count} suppression(s), none expiring within {EXPIRING_SOON_DAYS} days"


def check_email(ctx: Context) -> tuple[str, str]:
    """Email subscriptions of the alert topic and of the alarm topic (the alarms' only way to a mailbox)."""
    topics = [
        ("alert topic", ctx.outputs.get("AlertTopicArn")),
        ("alarm topic", ctx.outputs.get("AlarmTopicArn")),
    ]
    confirmed: list[str] = []
    problems: list[str] = []
    for label, arn in topics:
        if not arn:
            problems.append(f"the stack has no {label} (deploy again to add it)")
            continue
        emails = [s for s in _subscriptions(ctx, arn) if s.get("Protocol") in ("email", "email-json")]
        if not emails:
            problems.append(f"no email subscription on the {label}")
            continue
        pending = [s["Endpoint"] for s in emails if s.get("SubscriptionArn") == "PendingConfirmation"]
        if pending:
            problems.append(
                f"{label}: pending confirmation: {', '.join(pending)} (click the link in the AWS mail)"
            )
        else:
            confirmed.append(f"{label}: {', '.join(s['Endpoint'] for s in emails)}")
    if problems:
        return "warn", "; ".join(problems)
    return "pass", f"confirmed: {'; '.join(confirmed)}"


def check_dlq(ctx: Context) -> tuple[str, str]:
    attrs = ctx.aws.client("sqs").get_queue_attributes(
        QueueUrl=ctx.outputs["DeadLetterQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    count = int(attrs.get("ApproximateNumberOfMessages", "0"))
    if count:
        return "fail", f"{count} message(s) in the dead-letter queue: log files that failed processing"
    return "pass", "empty"


CHECKS: list[tuple[str, Callable[[Context], tuple[str, str]]]] = [
    ("stack status", check_stack),
    ("trail logging", check_trail_logging),
    ("trail delivery", check_trail_delivery),
    ("trail settings", check_trail_settings),
    ("trail event selectors", check_selectors),
    ("bucket public access block", check_public_access),
    ("bucket encryption", check_encryption),
    ("bucket policy", check_policy),
    ("bucket notification", check_bucket_notification),
    ("log topic -> queue subscription", check_queue_subscription),
    ("queue -> function mapping", check_event_source),
    ("config", check_config),
    ("suppressions", check_suppressions),
    ("email subscription", check_email),
    ("dead-letter queue", check_dlq),
    ("last processed file", check_last_processed),
    *fast_path.VERIFY_CHECKS,  # after "config": they compare the rules' pattern with ctx.config
]


# -- probe ----------------------------------------------------------------------------------------
def probe_record(
    config: Any, event_id: str, now: datetime, account: str, region: str
) -> dict[str, Any] | None:
    """A record the live config monitors (first rule a plain record can satisfy and whose alert noise control
    cannot hold back), marked as a test."""
    from trailwatch_processor.patterns import compile_config

    from trailwatch import synth

    matcher = compile_config(config)
    for rule in config.rules:
        names = [n for n in rule.pattern.get("eventName", []) if isinstance(n, str)]
        sources = [s for s in rule.pattern.get("eventSource", []) if isinstance(s, str)]
        for name in names:
            record = synth.make_record(
                name,
                event_source=sources[0] if sources else None,
                time=now,
                event_id=event_id,
                account=account,
                region=region,
                identity=synth.iam_user("trailwatch-verify-probe", account=account),
                source_ip="192.0.2.1",
                user_agent=PROBE_USER_AGENT,
                request_parameters={"trailwatchVerifyProbe": True, "note": "test event, no action needed"},
            )
            matched = matcher.match(record)
            if matched and not _held_back(matched):
                return record
    return None


def _held_back(matched: list[Any]) -> bool:
    """Whether noise control may hold the alert back: the primary rule (highest severity, first in config
    order) has a threshold (one event never crosses it) or a dedup window (a probe within the window of an
    earlier one is grouped, alerted only when the window closes)."""
    from trailwatch_processor.store import primary_rule

    best = primary_rule(matched)
    return best.threshold is not None or best.dedup is not None


def run_probe(ctx: Context, report: Report, timeout: float) -> None:
    from trailwatch_processor import tamper

    from trailwatch import synth

    ui, aws = report.ui, ctx.aws
    if ctx.config is None:
        report.add("fail", "probe", "skipped: no valid live config to pick a monitored event from")
        return
    event_id = f"trailwatch-probe-{uuid.uuid4()}"
    record = probe_record(ctx.config, event_id, datetime.now(UTC), aws.account_id(), aws.region)
    if record is None:
        report.add("fail", "probe", "no rule of the live config matches a plain eventName record")
        return
    bucket, table = ctx.outputs["TrailBucketName"], ctx.outputs["EventsTableName"]
    # A probe id: deleting the probe afterwards is no tamper alert (trailwatch_processor.tamper).
    key = synth.log_key(aws.account_id(), aws.region, datetime.now(UTC), unique=tamper.probe_id())
    ui.progress(f"probe: writing {record['eventName']} ({event_id}) to s3://{bucket}/{key}")
    started = time.monotonic()
    put = aws.client("s3").put_object(
        Bucket=bucket, Key=key, Body=synth.gzip_log([record]), **owned_bucket_args(aws)
    )
    try:
        stored_at, alerted_at = wait_for_probe(
            aws, table, event_id, started, timeout, note=lambda text: ui.progress(text, since=started)
        )
    finally:
        _cleanup_probe(aws, ui, bucket, key, put.get("VersionId"), table, event_id)
    if stored_at is None:
        report.add(
            "fail",
            "probe",
            f"no item for {event_id} after {timeout:.0f}s: check the DLQ and the function's logs",
        )
    elif alerted_at is None:
        report.add(
            "fail", "probe", f"stored after {stored_at:.1f}s but the alert was not sent within {timeout:.0f}s"
        )
    else:
        report.add("pass", "probe", f"upload -> stored {stored_at:.1f}s, upload -> alerted {alerted_at:.1f}s")


def wait_for_probe(
    aws: Aws,
    table: str,
    event_id: str,
    started: float,
    timeout: float,
    note: Callable[[str], None] = lambda text: None,
) -> tuple[float | None, float | None]:
    """Seconds from ``started`` (time.monotonic) until the probe's item was stored and until its alert was
    sent, None when not within ``timeout``; ``note`` gets a line at each step and every 5 s of waiting."""
    stored_at = alerted_at = None
    last_note = started
    while time.monotonic() - started < timeout:
        got = aws.client("dynamodb").get_item(
            TableName=table, Key={"EventId": {"S": event_id}}, ConsistentRead=True
        )
        item = got.get("Item")
        if item and stored_at is None:
            stored_at = time.monotonic() - started
            note(f"probe: stored after {stored_at:.1f}s (rule {item.get('rule_id', {}).get('S')})")
        if item and item.get("alert_status", {}).get("S") == "sent":
            alerted_at = time.monotonic() - started
            note(f"probe: alert sent after {alerted_at:.1f}s")
            break
        if time.monotonic() - last_note >= 5:
            state = (
                "stored, alert " + item.get("alert_status", {}).get("S", "?") if item else "not stored yet"
            )
            note(f"probe: waiting ({state})")
            last_note = time.monotonic()
        time.sleep(POLL_SECONDS)
    return stored_at, alerted_at


def _cleanup_probe(
    aws: Aws, ui: UI, bucket: str, key: str, version: str | None, table: str, event_id: str
) -> None:
    try:
        aws.client("dynamodb").delete_item(TableName=table, Key={"EventId": {"S": event_id}})
        extra = {"VersionId": version} if version else {}
        aws.client("s3").delete_object(Bucket=bucket, Key=key, **extra, **owned_bucket_args(aws))
    except botocore.exceptions.ClientError as exc:
        ui.warn(f"could not remove the probe ({error_code(exc)}): s3://{bucket}/{key}, item {event_id}")


def run_verify(aws: Aws, ui: UI, *, probe: bool, timeout: float) -> int:
    from trailwatch import resources

    current = stack.require_stack(aws, aws.options.stack_name)
    ctx = Context(aws, current, stack.stack_outputs(current), stack.parse_template(resources.template_text()))
    report = Report(ui)
    ui.info(f"Checking stack {current['StackName']} in {aws.region}")
    parameters = stack.stack_parameters(current)
    if parameters.get("ExistingBucketName"):  # attach mode: no trail of ours, no probe into their bucket
        from trailwatch.verify_attach import run_attach_checks

        run_attach_checks(ctx, report, parameters, probe, timeout)
        probe = False
    else:
        for name, fn in CHECKS:
            _checked(report, name, lambda fn=fn: fn(ctx))
    if probe:
        ui.info("End-to-end probe")
        try:
            run_probe(ctx, report, timeout)
        except botocore.exceptions.ClientError as exc:
            report.add("fail", "probe", f"{error_code(exc)}: {error_message(exc)}")
        try:  # fast path: the same pipeline from the fast path queue
            status, reason = fast_path.run_probe(aws, ui, ctx.outputs, ctx.config, timeout)
            report.add(status, "fast path probe", reason)
        except botocore.exceptions.ClientError as exc:
            report.add("fail", "fast path probe", f"{error_code(exc)}: {error_message(exc)}")
    counts = {s: sum(1 for r in report.results if r[0] == s) for s in ("pass", "warn", "fail")}
    summary = f"{counts['pass']} passed, {counts['warn']} warning(s), {counts['fail']} failed"
    if ui.json_mode:
        ui.json(
            {
                "ok": not report.failed,
                "checks": [dict(zip(("status", "name", "reason"), r, strict=True)) for r in report.results],
            }
        )
    if report.failed:
        ui.error(f"verify failed: {summary}")
        return EXIT_CHECK_FAILED
    ui.success(f"verify passed: {summary}")
    return EXIT_OK
