"""Local Lambda runtime for SQS event source mappings: the emulator's stand-in for the Lambda service.

What it does, as the Lambda service does for an SQS trigger:

- discovers event source mappings through the Lambda API (``ListEventSourceMappings`` on the emulator,
  refreshed every second by default); each Enabled mapping whose source is an SQS queue gets a poller;
- a poller long-polls its queue (``ReceiveMessage`` with all system and message attributes, up to BatchSize
  messages gathered during MaximumBatchingWindowInSeconds), builds the Lambda SQS event, invokes the function
  and, on success, deletes the batch -- or, with ``ReportBatchItemFailures``, all but the reported
  ``batchItemFailures``. A failed invocation (exception, timeout, crash, bad partial response) deletes
  nothing: the messages come back after the queue's visibility timeout, and moto's SQS moves them to the DLQ
  on the receive after ``maxReceiveCount`` receives (moto redrives in ``ReceiveMessage``, as SQS does);
- the function runs from the zip it was created with (CodeSha256-verified, extracted into a temp dir keyed
  by that digest), in a warm worker subprocess per function (``lambda_worker.py``), with the function's
  environment, a Lambda-like context, its AWS calls pointed at the emulator, its Timeout and its MemorySize
  enforced (the worker is killed and replaced on timeout, on a peak resident memory of the worker and its
  children above MemorySize -- checked every 50 ms on Linux -- or on a crash). Its stdout/stderr go to
  ``log`` as ``[lambda:NAME] ...`` lines, with START/END/REPORT lines as in CloudWatch Logs;
- the runtime's own requests (polling, deleting, reading the configuration) are marked internal for the
  CloudTrail recorder, since AWS does not log the Lambda service's polling in the account's trail; the
  function's own calls are ordinary requests.

Deliberate limits: one worker per function, so invocations of a function are serial (Lambda would scale out
to several concurrent environments); ReservedConcurrentExecutions = 0 means the function is throttled, and
its queues are then not polled at all (messages wait in the queue instead of cycling through receives);
FilterCriteria, MaximumRetryAttempts, ScalingConfig and DynamoDB/Kinesis sources are not emulated. As on
AWS, a batching window longer than the queue's visibility timeout lets gathered messages come back (and
be redriven) before the invocation.

The code is read from moto's Lambda backend in this process: moto's ``GetFunction`` returns a
``Code.Location`` that points at a made-up AWS URL, so the API cannot hand us the bytes. The digest is
checked against the API's ``CodeSha256``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import weakref
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from trailwatch.local.alarms import record_invocation

LogFn = Callable[[str], None]

WORKER_SCRIPT = Path(__file__).with_name("lambda_worker.py")
REFRESH_INTERVAL = 1.0  # seconds between ListEventSourceMappings / GetFunction refreshes
POLL_WAIT_SECONDS = 1  # ReceiveMessage long poll; bounds how long stop() waits for a poller
INIT_TIMEOUT = 10.0  # Lambda's limit for the init phase (importing the handler)
MAX_EVENT_BYTES = 6 * 1024 * 1024  # synchronous invocation payload limit
MEMORY_POLL = 0.05  # seconds between checks of a worker's memory against the function's MemorySize
STOP_GRACE = 5.0  # how long stop() lets an in-flight invocation finish before killing its worker
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
_MOTO_PATCH_FLAG = "_trailwatch_lambda_docker_disabled"


# --------------------------------------------------------------------------------------------------------
# moto's own SQS -> Lambda path


def disable_moto_lambda_docker() -> None:
    """Stop moto's SQS from invoking mapped functions (through Docker) on every SendMessage. Idempotent.

    moto's ``Queue.add_message`` walks ``queue.lambda_event_source_mappings`` and, for each mapping, receives
    the new messages itself and invokes the function in a Docker container, deleting them or making them
    visible again. ``LambdaBackend.create_event_source_mapping`` fills that dict. We replace the attribute on
    the ``Queue`` class by a data descriptor that always reads as an empty dict and ignores writes, so moto
    never takes that path: messages stay in the queue for `LambdaRuntime`'s pollers, receive counts stay
    honest, and the mapping itself still exists in the Lambda API (``ListEventSourceMappings``). Being a
    class-level data descriptor, it also covers queues created before the call. moto's files are untouched.
    """
    from moto.sqs.models import Queue

    if getattr(Queue, _MOTO_PATCH_FLAG, False):
        return

    def _no_mappings(self: Any) -> dict[str, Any]:
        return {}

    def _ignore(self: Any, value: Any) -> None:
        return None

    Queue.lambda_event_source_mappings = property(_no_mappings, _ignore)  # type: ignore[assignment]
    setattr(Queue, _MOTO_PATCH_FLAG, True)


# --------------------------------------------------------------------------------------------------------
# the Lambda SQS event and the outcome of one invocation


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ``Records`` entry of the Lambda SQS event, from a ``ReceiveMessage`` message."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update(
        md5OfBody=message["MD5OfBody"], eventSource="aws:sqs", eventSourceARN=queue_arn, awsRegion=region
    )
    return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = _b64(value["BinaryValue"])
    out["stringListValues"] = list(value.get("StringListValues", []))
    out["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
    out["dataType"] = value["DataType"]
    return out


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


@dataclass
class Outcome:
    """Result of invoking the function with one batch."""

    ok: bool
    payload: Any = None
    error: str = ""


def messages_to_delete(
    records: list[dict[str, Any]], outcome: Outcome, report_batch_item_failures: bool
) -> tuple[list[dict[str, Any]], str]:
    """The records to delete after an invocation, and why the rest stay (empty when all go).

    Rules of the Lambda service: a failed invocation deletes nothing; without ReportBatchItemFailures a
    successful one deletes all; with it, a null/empty response or a null/empty ``batchItemFailures`` deletes
    all, and a response Lambda cannot use (not an object, ``batchItemFailures`` not a list, an item without a
    non-empty string ``itemIdentifier``, or one naming no message of the batch) fails the whole batch.
    """
    if not outcome.ok:
        return [], f"invocation failed: {outcome.error}"
    if not report_batch_item_failures:
        return list(records), ""
    failed, problem = _reported_failures(outcome.payload, {r["messageId"] for r in records})
    if problem:
        return [], f"invalid partial batch response ({problem}): whole batch failed"
    kept = [r for r in records if r["messageId"] not in failed]
    reason = f"{len(failed)} of {len(records)} reported in batchItemFailures" if failed else ""
    return kept, reason


def _reported_failures(payload: Any, message_ids: set[str]) -> tuple[set[str], str]:
    if payload is None or payload == {}:
        return set(), ""
    if not isinstance(payload, dict):
        return set(), f"response is a {type(payload).__name__}, not an object"
    items = payload.get("batchItemFailures")
    if items is None:
        return set(), ""
    if not isinstance(items, list):
        return set(), "batchItemFailures is not a list"
    failed: set[str] = set()
    for index, item in enumerate(items):
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            return set(), f"batchItemFailures[{index}] has no itemIdentifier"
        if identifier not in message_ids:
            return set(), f"batchItemFailures[{index}].itemIdentifier {identifier!r} is not in the batch"
        failed.add(identifier)
    return failed, ""


# --------------------------------------------------------------------------------------------------------
# function configuration and code


@dataclass(frozen=True)
class FunctionConfig:
    """What the runtime needs of ``GetFunction`` (and ``GetFunctionConcurrency``)."""

    name: str
    arn: str
    version: str
    handler: str
    timeout: float
    memory_size: int
    environment: dict[str, str]
    code_sha256: str
    reserved_concurrency: int | None = None

    @classmethod
    def from_api(cls, response: dict[str, Any], concurrency: int | None) -> FunctionConfig:
        conf = response["Configuration"]
        return cls(
            name=conf["FunctionName"],
            arn=conf["FunctionArn"],
            version=str(conf.get("Version", "$LATEST")),
            handler=conf.get("Handler") or "",
            timeout=float(conf.get("Timeout", 3)),
            memory_size=int(conf.get("MemorySize", 128)),
            environment=dict((conf.get("Environment") or {}).get("Variables") or {}),
            code_sha256=conf.get("CodeSha256") or "",
            reserved_concurrency=concurrency,
        )

    def container_key(self) -> tuple[Any, ...]:
        """Changes when a warm worker can no longer serve this configuration."""
        return (
            self.code_sha256,
            self.handler,
            self.timeout,
            self.memory_size,
            sorted(self.environment.items()),
        )


class CodeError(RuntimeError):
    """The function's code cannot be obtained or unpacked."""


