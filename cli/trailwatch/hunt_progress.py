"""A hunt's state in the events table and what `trailwatch hunt` shows of it: the per-file markers and the
matches (through the ByDay index, never a Scan), the wait with its progress bar until every file is done or
failed, and the summary, matches and failed files (`trailwatch hunt` and `trailwatch hunt results ID`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer

from trailwatch.session import Aws
from trailwatch.ui import UI

if TYPE_CHECKING:
    from trailwatch.hunt import Target

POLL_SECONDS = 1.0
PRINT_EVERY_SECONDS = 5.0  # progress lines when stdout is not a terminal
STALL_SECONDS = 600.0  # give up waiting when nothing finishes for this long (--resume continues)
MARKER_READ_SECONDS = 5.0  # exact progress (the markers) at most this often while messages are queued
EMPTY_QUEUE_READS = 3  # marker reads with an empty queue and files unfinished: their messages are gone

_deserializer = TypeDeserializer()


def plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


@dataclass
class Progress:
    done: int = 0
    failed: int = 0
    matches: int = 0
    finished_keys: set[str] = field(default_factory=set)
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.done + self.failed


def read_progress(aws: Aws, table: str, hunt_id: str) -> Progress:
    """Every file marker of the hunt, through the ByDay index (one partition per shard, in parallel)."""
    from trailwatch_processor import hunt as tw_hunt

    ddb = aws.client("dynamodb")

    def shard(n: int) -> list[dict[str, Any]]:
        items = []
        for page in ddb.get_paginator("query").paginate(
            TableName=table,
            IndexName="ByDay",
            KeyConditionExpression="event_day = :p",
            ExpressionAttributeValues={":p": {"S": tw_hunt.files_partition(hunt_id, n)}},
            ProjectionExpression="log_key, #s, matches, #e",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
        ):
            items.extend(plain(i) for i in page.get("Items", []))
        return items

    progress = Progress()
    with ThreadPoolExecutor(tw_hunt.FILE_SHARDS) as pool:
        for items in pool.map(shard, range(tw_hunt.FILE_SHARDS)):
            for item in items:
                progress.finished_keys.add(str(item["log_key"]))
                progress.matches += int(item.get("matches", 0))
                if item.get("status") == tw_hunt.FAILED:
                    progress.failed += 1
                    progress.failures.append(
                        {"key": str(item["log_key"]), "error": str(item.get("error", ""))}
                    )
                else:
                    progress.done += 1
    progress.failures.sort(key=lambda f: f["key"])
    return progress


def read_results(aws: Aws, table: str, hunt_id: str) -> list[dict[str, Any]]:
    """The hunt's matches, oldest first, through the ByDay index."""
    from trailwatch_processor import hunt as tw_hunt

    out = []
    for page in (
        aws.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=table,
            IndexName="ByDay",
            KeyConditionExpression="event_day = :p",
            ExpressionAttributeValues={":p": {"S": tw_hunt.results_partition(hunt_id)}},
        )
    ):
        out.extend(plain(i) for i in page.get("Items", []))
    return out


