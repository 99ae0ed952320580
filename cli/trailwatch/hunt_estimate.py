"""`trailwatch hunt`'s estimate of time and cost, shown before the user is asked to start: from the files'
count and compressed bytes, the function's memory, architecture and the hunt mapping's concurrency."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trailwatch.log_listing import LogFile

SEND_BATCH = 10  # SendMessageBatch's limit
HUNT_BATCH_SIZE = 10  # the hunt mapping's BatchSize (main.yaml)
# Estimate. Measured: the processor's reader and matcher take 0.066 s of CPU per compressed MB (a 0.58 MB,
# 5,000-record synth file, bundled config, this repository's CI machine, fastest of 3); Lambda gives a full
# vCPU at 1,769 MB and proportionally less below. Per file: one S3 GET, a marker read and write (in-region
# calls of a few ms each), taken as 25 ms.
SECONDS_PER_COMPRESSED_MB = 0.07
SECONDS_PER_FILE = 0.025
FULL_VCPU_MB = 1769
# Prices (us-east-1, on demand): Lambda per GB-s by architecture and per request, S3 GET and LIST, SQS
# requests (send batches, receives, deletes), DynamoDB write request units (two small writes per file).
LAMBDA_GB_SECOND_USD = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
LAMBDA_REQUEST_USD = 0.20 / 1_000_000
S3_GET_USD = 0.0004 / 1000
SQS_REQUEST_USD = 0.40 / 1_000_000
DYNAMODB_WRITE_USD = 0.625 / 1_000_000


@dataclass(frozen=True)
class Estimate:
    files: int
    bytes: int
    function_seconds: float
    gb_seconds: float
    wall_seconds: float
    cost_usd: float
    parts: dict[str, float]


def estimate(files: Sequence[LogFile], *, memory_mb: int, architecture: str, concurrency: int) -> Estimate:
    total = sum(f.size for f in files)
    cpu_share = min(1.0, memory_mb / FULL_VCPU_MB)
    seconds = len(files) * SECONDS_PER_FILE + total / 1e6 * SECONDS_PER_COMPRESSED_MB / cpu_share
    gb_seconds = seconds * memory_mb / 1024
    batches = -(-len(files) // SEND_BATCH)  # SendMessageBatch calls
    invocations = -(-len(files) // HUNT_BATCH_SIZE)
    parts = {
        "lambda": gb_seconds * LAMBDA_GB_SECOND_USD.get(architecture, LAMBDA_GB_SECOND_USD["x86_64"])
        + invocations * LAMBDA_REQUEST_USD,
        "s3": len(files) * S3_GET_USD,
        "sqs": batches * 3 * SQS_REQUEST_USD,  # send, receive, delete: 10 messages per request
        "dynamodb": len(files) * 2 * DYNAMODB_WRITE_USD,
    }
    return Estimate(
        files=len(files),
        bytes=total,
        function_seconds=seconds,
        gb_seconds=gb_seconds,
        wall_seconds=seconds / max(concurrency, 1),
        cost_usd=sum(parts.values()),
        parts=parts,
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
