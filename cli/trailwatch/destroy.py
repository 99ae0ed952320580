"""`trailwatch destroy`: delete the stack, then say what is retained and how to remove it."""

from __future__ import annotations

from collections.abc import Callable

import botocore.exceptions

from trailwatch import package as packaging
from trailwatch import stack
from trailwatch.errors import UsageError, error_code
from trailwatch.session import Aws
from trailwatch.ui import UI


def bucket_exists(aws: Aws, bucket: str, ui: UI | None = None) -> bool:
    """True for a bucket of this account. One another account owns (S3 refuses ExpectedBucketOwner) is
    not listed for removal: its commands would remove someone else's bucket (warned when `ui` is given)."""
    try:
        aws.client("s3").head_bucket(Bucket=bucket, **packaging.owner_args(aws))
        return True
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return False
        if packaging.is_denied(exc):
            if ui is not None:
                ui.warn(
                    f"s3://{bucket} exists but is not owned by account {aws.account_id()} (or this identity "
                    "may not list it): not listed for removal. If no account of yours created it, another "
                    "account has taken a name trailwatch uses."
                )
            return False
        raise


def table_exists(aws: Aws, table: str) -> bool:
    try:
        aws.client("dynamodb").describe_table(TableName=table)
        return True
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise


# Up to 1,000 versions and delete markers (DeleteObjects' limit) per round: --max-items stops the listing
# after about 1,000 versions, the slice caps versions + delete markers together; an empty round ends it.
_BATCH_QUERY = (
    "{Objects: ([Versions, DeleteMarkers][].{Key: Key, VersionId: VersionId})[:1000], Quiet: `true`}"
)


def bucket_removal_commands(bucket: str, flags: str) -> list[str]:
    """Shell commands that empty a versioned bucket of any size (every version and delete marker, 1,000
    per DeleteObjects call, until none is left), then remove it. POSIX sh and the AWS CLI only."""
    listing = (
        f"aws s3api list-object-versions {flags} --bucket {bucket} --max-items 1000 --output json "
        f"--query '{_BATCH_QUERY}'"
    )
    return [
        f"while batch=$({listing}) && printf '%s' \"$batch\" | grep -q '\"Key\"'; do "
        f'aws s3api delete-objects {flags} --bucket {bucket} --delete "$batch" >/dev/null || break; done',
        f"aws s3api delete-bucket {flags} --bucket {bucket}",
    ]


def retained_key_arn(aws: Aws, key_arn: str) -> str | None:
    """The key's ARN when it still exists and is not already scheduled for deletion."""
    try:
        meta = aws.client("kms").describe_key(KeyId=key_arn)["KeyMetadata"]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "NotFoundException":
            return None
        raise
    return None if meta.get("KeyState") in ("PendingDeletion", "PendingReplicaDeletion") else key_arn


def stack_physical_ids(aws: Aws, stack_id: str) -> dict[str, str]:
    """logical id -> physical id of the stack's resources (read before deletion: afterwards the kept ones
    are no longer listed)."""
    pages = aws.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack_id)
    return {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for page in pages
        for r in page.get("StackResourceSummaries", [])
    }


def run_destroy(aws: Aws, ui: UI, *, yes: bool, confirm: Callable[[str], bool]) -> int:
    name = aws.options.stack_name
    current = stack.describe_stack(aws, name)
    if current is None:
        ui.info(f"Stack {name} does not exist in {aws.region}: nothing to delete.")
        return 0
    outputs = stack.stack_outputs(current)
    params = stack.stack_parameters(current)
    question = f"Delete stack {name} ({current['StackStatus']}) in {aws.region}?"
    if not yes and not confirm(question):
        raise UsageError("Not confirmed; nothing deleted.", hint="Pass --yes to delete without asking.")
    physical = stack_physical_ids(aws, current["StackId"])
    ui.step(f"Deleting stack {name}")
    stack.delete_and_wait(aws, ui, current["StackId"])
    ui.success(f"Stack {name} deleted.")

    flags = aws.cli_flags()
    retained: list[tuple[str, list[str]]] = []
    trail_bucket = outputs.get("TrailBucketName") or params.get("TrailBucketName")
    if trail_bucket and bucket_exists(aws, trail_bucket, ui):
        retained.append(
            (
                f"trail bucket s3://{trail_bucket} (log files, config)",
                bucket_removal_commands(trail_bucket, flags),
            )
        )
    table = outputs.get("EventsTableName") or params.get("EventsTableName")
    if table and table_exists(aws, table):
        retained.append(
            (
                f"DynamoDB table {table} (stored events)",
                [f"aws dynamodb delete-table {flags} --table-name {table}"],
            )
        )
    artifacts = params.get("CodeBucket") or packaging.artifacts_bucket_name(aws.account_id(), aws.region)
    if bucket_exists(aws, artifacts, ui):
        retained.append(
            (
                f"artifacts bucket s3://{artifacts} (Lambda packages)",
                bucket_removal_commands(artifacts, flags),
            )
        )
    key_arn = outputs.get("LogFileKeyArn") or physical.get("LogFileKey")  # older stacks: no output
    if key_arn and retained_key_arn(aws, key_arn):
        retained.append(
            (
                f"KMS key {key_arn} (encrypts the log files; remove it only after the trail bucket, "
                "as the files cannot be read without it; deleted after a 7-30 day waiting period)",
                [f"aws kms schedule-key-deletion {flags} --key-id {key_arn} --pending-window-in-days 30"],
            )
        )
    if not retained:
        ui.info("Nothing retained.")
        return 0
    ui.info("Retained (DeletionPolicy RetainExceptOnCreate, so evidence survives the stack):")
    for what, commands in retained:
        ui.info(f"  {what}; to remove it:")
        for command in commands:
            ui.info(f"    {command}")
    return 0
