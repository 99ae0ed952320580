"""Local Lambda runtime for SQS event source mappings: the emulator's stand-in for the Lambda service.

What it does, as the Lambda service does for an SQS trigger, and where:

- `LambdaRuntime` (here) discovers event source mappings through the Lambda API (``ListEventSourceMappings``
  on the emulator, refreshed every second by default); each Enabled mapping whose source is an SQS queue gets
  a poller, and a mapping that disappears loses it;
- `lambda_sqs.Poller` long-polls the queue, builds the Lambda SQS event, invokes the function and deletes what
  the Lambda service would (all on success, all but the ``batchItemFailures`` with ReportBatchItemFailures,
  nothing on a failed invocation); `lambda_sqs.add_message` keeps moto's own SQS -> Lambda path from running;
- `lambda_host.FunctionHost` runs the function from the zip it was created with (CodeSha256-verified,
  extracted into a temp dir keyed by that digest) in warm `lambda_process.Worker` subprocesses
  (``lambda_worker.py``, a pool: one per concurrent invocation) with the function's environment
  (`LambdaRuntime.env_for`), a Lambda-like context,
  its AWS calls pointed at the emulator, its Timeout and its MemorySize enforced (the worker is killed and
  replaced on timeout, on a peak resident memory of the worker and its children above MemorySize -- checked
  every 50 ms on Linux -- or on a crash). Its stdout/stderr go to ``log`` as ``[lambda:NAME] ...`` lines,
  with START/END/REPORT lines as in CloudWatch Logs;
- the runtime's own requests (polling, deleting, reading the configuration) are marked internal for the
  CloudTrail recorder, since AWS does not log the Lambda service's polling in the account's trail; the
  function's own calls are ordinary requests.

Concurrency: each mapping runs up to ``ScalingConfig.MaximumConcurrency`` invocations at once (one without a
ScalingConfig, at most 16 locally), each in its own warm worker of the function's pool; the function's
ReservedConcurrentExecutions bounds its invocations in flight across its mappings.

Deliberate limits: a mapping without ScalingConfig runs one invocation at a time (Lambda would scale out to
many concurrent environments); ReservedConcurrentExecutions = 0 means the function is throttled, and
its queues are then not polled at all (messages wait in the queue instead of cycling through receives);
FilterCriteria, MaximumRetryAttempts and DynamoDB/Kinesis sources are not emulated. As on
AWS, a batching window longer than the queue's visibility timeout lets gathered messages come back (and
be redriven) before the invocation.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from trailwatch.local import moto_patches
from trailwatch.local.lambda_host import CodeStore, FunctionConfig, FunctionHost
from trailwatch.local.lambda_process import LogFn
from trailwatch.local.lambda_sqs import POLL_WAIT_SECONDS as POLL_WAIT_SECONDS  # for the e2e tests
from trailwatch.local.lambda_sqs import Poller
from trailwatch.local.periodic import PeriodicThread

REFRESH_INTERVAL = 1.0  # seconds between ListEventSourceMappings / GetFunction refreshes
STOP_GRACE = 5.0  # how long stop() lets an in-flight invocation finish before killing its worker
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


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
        self._discovery = PeriodicThread(
            "lambda-runtime", refresh_interval, self._discover, self._discovery_failed, immediately=True
        )
        self._clients: threading.local = threading.local()
        self._last_problem = ""

    # ---- public interface

    def start(self) -> None:
        """Start discovering mappings (after installing moto_patches, which turns moto's Docker path off)."""
        if self._discovery.running:
            return
        moto_patches.install()
        if self.code.closed:
            self.code = CodeStore(self.region)
        self.stopping.clear()
        self._discovery.start()

    def stop(self) -> None:
        """Stop polling, let an in-flight invocation finish briefly, kill the workers, remove the code."""
        self.stopping.set()
        self._discovery.stop(timeout=10)
        pollers = list(self._pollers.values())
        self._pollers.clear()
        for poller in pollers:
            poller.stop_event.set()
        deadline = time.monotonic() + STOP_GRACE
        for poller in pollers:
            poller.join(max(0.0, deadline - time.monotonic()))
        with self._hosts_lock:
            hosts = list(self._hosts.values())
            self._hosts.clear()
        for host in hosts:
            host.shutdown()
        for poller in pollers:
            poller.join(5)
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
            **self.role_credentials(config.role),
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

    def role_credentials(self, role_arn: str) -> dict[str, str]:
        """The execution role's credentials (sts:AssumeRole, as Lambda does), so that the function's calls
        are the role's: a bucket or key policy of another account naming the role admits them. The
        account's test keys when the role cannot be assumed (a function created without a real role)."""
        if not role_arn:
            return dict(TEST_CREDENTIALS)
        try:
            creds = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="lambda")["Credentials"]
        except (ClientError, BotoCoreError) as err:
            self.log(f"[lambda-runtime] cannot assume {role_arn} ({err}): running with the test keys")
            return dict(TEST_CREDENTIALS)
        return {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }

    # ---- discovery

    def _discover(self) -> None:
        self._sync(self._sqs_mappings())
        self._last_problem = ""

    def _discovery_failed(self, err: Exception) -> None:
        expected = isinstance(err, (ClientError, BotoCoreError, OSError))
        problem = str(err) if expected else f"{type(err).__name__}: {err}"  # a bug of ours: keep discovering
        if problem != self._last_problem:  # log a persistent problem once, not every second
            self.log(f"[lambda-runtime] ListEventSourceMappings: {problem}")
        self._last_problem = problem

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
                poller.mapping = (
                    mapping  # picks up BatchSize, window, scaling, response types, function changes
                )
                poller.scale()
                continue
            if self.stopping.is_set():
                return
            poller = Poller(self, mapping)
            self._pollers[mapping_id] = poller
            poller.start()
            self.log(
                f"[lambda-runtime] polling {mapping['EventSourceArn']} for {mapping['FunctionArn']} "
                f"(BatchSize {mapping.get('BatchSize')}, concurrency up to {poller.concurrency()}, "
                f"mapping {mapping_id})"
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
