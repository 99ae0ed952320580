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


def bucket_removal_commands(bucket: str, flags: str) -> list[str]:
    """Empty a versioned bucket (versions and delete markers), then remove it."""
    listing = f"aws s3api list-object-versions {flags} --bucket {bucket} --output json --query"
    return [
        f"aws s3api delete-objects {flags} --bucket {bucket} --delete "
        f"\"$({listing} '{{Objects: Versions[].{{Key: Key, VersionId: VersionId}}}}')\"",
        f"aws s3api delete-objects {flags} --bucket {bucket} --delete "
        f"\"$({listing} '{{Objects: DeleteMarkers[].{{Key: Key, VersionId: VersionId}}}}')\"",
        f"aws s3api delete-bucket {flags} --bucket {bucket}",
    ]


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
    if not retained:
        ui.info("Nothing retained.")
        return 0
    ui.info("Retained (DeletionPolicy: Retain, so evidence survives the stack):")
    for what, commands in retained:
        ui.info(f"  {what}; to remove it:")
        for command in commands:
            ui.info(f"    {command}")
    return 0
