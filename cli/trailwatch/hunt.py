"""`trailwatch hunt`: run rules over past log files on the deployed function.

1. The window's log files are listed by CloudTrail's partition prefixes
   (``[prefix/]AWSLogs/[<org>/]<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/``), one paginated listing per
   (account, region, day) in a thread pool, never the whole bucket; accounts (and organization ids) and
   regions not given are found with Delimiter listings. Files are kept when the time stamp in their name
   (CloudTrail's delivery time, UTC) is in the window.
2. Files, bytes and an estimate of time and cost (hunt_estimate.py) are shown, and the user is asked
   (``--yes`` for scripts).
3. The hunt's rules (validated by the processor's validator) go to ``hunts/<id>/config.json`` in the config
   bucket, the file list to ``hunts/<id>/manifest.json.gz``, a meta item to the events table; then one message
   per file to the hunt queue (SendMessageBatch, in parallel). The function evaluates the hunt's rules only
   (lambda_src/trailwatch_processor/hunt.py, which also documents the items).
4. Progress (files done/failed, matches, rate) is read from the per-file markers through the table's ByDay
   index (8 partitions per hunt), never a Scan, until every file is done or failed; then a summary table
   (hunt_progress.py).

``--resume ID`` re-sends the files of the manifest that have no marker yet (a message still in the queue
is harmless: a file is counted once). ``trailwatch hunt results ID`` lists the matches and failed files again.
"""

from __future__ import annotations

import gzip
import json
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from trailwatch import stack
from trailwatch.errors import AwsError, UsageError
from trailwatch.hunt_estimate import SEND_BATCH, estimate, human_bytes
from trailwatch.hunt_progress import plain, read_progress, report, wait
from trailwatch.log_listing import (
    LogFile,
    list_window,
    parse_moment,
)
from trailwatch.main import EPILOG, global_options
from trailwatch.session import Aws, Options
from trailwatch.ui import UI

SEND_THREADS = 8


# ---------------------------------------------------------------- the deployed stack
@dataclass(frozen=True)
class Target:
    """Where a hunt reads and writes, from the stack's outputs and parameters."""

    log_bucket: str
    prefix: str
    config_bucket: str
    table: str
    queue_url: str
    memory_mb: int
    architecture: str
    concurrency: int
    attach: bool
    retention_days: int = 90  # EventRetentionDays: the hunt's items expire with the events

    @classmethod
    def of(cls, aws: Aws, stack_name: str) -> Target:
        found = stack.require_stack(aws, stack_name)
        outputs, params = stack.stack_outputs(found), stack.stack_parameters(found)
        if "HuntQueueUrl" not in outputs:
            raise AwsError(
                f"Stack {stack_name!r} has no hunt queue (deployed before `trailwatch hunt` existed).",
                hint="Update it with `trailwatch deploy`.",
            )
        prefix = params.get("LogKeyPrefix", "").strip("/")
        return cls(
            log_bucket=outputs.get("LogSourceBucket") or outputs["TrailBucketName"],
            prefix=f"{prefix}/" if prefix else "",
            config_bucket=outputs["TrailBucketName"],
            table=outputs["EventsTableName"],
            queue_url=outputs["HuntQueueUrl"],
            memory_mb=int(params.get("FunctionMemorySize") or 512),
            architecture=params.get("FunctionArchitecture") or "arm64",
            concurrency=int(params.get("HuntConcurrency") or 5),
            attach=bool(params.get("ExistingBucketName")),
            retention_days=int(params.get("EventRetentionDays") or 90),
        )


# ---------------------------------------------------------------- hunt rules
def hunt_config(config_path: Path | None, rule_ids: Sequence[str], live: Callable[[], Any]) -> dict[str, Any]:
    """The hunt's config document: the rules of --config FILE (or of the config in force), only --rule ids
    when given. Validated by the processor's validator on the way in and again as written."""
    from trailwatch_processor.config import ConfigError
    from trailwatch_processor.config_schema import rule_json, validate_config

    from trailwatch.configcmd import load_config

    config = load_config(config_path)[0] if config_path is not None else live()
    rules = list(config.rules)
    if rule_ids:
        known = {r.id for r in rules}
        missing = [r for r in rule_ids if r not in known]
        if missing:
            where = str(config_path) if config_path else "the config in force"
            raise UsageError(
                f"--rule {', '.join(missing)}: not in {where}.", hint="Pass --config FILE with it."
            )
        rules = [r for r in rules if r.id in set(rule_ids)]
    doc = {"rules": [rule_json(r, noise=False) for r in rules]}
    try:
        validate_config(doc, source="hunt config")
    except ConfigError as exc:  # cannot happen for rules that validated; never send an invalid hunt
        raise UsageError(f"hunt config invalid: {exc}") from exc
    return doc


