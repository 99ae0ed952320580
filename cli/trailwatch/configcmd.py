"""`trailwatch upload-config`: validate with the processor's own validator, diff, upload."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from trailwatch.errors import AwsError, ConfigInvalid, UsageError, error_code
from trailwatch.session import Aws
from trailwatch.ui import UI

CONFIG_KEY = "config/monitored_events.json"


def load_config(path: Path) -> tuple[Any, bytes]:
    """(Config, bytes) of a local file; ConfigInvalid with every `<path>: <message>` when invalid."""
    from trailwatch_processor import config as rules

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"Cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        return rules.parse_config(data, source=str(path)), data
    except rules.ConfigError as exc:
        raise ConfigInvalid(
            f"Config {path} is invalid ({len(exc.errors)} error(s)); nothing uploaded.",
            list(exc.errors),
            hint="Fix the entries above; `trailwatch scan LOGS --config FILE` tries a config offline.",
        ) from exc


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


def fetch_remote(aws: Aws, bucket: str, key: str) -> Remote:
    from trailwatch_processor import config as rules

    try:
        data = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return Remote(exists=False)
        raise
    try:
        return Remote(exists=True, data=data, config=rules.parse_config(data, source=f"s3://{bucket}/{key}"))
    except rules.ConfigError as exc:
        return Remote(exists=True, data=data, error=str(exc))


def diff_rules(old: Any, new: Any) -> dict[str, list[str]]:
    """Rule ids added, removed and changed (any field) from `old` to `new` (None: no old config)."""
    before = {r.id: r for r in (old.rules if old is not None else ())}
    after = {r.id: r for r in new.rules}
    return {
        "added": [i for i in after if i not in before],
        "removed": [i for i in before if i not in after],
        "changed": [i for i in after if i in before and before[i] != after[i]],
    }


def upload(aws: Aws, ui: UI, path: Path, *, outputs: dict[str, str]) -> bool:
    """Validate, show the diff, upload; False when the bucket already holds the same bytes."""
    config, data = load_config(path)
    bucket, key = config_location(outputs)
    remote = fetch_remote(aws, bucket, key)
    ui.info(f"Config {path}: {len(config.rules)} rule(s) valid.")
    if remote.exists and remote.data == data:
        ui.info(f"s3://{bucket}/{key} is already up to date.")
        return False
    if not remote.exists:
        ui.info(f"s3://{bucket}/{key} does not exist yet: every rule is new.")
    elif remote.error:
        ui.warn(f"the config in the bucket is invalid and will be replaced: {remote.error.splitlines()[0]}")
    changes = diff_rules(remote.config, config)
    for kind, sign in (("added", "+"), ("removed", "-"), ("changed", "~")):
        for rule_id in changes[kind]:
            ui.info(f"  {sign} {rule_id} ({kind})")
    if remote.exists and not any(changes.values()):
        ui.info("  (same rules; formatting differs)")
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
    ui.success(f"Uploaded to s3://{bucket}/{key}")
    return True
