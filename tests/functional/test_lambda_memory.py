"""The local Lambda runtime enforces the function's MemorySize, as Lambda ends an execution
environment that runs out of memory; Timeout is covered by test_lambda_runtime.py
(test_timeout_kills_the_worker_and_counts_as_failure).

Before the memory watch a worker could use any amount of memory: the over-limit invocations here returned
their payload."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from trailwatch.local.lambda_host import FunctionConfig
from trailwatch.local.lambda_process import Worker, WorkerError

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")

HANDLER = """
import subprocess, sys

def handler(event, context):
    if event.get("child_mb"):
        code = f"b = bytearray({event['child_mb']} * 1024 * 1024); import time; time.sleep(1)"
        subprocess.run([sys.executable, "-c", code], check=True)
    block = bytearray(event.get("mb", 0) * 1024 * 1024)  # zero-filled: resident
    return {"allocated": len(block)}
"""
INIT_HOG = "HOG = bytearray(400 * 1024 * 1024)\n\ndef handler(event, context):\n    return 1\n"


def make_worker(tmp_path: Path, memory_size: int, source: str = HANDLER) -> Worker:
    root = tmp_path / uuid.uuid4().hex
    root.mkdir()
    (root / "fn.py").write_text(source)
    config = FunctionConfig(
        name="memory-test",
        arn="arn:aws:lambda:us-east-1:123456789012:function:memory-test",
        version="$LATEST",
        handler="fn.handler",
        timeout=20.0,
        memory_size=memory_size,
        environment={},
        code_sha256="",
    )
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LAMBDA_TASK_ROOT": str(root),
        "_HANDLER": "fn.handler",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_size),
    }
    return Worker(config, root, env, log=lambda line: None)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def invoke(worker: Worker, event: dict) -> dict:
    return worker.invoke(
        {
            "type": "invoke",
            "request_id": "r1",
            "event": event,
            "deadline_ms": 2**62,
            "invoked_function_arn": "a",
        },
        20.0,
    )


def test_within_memory_size_the_invocation_succeeds(tmp_path: Path, workers: list[Worker]) -> None:
    worker = make_worker(tmp_path, 256)
    workers.append(worker)
    worker.start()
    assert invoke(worker, {"mb": 32})["payload"] == {"allocated": 32 * 1024 * 1024}
    used = worker.memory_used_mb()
    assert used is not None and 32 < used < 256


@pytest.mark.parametrize("event", [{"mb": 300}, {"child_mb": 300}], ids=["the function", "its child process"])
def test_over_memory_size_the_worker_is_killed_as_out_of_memory(
    tmp_path: Path, workers: list[Worker], event: dict
) -> None:
    worker = make_worker(tmp_path, 128)
    workers.append(worker)
    worker.start()
    killed = r"Runtime exited with error: signal: killed \(Runtime\.OutOfMemory"
    with pytest.raises(WorkerError, match=killed):
        invoke(worker, event)
    assert not worker.alive


def test_memory_used_in_init_counts(tmp_path: Path, workers: list[Worker]) -> None:
    worker = make_worker(tmp_path, 128, INIT_HOG)
    workers.append(worker)
    with pytest.raises(WorkerError, match=r"Runtime\.OutOfMemory"):
        worker.start()
    assert not worker.alive


def test_memory_used_is_none_without_a_process(tmp_path: Path) -> None:
    assert make_worker(tmp_path, 128).memory_used_mb() is None
