"""One Lambda function as the runtime sees it: its configuration, its code, its warm worker.

`FunctionHost` re-reads the function's configuration through the Lambda API (at most once per refresh
interval), replaces the worker when the code, handler, Timeout, MemorySize or environment changed, invokes it
and writes START/END/REPORT lines as CloudWatch Logs shows them; each invocation is put as a Lambda metric
(`alarms.record_invocation`). `CodeStore` holds the extracted zips.

The code is read from moto's Lambda backend in this process: moto's ``GetFunction`` returns a
``Code.Location`` that points at a made-up AWS URL, so the API cannot hand us the bytes. The digest is
checked against the API's ``CodeSha256``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import tempfile
import threading
import time
import uuid
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from trailwatch.local.alarms import record_invocation
from trailwatch.local.lambda_process import Worker, WorkerError

if TYPE_CHECKING:
    from trailwatch.local.lambda_runtime import LambdaRuntime


@dataclass
class Outcome:
    """Result of invoking the function with one batch."""

    ok: bool
    payload: Any = None
    error: str = ""


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
    role: str = ""  # the execution role: the worker acts as it (LambdaRuntime.env_for)

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
            role=conf.get("Role") or "",
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
# one function: configuration refresh, worker lifecycle, invocation


class FunctionHost:
    """The runtime's view of one function: its configuration (re-read at most once a second) and workers.

    A pool of warm workers, one per concurrent invocation (as Lambda keeps one execution environment per
    concurrent request): `invoke` takes an idle worker whose configuration still matches, or starts one. The
    number of invocations in flight is bounded by the function's reserved concurrency, when set; each
    mapping's poller bounds its own share (`lambda_sqs.Poller.concurrency`).
    """

    def __init__(self, arn: str, runtime: LambdaRuntime) -> None:
        self.arn = arn
        self.runtime = runtime
        self.lock = threading.Lock()  # the configuration refresh
        self.config: FunctionConfig | None = None
        self._fetched_at = 0.0
        self._pool = threading.Condition()
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self.in_flight = 0

    @property
    def worker(self) -> Worker | None:
        """The most recently used warm worker (None before the first invocation)."""
        with self._pool:
            if self._idle:
                return self._idle[-1]
            return next(iter(self._busy), None)

    def current_config(self) -> FunctionConfig:
        with self.lock:
            if self.config is None or time.monotonic() - self._fetched_at >= self.runtime.refresh_interval:
                client = self.runtime.client("lambda")
                response = client.get_function(FunctionName=self.arn)
                name = response["Configuration"]["FunctionName"]
                concurrency = client.get_function_concurrency(FunctionName=name).get(
                    "ReservedConcurrentExecutions"
                )
                self.config = FunctionConfig.from_api(
                    response, None if concurrency is None else int(concurrency)
                )
                self._fetched_at = time.monotonic()
            return self.config

    def invoke(self, event: dict[str, Any]) -> Outcome:
        try:
            config = self.current_config()
        except (ClientError, BotoCoreError) as err:
            return Outcome(ok=False, error=f"GetFunction {self.arn}: {err}")
        worker = self._acquire(config)
        try:
            started = time.monotonic()
            outcome, worker = self._invoke_in(worker, config, event)
            record_invocation(config.arn, ok=outcome.ok, duration_ms=(time.monotonic() - started) * 1000)
            return outcome
        finally:
            self._release(worker)

    def _acquire(self, config: FunctionConfig) -> Worker | None:
        """Wait for a slot under the reserved concurrency; an idle matching worker, or None (start one)."""
        limit = config.reserved_concurrency
        stale: list[Worker] = []
        with self._pool:
            while limit and self.in_flight >= limit and not self.runtime.stopping.is_set():
                self._pool.wait(0.1)
            self.in_flight += 1
            found = None
            while self._idle:
                candidate = self._idle.pop()
                if candidate.alive and candidate.key == config.container_key():
                    found = candidate
                    break
                stale.append(candidate)
            if found is not None:
                self._busy.add(found)
        for old in stale:  # a changed configuration: its workers go (outside the pool lock)
            old.kill()
        return found

    def _release(self, worker: Worker | None) -> None:
        with self._pool:
            self.in_flight -= 1
            if worker is not None:
                self._busy.discard(worker)
                if worker.alive and not self.runtime.stopping.is_set():
                    self._idle.append(worker)
            self._pool.notify_all()
        if worker is not None and self.runtime.stopping.is_set():
            worker.kill()

    def _invoke_in(
        self, worker: Worker | None, config: FunctionConfig, event: dict[str, Any]
    ) -> tuple[Outcome, Worker | None]:
        log = self.runtime.log
        prefix = f"[lambda:{config.name}]"
        request_id = str(uuid.uuid4())
        init_ms = None
        try:
            if worker is None:
                worker = Worker(
                    config, self.runtime.code.task_root(config), self.runtime.env_for(config), log
                )
                with self._pool:
                    self._busy.add(worker)
                init_ms = worker.start()
            log(f"{prefix} START RequestId: {request_id} Version: {config.version}")
            started = time.monotonic()
            reply = worker.invoke(
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
            if worker is not None:
                worker.kill()
            return Outcome(ok=False, error=str(err)), worker
        duration = (time.monotonic() - started) * 1000
        init = f"\tInit Duration: {init_ms:.2f} ms" if init_ms is not None else ""
        log(f"{prefix} END RequestId: {request_id}")
        used = worker.memory_used_mb()
        memory = f"\tMemory Size: {config.memory_size} MB" + (
            f"\tMax Memory Used: {used:.0f} MB" if used is not None else ""
        )
        log(f"{prefix} REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms{memory}{init}")
        if reply.get("ok"):
            return Outcome(ok=True, payload=reply.get("payload")), worker
        error = reply.get("error") or {}
        return Outcome(
            ok=False, error=f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"
        ), worker

    def shutdown(self) -> None:
        """Kill every worker, idle or busy (an in-flight invocation then fails)."""
        with self._pool:
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
        for worker in workers:
            worker.kill()