def live_config(aws: Aws, target: Target) -> Any:
    """The config in force: the bucket's, else the bundled default (the processor's fallback)."""
    from trailwatch_processor.config_load import load_default_config

    from trailwatch.configcmd import CONFIG_KEY, fetch_remote

    remote = fetch_remote(aws, target.config_bucket, CONFIG_KEY)
    return remote.config if remote.exists and remote.config is not None else load_default_config()


# ---------------------------------------------------------------- state in the table
def read_meta(aws: Aws, table: str, hunt_id: str) -> dict[str, Any]:
    from trailwatch_processor import hunt as tw_hunt

    if not tw_hunt.valid_id(hunt_id):
        raise UsageError(f"{hunt_id!r} is not a hunt id (e.g. h-20261203-094500-1a2b).")
    item = (
        aws.client("dynamodb")
        .get_item(TableName=table, Key={"EventId": {"S": tw_hunt.meta_id(hunt_id)}}, ConsistentRead=True)
        .get("Item")
    )
    if item is None:
        raise UsageError(f"No hunt {hunt_id} in {table}.", hint="Hunts are kept EventRetentionDays.")
    return plain(item)


def new_hunt_id(now: datetime) -> str:
    return f"h-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def save_hunt(
    aws: Aws,
    target: Target,
    hunt_id: str,
    config: dict[str, Any],
    files: Sequence[LogFile],
    *,
    since: datetime,
    until: datetime,
    alert: bool,
    now: datetime,
    retention_days: int,
) -> None:
    """Rules and manifest to the config bucket, then the meta item (which makes the hunt exist)."""
    from trailwatch_processor import hunt as tw_hunt

    from trailwatch.configcmd import owned_bucket_args

    s3, owner = aws.client("s3"), owned_bucket_args(aws)
    s3.put_object(
        Bucket=target.config_bucket,
        Key=tw_hunt.config_key(hunt_id),
        Body=json.dumps(config, indent=1).encode(),
        ContentType="application/json",
        **owner,
    )
    manifest = {"bucket": target.log_bucket, "files": [[f.key, f.size] for f in files]}
    s3.put_object(
        Bucket=target.config_bucket,
        Key=tw_hunt.manifest_key(hunt_id),
        Body=gzip.compress(json.dumps(manifest, separators=(",", ":")).encode(), mtime=0),
        ContentType="application/gzip",
        **owner,
    )
    item = {
        "EventId": {"S": tw_hunt.meta_id(hunt_id)},
        "kind": {"S": tw_hunt.KIND_META},
        "hunt_id": {"S": hunt_id},
        "alert": {"BOOL": alert},
        "config_key": {"S": tw_hunt.config_key(hunt_id)},
        "manifest_key": {"S": tw_hunt.manifest_key(hunt_id)},
        "log_bucket": {"S": target.log_bucket},
        "since": {"S": since.isoformat()},
        "until": {"S": until.isoformat()},
        "files": {"N": str(len(files))},
        "bytes": {"N": str(sum(f.size for f in files))},
        "rules": {"L": [{"S": r["id"]} for r in config["rules"]]},
        "created_at": {"S": now.isoformat()},
        "expires_at": {"N": str(int((now + timedelta(days=retention_days)).timestamp()))},
    }
    aws.client("dynamodb").put_item(
        TableName=target.table, Item=item, ConditionExpression="attribute_not_exists(EventId)"
    )


def read_manifest(aws: Aws, target: Target, meta: dict[str, Any]) -> tuple[str, list[LogFile]]:
    from trailwatch.configcmd import owned_bucket_args

    body = (
        aws.client("s3")
        .get_object(Bucket=target.config_bucket, Key=str(meta["manifest_key"]), **owned_bucket_args(aws))[
            "Body"
        ]
        .read()
    )
    doc = json.loads(gzip.decompress(body))
    return str(doc["bucket"]), [LogFile(k, int(s)) for k, s in doc["files"]]