def queue_depth(aws: Aws, queue_url: str) -> int:
    """Messages in the hunt queue, visible or being processed (SQS's approximate counts)."""
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def wait(
    aws: Aws,
    ui: UI,
    target: Target,
    hunt_id: str,
    total: int,
    *,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Progress:
    """Progress until every file is done or failed; stops early when the queue is empty and files are still
    unfinished (their messages were lost: `--resume`), nothing moved for STALL_SECONDS, or ``timeout``.

    The bar moves with the queue's depth every POLL_SECONDS (one cheap call); the markers (exact done,
    failed, matches) are read every MARKER_READ_SECONDS, or ten times as long as the last read took, and
    whenever the queue is empty."""
    started = last_move = last_print = clock()
    progress = read_progress(aws, target.table, hunt_id)
    read_cost, last_read = clock() - started, clock()
    baseline, seen, empty_reads = progress.finished, progress.finished, 0
    while True:
        depth = queue_depth(aws, target.queue_url)
        now = clock()
        if depth == 0 or now - last_read >= max(MARKER_READ_SECONDS, 10 * read_cost):
            progress = read_progress(aws, target.table, hunt_id)
            read_cost, last_read = clock() - now, clock()
            empty_reads = empty_reads + 1 if depth == 0 else 0
        if progress.finished != seen:
            seen, last_move = progress.finished, now
        estimated = min(max(progress.finished, total - depth), total)  # between marker reads
        rate = (estimated - baseline) / max(now - started, 1e-6)
        text = (
            f"{progress.done} done, {progress.failed} failed of {total}, {progress.matches} match(es), "
            f"{depth} queued, {rate:.1f} files/s"
        )
        complete = progress.finished >= total
        if complete or ui.live() or now - last_print >= PRINT_EVERY_SECONDS:
            ui.bar(progress.finished if complete else estimated, total, text)
            last_print = now
        if complete:
            break
        lost = empty_reads >= EMPTY_QUEUE_READS
        if lost or now - started >= timeout or now - last_move >= STALL_SECONDS:
            ui.bar_end()
            why = "the hunt queue is empty" if lost else "stopped waiting"
            ui.warn(
                f"{why} with {total - progress.finished} file(s) unfinished; "
                f"`trailwatch hunt --resume {hunt_id}` re-sends them and waits again."
            )
            return progress
        sleep(POLL_SECONDS)
    ui.bar_end()
    return progress


RESULT_COLUMNS = ["time", "account", "rule", "event", "principal", "source ip", "region", "log file"]


def result_row(item: dict[str, Any]) -> list[Any]:
    return [
        item.get("event_time"),
        item.get("account_id"),
        item.get("primary_rule"),
        item.get("event_name"),
        item.get("principal_arn"),
        item.get("source_ip"),
        item.get("aws_region"),
        str(item.get("log_key", "")).rsplit("/", 1)[-1],
    ]


def result_json(item: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "event_id", "event_time", "account_id", "aws_region", "event_name", "event_source", "primary_rule",
        "rule_ids", "severity", "principal_arn", "principal_type", "source_ip", "log_bucket", "log_key",
    )  # fmt: skip
    return {k: item[k] for k in keep if k in item}


def report(
    aws: Aws, ui: UI, target: Target, hunt_id: str, meta: dict[str, Any], *, elapsed: float | None = None
) -> int:
    """The summary table (or JSON), the matches and the failed files; 0 when every file is done or failed."""
    progress = read_progress(aws, target.table, hunt_id)
    results = read_results(aws, target.table, hunt_id)
    total = int(meta.get("files", 0))
    summary = {
        "hunt_id": hunt_id,
        "rules": list(meta.get("rules", [])),
        "since": meta.get("since"),
        "until": meta.get("until"),
        "alert": bool(meta.get("alert")),
        "files": total,
        "done": progress.done,
        "failed": progress.failed,
        "pending": max(total - progress.finished, 0),
        "matches": len(results),
    }
    if elapsed is not None:
        summary["seconds"] = round(elapsed, 1)
        summary["files_per_second"] = round(progress.finished / elapsed, 1) if elapsed > 0 else None
    if ui.json_mode:
        ui.json({**summary, "results": [result_json(r) for r in results], "failed_files": progress.failures})
    else:
        ui.table(list(summary), [list(summary.values())])
        if results:
            ui.info("")
            by_rule = Counter(str(r.get("primary_rule")) for r in results)
            ui.table(["rule", "matches"], sorted(by_rule.items()))
            ui.info("")
            ui.table(RESULT_COLUMNS, [result_row(r) for r in results])
        if progress.failures:
            ui.info("")
            ui.warn(f"{progress.failed} file(s) failed:")
            ui.table(["log file", "error"], [[f["key"], f["error"]] for f in progress.failures])
    return 0 if progress.finished >= total else 1