class CodeStore:
    """Extracted function zips under one temp dir, one directory per code sha256."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.root = Path(tempfile.mkdtemp(prefix="trailwatch-lambda-"))
        self.closed = False
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.root, True)  # also at interpreter exit
        self._lock = threading.Lock()

    def task_root(self, config: FunctionConfig) -> Path:
        """The directory holding the function's extracted zip (extracted on first use)."""
        with self._lock:
            digest = _hex_digest(config.code_sha256)
            code = None
            if digest is None:  # no CodeSha256 from the API: key by the bytes themselves
                code = self._code_bytes(config)
                digest = hashlib.sha256(code).hexdigest()
            target = self.root / digest
            if not target.is_dir():
                self._extract(code if code is not None else self._code_bytes(config), target, config)
        return target

    def _code_bytes(self, config: FunctionConfig) -> bytes:
        try:
            from moto.awslambda.models import lambda_backends
        except ImportError as err:  # pragma: no cover - moto is a dependency of the local AWS
            raise CodeError(f"function {config.name}: moto is not importable: {err}") from err
        account = config.arn.split(":")[4]
        try:
            function = lambda_backends[account][self.region].get_function(config.arn)
        except Exception as err:
            raise CodeError(
                f"function {config.name}: not found in this process's moto Lambda backend "
                f"(account {account}, region {self.region}): {err}"
            ) from err
        code = getattr(function, "code_bytes", b"") or b""
        if not code:
            raise CodeError(f"function {config.name}: no code (was its S3Bucket/S3Key missing at creation?)")
        actual = base64.b64encode(hashlib.sha256(code).digest()).decode()
        if config.code_sha256 and actual != config.code_sha256:
            raise CodeError(
                f"function {config.name}: code sha256 {actual} differs from the API's CodeSha256 "
                f"{config.code_sha256}"
            )
        return code

    def _extract(self, code: bytes, target: Path, config: FunctionConfig) -> None:
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=self.root))
        try:
            with zipfile.ZipFile(io.BytesIO(code)) as archive:
                archive.extractall(staging)
        except (zipfile.BadZipFile, OSError) as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise CodeError(f"function {config.name}: code is not a usable zip: {err}") from err
        staging.rename(target)

    def close(self) -> None:
        self.closed = True
        self._cleanup()


