"""Peak memory of the processor on hostile inputs, against the function's MemorySize.

    python bench/memory.py [--quick] [--only huge-record,...] [--memory-size 512] [--markdown FILE]

One LocalAWS in this process (no Lambda runtime, no trail) holds the trail bucket, the events table and the
alert topic. For each input, a fresh Python subprocess runs the function's real entry point
(`trailwatch_processor.handler.handler`) on one SQS message naming that object, with boto3 pointed at the
LocalAWS (AWS_ENDPOINT_URL), the default config, and a Lambda-like context whose remaining time counts down
from FunctionTimeout. The subprocess is only the function, as in Lambda: the emulator's own memory is
not in it.

Reported per input: peak resident memory of the subprocess (VmHWM, polled from /proc every 20 ms and read
at the end), the memory before the handler ran (interpreter, boto3 clients: Lambda counts that too), the
outcome (failed messages) and the time. The subprocess is killed above twice the MemorySize, so the
measurement itself stays bounded ("killed" in the table). The verdict column compares the peak with the
MemorySize (512 MB, main.yaml's FunctionMemorySize default). Linux only (/proc).

The last line reads ``inputs=<n> over_memory=<k> max_peak_mb=<m>``; exit 1 when any input went over.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import boto3
from trailwatch import synth

if TYPE_CHECKING:
    from trailwatch.local.server import LocalAWS

BUCKET = "tw-memory-trail-bucket"
TABLE = "tw-memory-events"
MEMORY_SIZE_MB = 512  # main.yaml FunctionMemorySize default
FUNCTION_TIMEOUT = 60  # main.yaml FunctionTimeout default
POLL_SECONDS = 0.02
MB = 1_000_000

# The function, alone in its process: import, build clients, note the memory, run one SQS message.
CHILD = r"""
import json, os, re, sys, time, types
def hwm_kb(field):
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\s+(\d+)", f.read()).group(1))
from trailwatch_processor import handler
timeout = float(os.environ["TW_FUNCTION_TIMEOUT"])
deadline = time.monotonic() + timeout
context = types.SimpleNamespace(
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:tw-memory-processor",
    function_name="tw-memory-processor",
    memory_limit_in_mb=os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
    aws_request_id="bench",
    get_remaining_time_in_millis=lambda: max(0, int((deadline - time.monotonic()) * 1000)),
)
handler._container_deps = handler.build_deps(bucket_owner=None)
before = hwm_kb("VmRSS")
started = time.monotonic()
event = {"Records": [{"messageId": "m1", "body": sys.stdin.read()}]}
result = handler.handler(event, context)
print(json.dumps({"before_kb": before, "peak_kb": hwm_kb("VmHWM"), "seconds": time.monotonic() - started,
                  "failed": len(result.get("batchItemFailures", []))}))
