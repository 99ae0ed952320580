"""`trailwatch upload-config`: validate with the processor's own validator, diff, upload."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions
import click

from trailwatch.errors import AwsError, ConfigInvalid, UsageError, error_code
from trailwatch.session import Aws
from trailwatch.ui import UI

CONFIG_KEY = "config/monitored_events.json"


def load_config(path: Path) -> tuple[Any, bytes]:
    """(Config, bytes) of a local file; ConfigInvalid with every `<path>: <message>` when invalid."""
    from trailwatch_processor.config import ConfigError
    from trailwatch_processor.config_load import parse_config

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"Cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        return parse_config(data, source=str(path)), data
    except ConfigError as exc:
        raise ConfigInvalid(
            f"Config {path} is invalid ({len(exc.errors)} error(s)); nothing uploaded.",
            list(exc.errors),
            hint="Fix the entries above; `trailwatch scan LOGS --config FILE` tries a config offline.",
        ) from exc


def check_rule_tests(config: Any, path: Path) -> None:
    """Run the tests beside the rules (`trailwatch rules test`); ConfigInvalid with the table on a failure."""
    from trailwatch.rulescmd import TABLE_HEADERS, failures, run_tests, table_rows
    from trailwatch.ui import format_table

    failed = failures(run_tests(config, path.resolve().parent))
    if failed:
        raise ConfigInvalid(
            f"Config {path}: {len(failed)} rule test(s) failed; nothing uploaded.",
            format_table(TABLE_HEADERS, table_rows(failed)),
            hint=f"`trailwatch rules test {path}` shows every test; fix the rule or its test.",
        )


def config_location(outputs: dict[str, str]) -> tuple[str, str]:
    """(bucket, key) of the live config from the stack outputs."""
    uri = outputs.get("ConfigS3Uri", "")
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        return bucket, key or CONFIG_KEY
    if "TrailBucketName" in outputs:
        return outputs["TrailBucketName"], CONFIG_KEY
    raise AwsError("The stack has no ConfigS3Uri or TrailBucketName output.", hint="Run `trailwatch deploy`.")


@dataclass
class Remote:
    exists: bool
    data: bytes | None = None
    config: Any = None
    error: str | None = None


def owned_bucket_args(aws: Aws) -> dict[str, str]:
    """`ExpectedBucketOwner` for the trail bucket: the stack created it in this account, and a config read
    from or written to a bucket of another account would let that account choose what is detected."""
    from trailwatch.package import owner_args

    return owner_args(aws)


def refused(exc: botocore.exceptions.ClientError, aws: Aws, bucket: str, key: str) -> AwsError | None:
    """The clear error for an S3 refusal of the config object (None for any other error)."""
    from trailwatch.package import bucket_not_owned, is_denied

    if not is_denied(exc):
        return None
    return bucket_not_owned(
        bucket,
        aws.account_id(),
        f"the config s3://{bucket}/{key}",
        "The stack's outputs name it as the trail bucket: check the stack with `trailwatch verify`.",
    )


def fetch_remote(aws: Aws, bucket: str, key: str) -> Remote:
    from trailwatch_processor.config import ConfigError
    from trailwatch_processor.config_load import parse_config

    try:
        s3 = aws.client("s3")
        data = s3.get_object(Bucket=bucket, Key=key, **owned_bucket_args(aws))["Body"].read()
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return Remote(exists=False)
        error = refused(exc, aws, bucket, key)
        if error is None:
            raise
        raise error from exc
    try:
        return Remote(exists=True, data=data, config=parse_config(data, source=f"s3://{bucket}/{key}"))
    except ConfigError as exc:
        return Remote(exists=True, data=data, error=str(exc))


def stdin_is_tty() -> bool:
    """Whether a person can answer a question (tests replace this)."""
    return sys.stdin.isatty()


def confirm_removal(ui: UI, diff: Any, *, yes: bool) -> None:
    """Refuse or ask before a config that removes or weakens rules (config_diff says what counts)."""
    if not diff.weakening:
        return
    removed, weakened = len(diff.removed), len(diff.weakened)
    ui.warn(
        f"this config removes {removed} rule(s) and weakens {weakened}: the events they matched may go "
        "unalerted (the processor will send a high-severity alert about the change)."
    )
    if yes:
        return
    if not stdin_is_tty():
        raise UsageError(
            f"Not uploaded: the config removes {removed} and weakens {weakened} rule(s).",
            hint="Pass --yes to upload it anyway.",
        )
    if not click.confirm("Upload it anyway?", default=False):
        raise UsageError("Not confirmed; nothing uploaded.", hint="Pass --yes to upload without asking.")


def upload(aws: Aws, ui: UI, path: Path, *, outputs: dict[str, str], yes: bool = False) -> bool:
    """Validate, show the diff, ask before a removal, upload; False when the bucket already holds the same
    bytes. The diff is against the config in force: the bucket's, or the bundled default when there is none
    or it is invalid (what the processor falls back to on a cold start)."""
    from trailwatch_processor import config_diff
    from trailwatch_processor.config_load import load_default_config

    config, data = load_config(path)
    check_rule_tests(config, path)
    bucket, key = config_location(outputs)
    remote = fetch_remote(aws, bucket, key)
    ui.info(f"Config {path}: {len(config.rules)} rule(s) valid.")
    if remote.exists and remote.data == data:
        ui.info(f"s3://{bucket}/{key} is already up to date.")
        return False
    current = remote.config
    if not remote.exists:
        ui.info(f"s3://{bucket}/{key} does not exist yet: compared with the bundled default in force.")
        current = load_default_config()
    elif remote.error:
        ui.warn(f"the config in the bucket is invalid and will be replaced: {remote.error.splitlines()[0]}")
        ui.info("Compared with the bundled default (the processor's fallback).")
        current = load_default_config()
    diff = config_diff.diff_rules(current.rules, config.rules)
    for line in diff.lines(limit=1000):
        ui.info(f"  {line}")
    if diff.empty:
        ui.info("  (same rules; formatting differs)")
    confirm_removal(ui, diff, yes=yes)
    try:
        aws.client("s3").put_object(
            Bucket=bucket, Key=key, Body=data, ContentType="application/json", **owned_bucket_args(aws)
        )
    except botocore.exceptions.ClientError as exc:
        error = refused(exc, aws, bucket, key)
        if error is None:
            raise
        raise error from exc
    ui.success(f"Uploaded to s3://{bucket}/{key}")
    return True