def send_files(
    aws: Aws,
    queue_url: str,
    hunt_id: str,
    bucket: str,
    files: Sequence[LogFile],
    *,
    threads: int = SEND_THREADS,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """One message per file (SendMessageBatch of 10, in parallel); entries SQS refuses are sent again."""
    from trailwatch_processor import hunt as tw_hunt

    sqs = aws.client("sqs")
    chunks = [files[i : i + SEND_BATCH] for i in range(0, len(files), SEND_BATCH)]

    def send(chunk: Sequence[LogFile]) -> int:
        entries = [
            {"Id": str(i), "MessageBody": tw_hunt.message_body(hunt_id, bucket, f.key)}
            for i, f in enumerate(chunk)
        ]
        for attempt in range(5):
            failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
            if not failed:
                break
            ids = {f["Id"] for f in failed}
            entries = [e for e in entries if e["Id"] in ids]
            time.sleep(0.1 * 2**attempt)
        else:
            raise AwsError(
                f"SQS refused {len(entries)} hunt message(s) five times: {failed[0].get('Message')}"
            )
        if on_sent is not None:
            on_sent(len(chunk))
        return len(chunk)

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(send, chunks))


# ---------------------------------------------------------------- commands
def _csv(values: Iterable[str]) -> list[str]:
    return [v.strip() for text in values for v in text.split(",") if v.strip()]


def _confirm(ui: UI, yes: bool, question: str) -> None:
    from trailwatch.configcmd import stdin_is_tty

    if yes:
        return
    if not stdin_is_tty():
        raise UsageError("Not confirmed: no terminal to ask.", hint="Pass --yes to start without asking.")
    if not click.confirm(question, default=False, err=ui.json_mode):
        raise UsageError("Not confirmed; nothing sent.")


def run_hunt(
    aws: Aws,
    ui: UI,
    options: Options,
    *,
    since: str,
    until: str | None,
    config_path: Path | None,
    rule_ids: Sequence[str],
    accounts: Sequence[str],
    regions: Sequence[str],
    alert: bool,
    yes: bool,
    wait_seconds: float,
    no_wait: bool,
) -> int:
    from trailwatch.configcmd import owned_bucket_args

    now = datetime.now(UTC)
    start, end = parse_moment(since, now), parse_moment(until, now) if until else now
    if start >= end:
        raise UsageError(f"--since {since} is not before --until {until or 'now'}.")
    target = Target.of(aws, options.stack_name)
    config = hunt_config(config_path, rule_ids, lambda: live_config(aws, target))
    ui.step(
        f"Listing log files of s3://{target.log_bucket}/{target.prefix}AWSLogs/ "
        f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    )
    owner = {} if target.attach else owned_bucket_args(aws)
    files = list_window(
        aws.client("s3"),
        target.log_bucket,
        target.prefix,
        start,
        end,
        accounts=accounts,
        regions=regions,
        owner=owner,
    )
    est = estimate(
        files, memory_mb=target.memory_mb, architecture=target.architecture, concurrency=target.concurrency
    )
    ui.table(
        ["files", "bytes", "function s", "GB-s", "wall time", "cost USD"],
        [[est.files, human_bytes(est.bytes), f"{est.function_seconds:.0f}", f"{est.gb_seconds:.0f}",
          f"~{est.wall_seconds:.0f} s at concurrency {target.concurrency}", f"{est.cost_usd:.4f}"]],
    )  # fmt: skip
    ui.info(
        "  cost: "
        + ", ".join(f"{k} {v:.4f}" for k, v in est.parts.items())
        + "; rules: "
        + ", ".join(r["id"] for r in config["rules"])
        + ("; alerts ON (--alert)" if alert else "; no alerts (results only)")
    )
    if not files:
        ui.info("No log files in the window: nothing to hunt.")
        return 0
    _confirm(ui, yes, f"Hunt {est.files} file(s)?")
    hunt_id = new_hunt_id(now)
    save_hunt(
        aws,
        target,
        hunt_id,
        config,
        files,
        since=start,
        until=end,
        alert=alert,
        now=now,
        retention_days=target.retention_days,
    )
    ui.step(f"Hunt {hunt_id}: sending {len(files)} file(s) to the hunt queue")
    began = time.monotonic()
    send_files(aws, target.queue_url, hunt_id, target.log_bucket, files)
    ui.info(
        f"  Sent. Resume with `trailwatch hunt --resume {hunt_id}`; "
        f"results: `trailwatch hunt results {hunt_id}`."
    )
    if no_wait:
        if ui.json_mode:
            ui.json({"hunt_id": hunt_id, "files": len(files), "sent": len(files)})
        return 0
    wait(aws, ui, target, hunt_id, len(files), timeout=wait_seconds)
    return report(
        aws, ui, target, hunt_id, read_meta(aws, target.table, hunt_id), elapsed=time.monotonic() - began
    )