def _hex_digest(code_sha256: str) -> str | None:
    """The API's base64 CodeSha256 as hex (a directory name); None when absent or not a sha256."""
    try:
        digest = base64.b64decode(code_sha256, validate=True)
    except ValueError:
        return None
    return digest.hex() if len(digest) == 32 else None


# --------------------------------------------------------------------------------------------------------
# the worker subprocess


_TIMED_OUT = object()


class WorkerError(RuntimeError):
    """The invocation did not complete in the worker (init error, timeout, crash)."""


class Worker:
    """One warm execution environment: a ``lambda_worker.py`` subprocess serving invocations one by one."""

    def __init__(self, config: FunctionConfig, task_root: Path, env: dict[str, str], log: LogFn) -> None:
        self.config = config
        self.key = config.container_key()
        self.task_root = task_root
        self.env = env
        self.log = log
        self.prefix = f"[lambda:{config.name}]"
        self.process: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._requests: Any = None
        self._threads: list[threading.Thread] = []

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> float:
        """Start the process and wait for its init phase; returns the init duration in ms."""
        started = time.monotonic()
        req_read, req_write = os.pipe()
        resp_read, resp_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", str(WORKER_SCRIPT), str(req_read), str(resp_write)],
                pass_fds=(req_read, resp_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.task_root,
                start_new_session=True,
            )
        finally:
            os.close(req_read)
            os.close(resp_write)
        self._requests = os.fdopen(req_write, "w", encoding="utf-8")
        assert self.process.stdout is not None
        self._spawn(self._pump_output, self.process.stdout)
        self._spawn(self._read_replies, os.fdopen(resp_read, "rb"))
        reply = self._watched_reply(INIT_TIMEOUT)
        if reply is _TIMED_OUT:
            reply = None
        if reply is None or reply.get("type") != "ready":
            self.kill()
            raise WorkerError(_init_failure(reply))
        return (time.monotonic() - started) * 1000

    def invoke(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait for its reply; WorkerError (worker killed) on timeout or crash."""
        try:
            self._requests.write(json.dumps(request) + "\n")
            self._requests.flush()
        except (OSError, ValueError) as err:
            self.kill()
            raise WorkerError(f"worker unreachable: {err}") from err
        deadline = time.monotonic() + timeout
        while True:
            reply = self._watched_reply(max(0.0, deadline - time.monotonic()))
            if reply is _TIMED_OUT:
                self.kill()
                raise WorkerError(f"Task timed out after {timeout:.2f} seconds")
            if reply is None:
                raise WorkerError(f"worker process exited with code {self._exit_code()}")
            if reply.get("request_id") == request["request_id"]:
                return reply

    def _watched_reply(self, timeout: float) -> Any:
        """`_next_reply`, checking the worker's memory every MEMORY_POLL seconds while it waits: past the
        function's MemorySize the worker is killed and WorkerError says so, as Lambda ends an environment
        that runs out of memory (the init phase counts too)."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next_reply(min(MEMORY_POLL, max(0.0, deadline - time.monotonic())))
            used = self.memory_used_mb()
            if used is not None and used > self.config.memory_size:
                self.kill()
                raise WorkerError(
                    f"Runtime exited with error: signal: killed (Runtime.OutOfMemory: Max Memory Used "
                    f"{used:.0f} MB > MemorySize {self.config.memory_size} MB)"
                )
            if reply is not _TIMED_OUT or time.monotonic() >= deadline:
                return reply

    def memory_used_mb(self) -> float | None:
        """Peak resident memory (VmHWM) of the worker and its child processes in MB; None off Linux."""
        if self.process is None:
            return None
        total_kb, pending, seen = 0, [self.process.pid], set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
            with contextlib.suppress(OSError, ValueError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pending.extend(int(c) for c in (task / "children").read_text().split())
        return total_kb / 1024 if seen and total_kb else None

    def _next_reply(self, timeout: float) -> Any:
        """The next reply; None when the worker closed its end (died); _TIMED_OUT when none came in time."""
        try:
            return self._replies.get(timeout=timeout)
        except queue.Empty:
            return _TIMED_OUT

    def _exit_code(self) -> int | None:
        if self.process is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.process.wait(timeout=5)
        return None

    def kill(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # its own session: the function's children too
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        if self._requests is not None:
            with contextlib.suppress(OSError, ValueError):
                self._requests.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _spawn(self, target: Callable[[Any], None], stream: Any) -> None:
        thread = threading.Thread(
            target=target, args=(stream,), name=f"lambda-{self.config.name}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _pump_output(self, stream: Any) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self.log(f"{self.prefix} {raw.decode('utf-8', 'replace').rstrip()}")

    def _read_replies(self, stream: Any) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                try:
                    self._replies.put(json.loads(raw))
                except ValueError:
                    self.log(f"{self.prefix} runtime: unreadable worker reply {raw[:200]!r}")
        self._replies.put(None)


def _init_failure(reply: dict[str, Any] | None) -> str:
    if reply is None:
        return f"init failed: no ready message within {INIT_TIMEOUT:.0f} s (or the worker died)"
    error = reply.get("error") or {}
    return f"init failed: {error.get('errorType', '?')}: {error.get('errorMessage', reply)}"


# --------------------------------------------------------------------------------------------------------
# one function: configuration refresh, worker lifecycle, invocation


class FunctionHost:
    """The runtime's view of one function: its configuration (re-read at most once a second) and worker."""

    def __init__(self, arn: str, runtime: LambdaRuntime) -> None:
        self.arn = arn
        self.runtime = runtime
        self.lock = threading.Lock()
        self.config: FunctionConfig | None = None
        self._fetched_at = 0.0
        self.worker: Worker | None = None

    def current_config(self) -> FunctionConfig:
        if self.config is None or time.monotonic() - self._fetched_at >= self.runtime.refresh_interval:
            client = self.runtime.client("lambda")
            response = client.get_function(FunctionName=self.arn)
            name = response["Configuration"]["FunctionName"]
            concurrency = client.get_function_concurrency(FunctionName=name).get(
                "ReservedConcurrentExecutions"
            )
            self.config = FunctionConfig.from_api(response, None if concurrency is None else int(concurrency))
            self._fetched_at = time.monotonic()
        return self.config

    def invoke(self, event: dict[str, Any]) -> Outcome:
        with self.lock:
            try:
                config = self.current_config()
            except (ClientError, BotoCoreError) as err:
                return Outcome(ok=False, error=f"GetFunction {self.arn}: {err}")
            started = time.monotonic()
            outcome = self._invoke_locked(config, event)
            record_invocation(config.arn, ok=outcome.ok, duration_ms=(time.monotonic() - started) * 1000)
            return outcome

    def _invoke_locked(self, config: FunctionConfig, event: dict[str, Any]) -> Outcome:
        log = self.runtime.log
        prefix = f"[lambda:{config.name}]"
        request_id = str(uuid.uuid4())
        init_ms = None
        try:
            if self.worker is None or not self.worker.alive or self.worker.key != config.container_key():
                self.shutdown()
                self.worker = Worker(
                    config, self.runtime.code.task_root(config), self.runtime.env_for(config), log
                )
                init_ms = self.worker.start()
            log(f"{prefix} START RequestId: {request_id} Version: {config.version}")
            started = time.monotonic()
            reply = self.worker.invoke(
                {
                    "type": "invoke",
                    "request_id": request_id,
                    "event": event,
                    "deadline_ms": int(time.time() * 1000 + config.timeout * 1000),
                    "invoked_function_arn": config.arn,
                },
                config.timeout,
            )
        except (CodeError, WorkerError, OSError) as err:
            log(f"{prefix} {request_id} Error: {err}")
            self.shutdown()
            return Outcome(ok=False, error=str(err))
        duration = (time.monotonic() - started) * 1000
        init = f"\tInit Duration: {init_ms:.2f} ms" if init_ms is not None else ""
        log(f"{prefix} END RequestId: {request_id}")
        used = self.worker.memory_used_mb() if self.worker is not None else None
        memory = f"\tMemory Size: {config.memory_size} MB" + (
            f"\tMax Memory Used: {used:.0f} MB" if used is not None else ""
        )
        log(f"{prefix} REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms{memory}{init}")
        if reply.get("ok"):
            return Outcome(ok=True, payload=reply.get("payload"))
        error = reply.get("error") or {}
        return Outcome(ok=False, error=f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}")

    def shutdown(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.kill()


# --------------------------------------------------------------------------------------------------------
# one event source mapping: the poller


@dataclass
class Poller:
    """Polls one SQS queue for one event source mapping, in its own thread."""

    runtime: LambdaRuntime
    mapping: dict[str, Any]
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    _queue_url: str | None = None
    _last_problem: str = ""

    @property
    def queue_arn(self) -> str:
        return self.mapping["EventSourceArn"]

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"sqs-poller-{self.mapping['UUID']}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        sqs = self.runtime.client("sqs")
        while not self.stop_event.is_set() and not self.runtime.stopping.is_set():
            try:
                self._poll_once(sqs)
                self._last_problem = ""
            except (ClientError, BotoCoreError, OSError) as err:
                self._problem(f"polling {self.queue_arn}: {err}")
                self._queue_url = None
                self.stop_event.wait(self.runtime.refresh_interval)
            except Exception as err:  # a bug of ours must not silently end the poller
                self._problem(f"polling {self.queue_arn}: {type(err).__name__}: {err}")
                self.runtime.log("".join(traceback.format_exception(err)).rstrip())
                self.stop_event.wait(self.runtime.refresh_interval)

    def _problem(self, text: str) -> None:
        if text != self._last_problem:  # log a persistent problem once, not every second
            self.runtime.log(f"[lambda-runtime] {text}")
        self._last_problem = text

    def _poll_once(self, sqs: Any) -> None:
        mapping = self.mapping
        host = self.runtime.host(mapping["FunctionArn"])
        try:
            config = host.current_config()
        except (ClientError, BotoCoreError) as err:
            self._problem(f"function {mapping['FunctionArn']}: {err}")
            self.stop_event.wait(self.runtime.refresh_interval)
            return
        if config.reserved_concurrency == 0:
            self._problem(
                f"function {config.name}: ReservedConcurrentExecutions is 0 (throttled); not polling"
            )
            self.stop_event.wait(self.runtime.refresh_interval)
            return
        messages = self._gather(sqs, int(mapping.get("BatchSize") or 10), mapping)
        if not messages:
            return
        if self._should_stop():  # received but not invoked: hand them back at once
            self._release(sqs, messages)
            return
        records = [sqs_record(m, self.queue_arn, self.runtime.region) for m in messages]
        outcome = host.invoke({"Records": records})
        report = "ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or [])
        delete, reason = messages_to_delete(records, outcome, report)
        if reason:
            self.runtime.log(
                f"[lambda:{config.name}] batch of {len(records)} from {self.queue_arn}: {reason}"
            )
        self._delete(sqs, delete)

    def _should_stop(self) -> bool:
        return self.stop_event.is_set() or self.runtime.stopping.is_set()

    def _url(self, sqs: Any) -> str:
        if self._queue_url is None:
            _, _, _, _, account, name = self.queue_arn.split(":", 5)
            self._queue_url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return self._queue_url

    def _receive(self, sqs: Any, count: int, wait: int) -> list[dict[str, Any]]:
        response = sqs.receive_message(
            QueueUrl=self._url(sqs),
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages", [])

    def _gather(self, sqs: Any, batch_size: int, mapping: dict[str, Any]) -> list[dict[str, Any]]:
        """Up to BatchSize messages: the first long poll, then more until the batching window closes.

        A window longer than the queue's visibility timeout lets a gathered message come back and be received
        again (or be moved to the DLQ by moto) before the invocation -- as on AWS, which is why AWS asks for a
        visibility timeout well above the window. A message received twice is kept once, newest receipt.
        """
        first = self._receive(sqs, batch_size, POLL_WAIT_SECONDS)
        if not first:
            return []
        messages = {m["MessageId"]: m for m in first}
        window_end = time.monotonic() + float(mapping.get("MaximumBatchingWindowInSeconds") or 0)
        size = sum(len(m["Body"].encode()) for m in first)
        while len(messages) < batch_size and size < MAX_EVENT_BYTES // 2 and not self._should_stop():
            remaining = window_end - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(sqs, batch_size - len(messages), min(POLL_WAIT_SECONDS, int(remaining)))
            if not more and remaining < 1:
                time.sleep(min(remaining, 0.05))
            for message in more:
                if message["MessageId"] not in messages:
                    size += len(message["Body"].encode())
                messages[message["MessageId"]] = message
        return list(messages.values())

    def _release(self, sqs: Any, messages: list[dict[str, Any]]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ]
        for chunk in _chunks(entries, 10):
            with contextlib.suppress(ClientError, BotoCoreError):
                sqs.change_message_visibility_batch(QueueUrl=self._url(sqs), Entries=chunk)

    def _delete(self, sqs: Any, records: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(records)]
        for chunk in _chunks(entries, 10):
            failed = sqs.delete_message_batch(QueueUrl=self._url(sqs), Entries=chunk).get("Failed", [])
            for failure in failed:
                self.runtime.log(f"[lambda-runtime] delete from {self.queue_arn} failed: {failure}")


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------------------------------------
# the runtime


class LambdaRuntime:
    """Polls each SQS event source mapping like the Lambda service and runs the function locally."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        log: LogFn | None = None,
        *,
        refresh_interval: float = REFRESH_INTERVAL,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.refresh_interval = refresh_interval
        self.log: LogFn = _never_raising(log or _stderr_log)
        self.stopping = threading.Event()
        self.code = CodeStore(region)
        self._pollers: dict[str, Poller] = {}
        self._hosts: dict[str, FunctionHost] = {}
        self._hosts_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._clients: threading.local = threading.local()
        self._last_problem = ""

    # ---- public interface

    def start(self) -> None:
        """Start discovering mappings (moto's Docker path is disabled first)."""
        if self._thread is not None:
            return
        disable_moto_lambda_docker()
        if self.code.closed:
            self.code = CodeStore(self.region)
        self.stopping.clear()
        self._thread = threading.Thread(target=self._discover_loop, name="lambda-runtime", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling, let an in-flight invocation finish briefly, kill the workers, remove the code."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        pollers = list(self._pollers.values())
        self._pollers.clear()
        for poller in pollers:
            poller.stop_event.set()
        deadline = time.monotonic() + STOP_GRACE
        for poller in pollers:
            if poller.thread is not None:
                poller.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._hosts_lock:
            hosts = list(self._hosts.values())
            self._hosts.clear()
        for host in hosts:
            host.shutdown()
        for poller in pollers:
            if poller.thread is not None:
                poller.thread.join(timeout=5)
        self.code.close()

    def __enter__(self) -> LambdaRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- shared by pollers and hosts

    def client(self, service: str) -> Any:
        """A boto3 client for the emulator, one per thread and service (not shared across threads).

        Marked internal: the Lambda service's own polling is not in the account's CloudTrail, so the recorder
        skips these requests (the function's own calls, made from the worker, are recorded).
        """
        cache = self._clients.__dict__
        if service not in cache:
            cache[service] = self._new_client(service)
        return cache[service]

    def _new_client(self, service: str) -> Any:
        from trailwatch.local.recorder import mark_internal

        return mark_internal(
            boto3.session.Session().client(
                service,
                endpoint_url=self.endpoint,
                region_name=self.region,
                aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                config=BotoConfig(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=30),
            )
        )

    def host(self, function_arn: str) -> FunctionHost:
        with self._hosts_lock:
            if function_arn not in self._hosts:
                self._hosts[function_arn] = FunctionHost(function_arn, self)
            return self._hosts[function_arn]

    def env_for(self, config: FunctionConfig) -> dict[str, str]:
        """The worker's environment: a Lambda-like one, not the host's (no profile, no PYTHONPATH)."""
        stream = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[{config.version}]{uuid.uuid4().hex}"
        base = {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8", "TZ": ":UTC"}
        reserved = {
            **TEST_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": config.version,
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "_HANDLER": config.handler,
            "LAMBDA_TASK_ROOT": str(self.code.task_root(config)),
        }
        return {**base, **config.environment, **reserved}

    # ---- discovery

    def _discover_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self._sync(self._sqs_mappings())
                self._last_problem = ""
            except (ClientError, BotoCoreError, OSError) as err:
                if str(err) != self._last_problem:
                    self.log(f"[lambda-runtime] ListEventSourceMappings: {err}")
                self._last_problem = str(err)
            self.stopping.wait(self.refresh_interval)

    def _sqs_mappings(self) -> dict[str, dict[str, Any]]:
        paginator = self.client("lambda").get_paginator("list_event_source_mappings")
        found: dict[str, dict[str, Any]] = {}
        for page in paginator.paginate():
            for mapping in page.get("EventSourceMappings", []):
                if _is_sqs_arn(mapping.get("EventSourceArn", "")) and mapping.get("State") == "Enabled":
                    found[mapping["UUID"]] = mapping
        return found

    def _sync(self, mappings: dict[str, dict[str, Any]]) -> None:
        for mapping_id in list(self._pollers):
            if mapping_id not in mappings:
                self._pollers.pop(mapping_id).stop_event.set()
                self.log(f"[lambda-runtime] stopped polling for mapping {mapping_id}")
        for mapping_id, mapping in mappings.items():
            poller = self._pollers.get(mapping_id)
            if poller is not None:
                poller.mapping = mapping  # picks up BatchSize, window, response types, function changes
                continue
            if self.stopping.is_set():
                return
            poller = Poller(self, mapping)
            self._pollers[mapping_id] = poller
            poller.start()
            self.log(
                f"[lambda-runtime] polling {mapping['EventSourceArn']} for {mapping['FunctionArn']} "
                f"(BatchSize {mapping.get('BatchSize')}, mapping {mapping_id})"
            )
            if mapping.get("FilterCriteria"):
                self.log(
                    f"[lambda-runtime] mapping {mapping_id}: FilterCriteria is not emulated; "
                    "every message is delivered to the function"
                )


def _is_sqs_arn(arn: str) -> bool:
    parts = arn.split(":")
    return len(parts) == 6 and parts[0] == "arn" and parts[2] == "sqs"


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _never_raising(log: LogFn) -> LogFn:
    """A failing log sink must not stop a poller or the thread draining a worker's output."""

    def safe(message: str) -> None:
        with contextlib.suppress(Exception):
            log(message)

    return safe
