"""`trailwatch verify` in attach mode: the stack reads a trail bucket it does not own, so no probe file may be
written there. What is checked instead:

- the notification path of the chosen mode: s3-eventbridge -> the stack's rule on its default bus is
  enabled and targets the processing queue, and (bucket of another account) the bus policy admits that
  account; trail-sns -> the queue's subscription to the trail's topic exists and is confirmed. The owner's
  side (EventBridge on the bucket, the forwarding rule) is in the owner's account and is not readable from
  here: `owner-grants` applies it;
- a real recent log object: the newest day folder under ``[prefix]AWSLogs/[o-org/]<account>/CloudTrail/
  <region>/`` is found by listing (ListObjectVersions with a delimiter, which the grants allow under
  ``AWSLogs/``) and its first byte is read, which also decrypts with the trail's key (SSE-KMS). Only the
  processor's role is granted on another account's bucket, so there an AccessDenied is a warning, not a
  failure: the processor's own reads show in the next check;
- the processor's last-processed marker for that bucket (a log file it read, decrypted and matched);
- the probe: wait (bounded, with progress) for the next real delivery to be processed, i.e. for the
  marker to advance. CloudTrail delivers about every 5 minutes per account and region, and the processor
  writes the marker at most once a minute, so give ``--timeout`` 360 or more for a quiet account.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions

from trailwatch.errors import error_code

MAX_ACCOUNTS = 5  # member accounts looked at for the newest log object (an organization has many)
_ACCOUNT = re.compile(r"\d{12}/$")
_ORG = re.compile(r"o-[a-z0-9]{10,32}/$")


def _children(s3: Any, bucket: str, prefix: str, owner: dict[str, str]) -> list[str]:
    got = s3.list_object_versions(Bucket=bucket, Prefix=prefix, Delimiter="/", **owner)
    return sorted(p["Prefix"] for p in got.get("CommonPrefixes", []))


def newest_log_object(
    s3: Any, bucket: str, prefix: str, owner: dict[str, str], regions_first: tuple[str, ...] = ()
) -> tuple[str, datetime] | None:
    """The newest log object (key, LastModified) in the newest day folder of the first region with logs,
    over at most MAX_ACCOUNTS accounts; None when there is none. A dozen list calls per account."""
    base = f"{prefix}AWSLogs/"
    level = _children(s3, bucket, base, owner)
    orgs = [p for p in level if _ORG.search(p)]
    if orgs:
        level = [a for org in orgs for a in _children(s3, bucket, org, owner)]
    best: tuple[str, datetime] | None = None
    best_rank: tuple[str, datetime] | None = None  # (day folder YYYY/MM/DD, LastModified)
    for account in [p for p in level if _ACCOUNT.search(p)][:MAX_ACCOUNTS]:
        regions = _children(s3, bucket, f"{account}CloudTrail/", owner)
        ordered = sorted(regions, key=lambda r: (r.rstrip("/").rsplit("/", 1)[-1] not in regions_first, r))
        for region in ordered:
            folder = region
            for _ in ("year", "month", "day"):
                below = _children(s3, bucket, folder, owner)
                if not below:
                    break
                folder = max(below)
            else:
                found = _newest_in(s3, bucket, folder, owner)
                if found is not None:
                    rank = ("/".join(folder.rstrip("/").split("/")[-3:]), found[1])
                    if best_rank is None or rank > best_rank:
                        best, best_rank = found, rank
                    break
    return best


def _newest_in(s3: Any, bucket: str, folder: str, owner: dict[str, str]) -> tuple[str, datetime] | None:
    newest: tuple[str, datetime] | None = None
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=folder, **owner)
    for page in pages:
        for version in page.get("Versions", []):
            if version.get("IsLatest") and (newest is None or version["LastModified"] > newest[1]):
                newest = (version["Key"], version["LastModified"])
    return newest


def check_log_object(ctx: Any, parameters: dict[str, str]) -> tuple[str, str]:
    """Read the first byte of the newest real log object (decrypting it when SSE-KMS)."""
    aws = ctx.aws
    bucket, prefix = parameters["ExistingBucketName"], parameters.get("LogKeyPrefix", "")
    owner_account = parameters.get("ExistingBucketAccount") or aws.account_id()
    owner = {"ExpectedBucketOwner": owner_account}
    regions = (aws.region, parameters.get("ExistingBucketRegion") or aws.region)
    s3 = aws.client("s3")
    try:
        found = newest_log_object(s3, bucket, prefix, owner, regions)
        if found is None:
            return "warn", f"no log file under s3://{bucket}/{prefix}AWSLogs/ yet"
        key, modified = found
        ctx.newest_delivery = modified
        got = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-0", **owner)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in ("AccessDenied", "403") and owner_account != aws.account_id():
            return "warn", (
                f"this account cannot list or read s3://{bucket} (account {owner_account} grants the "
                "processor's role only): the processor's reads show in 'last processed file'"
            )
        raise
    encryption = got.get("ServerSideEncryption", "none")
    kms = f" with {got['SSEKMSKeyId']}" if got.get("SSEKMSKeyId") else ""
    return "pass", f"read s3://{bucket}/{key} ({modified:%Y-%m-%d %H:%M} UTC, {encryption}{kms})"


def check_notification_path(ctx: Any, parameters: dict[str, str]) -> tuple[str, str]:
    """The stack's side of the way new log files are announced."""
    aws, outputs = ctx.aws, ctx.outputs
    queue = _queue_arn(ctx)
    if (parameters.get("NotificationSource") or "s3-eventbridge") == "trail-sns":
        topic = parameters["TrailTopicArn"]
        sns = aws.session.client("sns", region_name=topic.split(":")[3], endpoint_url=aws.endpoint_url)
        arn = _physical_id(ctx, "ExistingTrailTopicSubscription")
        attrs = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
        if attrs.get("Endpoint") != queue or attrs.get("TopicArn") != topic:
            return "fail", f"subscription {arn} does not connect {topic} to {queue}"
        if attrs.get("PendingConfirmation") == "true":
            return "fail", f"the subscription to {topic} is pending: the owner must allow sns:Subscribe"
        return "pass", f"the trail's topic {topic} feeds the processing queue"
    events = aws.client("events")
    rule_arn = outputs["ExistingBucketEventsRuleArn"]
    name = rule_arn.rsplit("/", 1)[-1]
    rule = events.describe_rule(Name=name)
    if rule.get("State") != "ENABLED":
        return "fail", f"rule {name} is {rule.get('State')}"
    targets = events.list_targets_by_rule(Rule=name)["Targets"]
    if not any(t.get("Arn") == queue for t in targets):
        return "fail", f"rule {name} does not target {queue}"
    bucket_account = parameters.get("ExistingBucketAccount") or aws.account_id()
    if bucket_account != aws.account_id():
        policy = events.describe_event_bus(Name="default").get("Policy") or ""
        if bucket_account not in policy:
            return "fail", f"the default bus does not admit events of account {bucket_account}"
        return "pass", (
            f"rule {name} -> queue; the default bus admits account {bucket_account} (its forwarding rule "
            "and the bucket's EventBridge setting are on the owner's side: `trailwatch owner-grants`)"
        )
    return "pass", f"rule {name} -> queue (the bucket must send to EventBridge: `trailwatch owner-grants`)"