def run_resume(
    aws: Aws, ui: UI, options: Options, hunt_id: str, *, wait_seconds: float, no_wait: bool
) -> int:
    target = Target.of(aws, options.stack_name)
    meta = read_meta(aws, target.table, hunt_id)
    bucket, files = read_manifest(aws, target, meta)
    progress = read_progress(aws, target.table, hunt_id)
    missing = [f for f in files if f.key not in progress.finished_keys]
    ui.step(
        f"Hunt {hunt_id}: {progress.finished} of {len(files)} file(s) finished; re-sending {len(missing)}"
    )
    began = time.monotonic()
    send_files(aws, target.queue_url, hunt_id, bucket, missing)
    if no_wait:
        return 0
    wait(aws, ui, target, hunt_id, len(files), timeout=wait_seconds)
    return report(aws, ui, target, hunt_id, meta, elapsed=time.monotonic() - began)


@click.group("hunt", invoke_without_command=True, epilog=EPILOG)
@global_options
@click.option("--since", help="Start of the window: 90d, 12h (ago) or a date (2026-09-01). Required.")
@click.option("--until", help="End of the window (same forms) [default: now].")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="Rules to hunt with."
)
@click.option("--rule", "rule_ids", multiple=True, metavar="ID", help="Only this rule (repeatable).")
@click.option("--accounts", multiple=True, metavar="IDS", help="Only these accounts (comma separated).")
@click.option("--regions", multiple=True, metavar="NAMES", help="Only these regions (comma separated).")
@click.option(
    "--alert", is_flag=True, help="Publish an alert per match (once per event); default: results only."
)
@click.option("--yes", is_flag=True, help="Start without asking.")
@click.option("--resume", "resume_id", metavar="ID", help="Finish hunt ID: re-send the files not finished.")
@click.option("--no-wait", is_flag=True, help="Send and return; see `trailwatch hunt results ID`.")
@click.option("--wait", "wait_seconds", default=86400.0, show_default=True, help="Seconds to wait at most.")
@click.option("--json", "json_mode", is_flag=True, help="Progress on stderr; the summary as JSON on stdout.")
@click.pass_context
def hunt_command(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    config_path: Path | None,
    rule_ids: tuple[str, ...],
    accounts: tuple[str, ...],
    regions: tuple[str, ...],
    alert: bool,
    yes: bool,
    resume_id: str | None,
    no_wait: bool,
    wait_seconds: float,
    json_mode: bool,
) -> None:
    """Run rules over past log files on the deployed function, each match reported once.

    \b
    Examples:
      trailwatch hunt --since 90d --config new-rule.json
      trailwatch hunt --since 30d --rule cis-4.3-root-account-usage --accounts 111111111111 --yes
      trailwatch hunt --resume h-20261203-094500-1a2b
      trailwatch hunt results h-20261203-094500-1a2b
    """
    if ctx.invoked_subcommand is not None:
        return
    options: Options = ctx.find_object(Options)
    aws, ui = Aws(options), UI(verbose=options.verbose, json_mode=json_mode)
    if resume_id:
        code = run_resume(aws, ui, options, resume_id, wait_seconds=wait_seconds, no_wait=no_wait)
    else:
        if not since:
            raise UsageError("--since is required (e.g. --since 90d), or --resume ID.")
        code = run_hunt(
            aws,
            ui,
            options,
            since=since,
            until=until,
            config_path=config_path,
            rule_ids=rule_ids,
            accounts=_csv(accounts),
            regions=_csv(regions),
            alert=alert,
            yes=yes,
            wait_seconds=wait_seconds,
            no_wait=no_wait,
        )
    raise click.exceptions.Exit(code)


@hunt_command.command("results", epilog=EPILOG)
@global_options
@click.argument("hunt_id")
@click.option("--json", "json_mode", is_flag=True, help="The summary, matches and failed files as JSON.")
@click.pass_obj
def results_command(options: Options, hunt_id: str, json_mode: bool) -> None:
    """List a hunt's matches and failed files again."""
    aws, ui = Aws(options), UI(verbose=options.verbose, json_mode=json_mode)
    target = Target.of(aws, options.stack_name)
    meta = read_meta(aws, target.table, hunt_id)
    raise click.exceptions.Exit(report(aws, ui, target, hunt_id, meta))