"""


@dataclass
class Input:
    """One hostile log file: `write` streams its gzip body into a file (never whole in this process)."""

    name: str
    what: str
    write: Callable[[BinaryIO, float], None]


def _records_json(records: list[dict]) -> bytes:
    return json.dumps(records, separators=(",", ":")).encode()[1:-1]


def _huge_record(matching: bool, megabytes: int) -> Callable[[BinaryIO, float], None]:
    """One record whose requestParameters hold a string of `megabytes` x scale MB, then a CreateUser."""

    def write(out: BinaryIO, scale: float) -> None:
        name = "CreateUser" if matching else "DescribeInstances"
        record = synth.make_record(name, request_parameters={"blob": "@BLOB@"})
        head, tail = json.dumps(record, separators=(",", ":")).encode().split(b"@BLOB@")
        after = synth.make_record("CreateUser")
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
            gz.write(b'{"Records":[' + head)
            chunk = b"A" * MB
            for _ in range(max(1, round(megabytes * scale))):
                gz.write(chunk)
            gz.write(tail + b"," + _records_json([after]) + b"]}")

    return write


def _gzip_bomb(megabytes: int) -> Callable[[BinaryIO, float], None]:
    """Whitespace between two records, `megabytes` x scale MB of it (a 1 GB bomb is ~1 MB of gzip)."""

    def write(out: BinaryIO, scale: float) -> None:
        first, last = synth.make_record("StopLogging"), synth.make_record("CreateUser")
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as gz:
            gz.write(b'{"Records":[' + _records_json([first]) + b",")
            chunk = b" " * MB
            for _ in range(max(1, round(megabytes * scale))):
                gz.write(chunk)
            gz.write(_records_json([last]) + b"]}")

    return write


def _many_matches(out: BinaryIO, scale: float) -> None:
    """StopLogging, 12,000 x scale AccessDenied, CreateUser."""
    records = [synth.make_record("StopLogging")]
    records += [
        synth.make_record("GetSecretValue", error_code="AccessDenied")
        for _ in range(max(100, round(12_000 * scale)))
    ]
    records.append(synth.make_record("CreateUser"))
    out.write(synth.gzip_log(records))


def _odd_records(out: BinaryIO, scale: float) -> None:
    """A lone surrogate escape, a 5,000-digit int, nesting 100,000 deep, invalid UTF-8; good ones around."""
    good = [synth.make_record("CreateUser") for _ in range(5)]
    parts = [_records_json([g]) for g in good]
    odd = [
        _records_json([synth.make_record("CreateUser", user_agent="@S@")]).replace(b"@S@", b"\\udc00"),
        _records_json([synth.make_record("CreateUser", request_parameters={"n": 0})]).replace(
            b'"n":0', b'"n":' + b"9" * 5000
        ),
        _records_json([synth.make_record("CreateUser", request_parameters={"d": 0})]).replace(
            b'"d":0', b'"d":' + b"[" * 100_000 + b"]" * 100_000
        ),
        _records_json([synth.make_record("CreateUser", user_agent="@U@")]).replace(b"@U@", b"\xff\xfe"),
    ]
    mixed = [p for pair in zip(parts, odd, strict=False) for p in pair] + parts[len(odd) :]
    out.write(gzip.compress(b'{"Records":[' + b",".join(mixed) + b"]}", mtime=0))


def _baseline(out: BinaryIO, scale: float) -> None:
    """An ordinary file: 5,000 x scale records, 1% monitored."""
    rng = random.Random(1)
    out.write(synth.gzip_log(synth.background_records(max(100, round(5000 * scale)), rng)))


INPUTS: tuple[Input, ...] = (
    Input("baseline", "5,000 ordinary records, 1% monitored", _baseline),
    Input(
        "huge-record-200MB",
        "one matching record with a 200 MB string (gzip ~200 KB)",
        _huge_record(True, 200),
    ),
    Input("huge-record-quiet", "one non-matching record with a 200 MB string", _huge_record(False, 200)),
    Input("huge-record-1GB", "one matching record with a 1 GB string (gzip ~1 MB)", _huge_record(True, 1000)),
    Input("gzip-bomb-1GB", "1 GB of whitespace between two records (gzip ~1 MB)", _gzip_bomb(1000)),
    Input("many-matches", "StopLogging + 12,000 AccessDenied + CreateUser", _many_matches),
    Input("odd-records", "surrogate, 5,000-digit int, 100,000-deep nesting, invalid UTF-8", _odd_records),
)


@dataclass
class Measured:
    name: str
    what: str
    gz_bytes: int
    before_mb: float | None = None
    peak_mb: float | None = None
    seconds: float | None = None
    outcome: str = ""

    def over(self, memory_size: int) -> bool:
        return self.peak_mb is None or self.peak_mb > memory_size


def _hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            found = re.search(r"VmHWM:\s+(\d+)", f.read())
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None


def measure(aws: LocalAWS, item: Input, scale: float, memory_size: int, timeout: int, tmp: Path) -> Measured:
    key = synth.log_key(unique=item.name.upper().replace("-", "")[:16])
    path = tmp / "body.json.gz"
    with path.open("wb") as out:
        item.write(out, scale)
    s3 = _client(aws, "s3")
    with path.open("rb") as body:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    result = Measured(item.name, item.what, path.stat().st_size)
    path.unlink()
    message = json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "awsRegion": aws.region,
                    "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": result.gz_bytes}},
                }
            ]
        }
    )
    env = _child_env(aws, memory_size, timeout)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(message)
    child.stdin.close()
    started, peak, killed = time.monotonic(), 0.0, ""
    while child.poll() is None:
        peak = max(peak, _hwm_mb(child.pid) or 0.0)
        if peak > 2 * memory_size:
            killed = f"killed above {2 * memory_size} MB"
        elif time.monotonic() - started > timeout + 30:
            killed = f"killed after {timeout + 30} s"
        if killed:
            child.kill()
            break
        time.sleep(POLL_SECONDS)
    child.wait()
    output = child.stdout.read().strip().splitlines()
    if killed or child.returncode != 0 or not output:
        result.peak_mb, result.seconds = (peak or None), time.monotonic() - started
        result.outcome = killed or f"exit {child.returncode}"
        return result
    got = json.loads(output[-1])
    result.before_mb, result.seconds = got["before_kb"] / 1024, got["seconds"]
    result.peak_mb = max(peak, got["peak_kb"] / 1024)
    result.outcome = "processed" if got["failed"] == 0 else "message failed (retried / DLQ)"
    return result


def _client(aws: LocalAWS, service: str) -> object:
    return boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=aws.region
    ).client(service, endpoint_url=aws.endpoint)


def _child_env(aws: LocalAWS, memory_size: int, timeout: int) -> dict[str, str]:
    topic = _client(aws, "sns").create_topic(Name="tw-memory-alerts")["TopicArn"]  # type: ignore[attr-defined]
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": aws.region,
        "AWS_DEFAULT_REGION": aws.region,
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_size),
        "TW_FUNCTION_TIMEOUT": str(timeout),
        "EVENTS_TABLE": TABLE,
        "ALERT_TOPIC_ARN": topic,
        "CONFIG_BUCKET": BUCKET,
        "LOG_LEVEL": "ERROR",
    }


def _setup(aws: LocalAWS) -> None:
    _client(aws, "s3").create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    _client(aws, "dynamodb").create_table(  # type: ignore[attr-defined]
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "EventId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "EventId", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def run(
    names: list[str], scale: float, memory_size: int, timeout: int, echo: Callable[[str], None]
) -> Iterator[Measured]:
    from trailwatch.local.server import LocalAWS  # moto's server: only when measuring

    with (
        LocalAWS(port=0, lambda_runtime=False, cloudtrail=False) as aws,
        tempfile.TemporaryDirectory() as tmp,
    ):
        _setup(aws)
        for item in INPUTS:
            if item.name in names:
                measured = measure(aws, item, scale, memory_size, timeout, Path(tmp))
                echo(format_row(measured, memory_size))
                yield measured


HEADER = ("input", "gzip KB", "before MB", "peak MB", "seconds", "outcome", "under MemorySize")


def cells(m: Measured, memory_size: int) -> tuple[str, ...]:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    return (
        m.name,
        f"{m.gz_bytes / 1024:,.0f}",
        num(m.before_mb, ".0f"),
        num(m.peak_mb, ".0f"),
        num(m.seconds, ".1f"),
        m.outcome,
        "NO" if m.over(memory_size) else ("yes (until killed)" if m.outcome.startswith("killed") else "yes"),
    )


def format_row(m: Measured, memory_size: int) -> str:
    return "  ".join(cells(m, memory_size))


def table(rows: list[Measured], memory_size: int) -> str:
    grid = [HEADER, *[cells(r, memory_size) for r in rows]]
    widths = [max(len(line[i]) for line in grid) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in grid)


def markdown(rows: list[Measured], memory_size: int, command: str) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells(r, memory_size)) + " |" for r in rows]
    lines += [
        "",
        f"MemorySize {memory_size} MB. Command: `{command}`",
        "",
        "```",
        summary(rows, memory_size),
        "```",
    ]
    return "\n".join(lines)


def summary(rows: list[Measured], memory_size: int) -> str:
    peaks = [r.peak_mb for r in rows if r.peak_mb is not None]
    over = sum(1 for r in rows if r.over(memory_size))
    return f"inputs={len(rows)} over_memory={over} max_peak_mb={max(peaks, default=0):.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="inputs at 1/10 of their size")
    parser.add_argument("--only", default=",".join(i.name for i in INPUTS), help="comma-separated inputs")
    parser.add_argument("--memory-size", type=int, default=MEMORY_SIZE_MB, help="MemorySize in MB (512)")
    parser.add_argument("--timeout", type=int, default=FUNCTION_TIMEOUT, help="FunctionTimeout in s (60)")
    parser.add_argument("--markdown", type=Path, help="write the table (markdown) to this file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in {i.name for i in INPUTS}]
    if unknown:
        parser.error(f"unknown input(s) {unknown}; choose from {[i.name for i in INPUTS]}")
    if not Path("/proc/self/status").exists():
        parser.error("Linux only: the peak is read from /proc/<pid>/status (VmHWM)")
    scale = 0.1 if args.quick else 1.0
    rows = list(
        run(
            names,
            scale,
            args.memory_size,
            args.timeout,
            lambda line: print(line, file=sys.stderr, flush=True),
        )
    )
    print(table(rows, args.memory_size))
    if args.markdown:
        command = "python bench/memory.py" + (" --quick" if args.quick else "")
        args.markdown.write_text(markdown(rows, args.memory_size, command) + "\n")
    print(summary(rows, args.memory_size))
    return 1 if any(r.over(args.memory_size) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