def _queue_arn(ctx: Any) -> str:
    from trailwatch.verify import _queue_arn as queue_arn

    return queue_arn(ctx)


def _physical_id(ctx: Any, logical_id: str) -> str:
    got = ctx.aws.client("cloudformation").describe_stack_resource(
        StackName=ctx.stack["StackName"], LogicalResourceId=logical_id
    )
    return str(got["StackResourceDetail"]["PhysicalResourceId"])


def read_marker(ctx: Any, bucket: str) -> dict[str, Any] | None:
    from trailwatch_processor import markers, store

    item = (
        ctx.aws.client("dynamodb")
        .get_item(
            TableName=ctx.outputs["EventsTableName"],
            Key={"EventId": {"S": markers.last_processed_id(bucket)}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return store.plain(item) if item else None


def wait_for_next_delivery(
    read: Callable[[], dict[str, Any] | None],
    timeout: float,
    progress: Callable[[str], None],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll: float = 5.0,
) -> tuple[str, str]:
    """Wait until the last-processed marker moves past its value now: the next real log file was read,
    decrypted and matched by the processor. Bounded by `timeout` seconds, a progress line every poll."""
    start = read()
    before = str((start or {}).get("processed_at", ""))
    started = clock()
    while clock() - started < timeout:
        sleep(poll)
        marker = read()
        now = str((marker or {}).get("processed_at", ""))
        if marker is not None and now > before:
            waited = clock() - started
            return "pass", f"the processor took {marker.get('object_key')} after {waited:.0f}s of waiting"
        progress(f"probe: waiting for the next delivery to be processed ({clock() - started:.0f}s)")
    last = f"last processed {before}" if before else "nothing processed yet"
    return "fail", (
        f"no new log file processed within {timeout:.0f}s ({last}): CloudTrail delivers about every 5 "
        "minutes and the marker moves at most once a minute; retry with --timeout 360, check the owner's "
        "grants (`trailwatch owner-grants`), the dead-letter queue and the function's logs"
    )


def run_attach_checks(ctx: Any, report: Any, parameters: dict[str, str], probe: bool, timeout: float) -> None:
    """The attach-mode checks and probe, into `report` (verify.Report)."""
    from trailwatch import verify

    source = parameters["ExistingBucketName"]
    checks: list[tuple[str, Callable[[], tuple[str, str]]]] = [
        ("stack status", lambda: verify.check_stack(ctx)),
        ("notification path", lambda: check_notification_path(ctx, parameters)),
        ("queue -> function mapping", lambda: verify.check_event_source(ctx)),
        ("config", lambda: verify.check_config(ctx)),
        ("email subscription", lambda: verify.check_email(ctx)),
        ("dead-letter queue", lambda: verify.check_dlq(ctx)),
        ("recent log object", lambda: check_log_object(ctx, parameters)),
        (
            "last processed file",
            lambda: verify.last_processed_verdict(
                read_marker(ctx, source), ctx.newest_delivery, datetime.now(UTC)
            ),
        ),
    ]
    for name, fn in checks:
        verify._checked(report, name, fn)
    if probe:
        report.ui.info(f"End-to-end probe: waiting up to {timeout:.0f}s for the next real delivery")
        verify._checked(
            report,
            "probe",
            lambda: wait_for_next_delivery(lambda: read_marker(ctx, source), timeout, report.ui.progress),
        )
