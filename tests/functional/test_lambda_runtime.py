"""The local Lambda runtime against moto's server on loopback (in this process, so backends are shared).

The function under test is a stand-in built here (not trailwatch's processor): package
``trailwatch_processor`` with a module ``standin`` -- the same top-level name as the host's editable install,
so import isolation is tested for real. Each invocation first reports what it saw (event, environment,
context, its own file) to a results queue, then acts on each message body's ``action``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from moto.server import ThreadedMotoServer
from trailwatch.local import lambda_worker
from trailwatch.local.lambda_host import Outcome
from trailwatch.local.lambda_runtime import LambdaRuntime
from trailwatch.local.lambda_sqs import messages_to_delete, sqs_record
from trailwatch.local.recorder import INTERNAL_HEADER

from tests.polling import wait_until

REGION = "us-east-1"
REFRESH = 0.25  # the runtime's discovery / configuration refresh interval in these tests
ROLE_ARN = "arn:aws:iam::123456789012:role/standin-lambda"
HANDLER = "trailwatch_processor.standin.handler"

STANDIN_SOURCE = """
import json
import os
import sys
import time

import boto3

CODE_VERSION = "{version}"
_sqs = boto3.client("sqs")  # init phase, once per worker


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def handler(event, context):
    _sqs.send_message(
        QueueUrl=os.environ["RESULTS_URL"],
        MessageBody=json.dumps(
            {{
                "event": event,
                "version": CODE_VERSION,
                "pid": os.getpid(),
                "started": time.time(),
                "file": __file__,
                "package_file": sys.modules["trailwatch_processor"].__file__,
                "cwd": os.getcwd(),
                "env": dict(os.environ),
                "importable": {{n: _importable(n) for n in ("trailwatch", "trailwatch_processor.records")}},
                "context": {{
                    "function_name": context.function_name,
                    "aws_request_id": context.aws_request_id,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "invoked_function_arn": context.invoked_function_arn,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                    "log_group_name": context.log_group_name,
                    "log_stream_name": context.log_stream_name,
                }},
            }}
        ),
    )
    failures = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        action = body.get("action", "ok")
        if action == "print":
            print("standin says " + body["text"])
        elif action == "raise":
            raise RuntimeError("standin exploded on " + body.get("text", "?"))
        elif action == "sleep":
            time.sleep(body["seconds"])
        elif action == "crash":
            os._exit(3)
        elif action == "fail":
            failures.append({{"itemIdentifier": record["messageId"]}})
        elif action == "bogus":
            failures.append({{"itemIdentifier": "no-such-message-id"}})
    return {{"batchItemFailures": failures}}
"""


def standin_zip(version: str = "v1") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in (
            ("trailwatch_processor/__init__.py", ""),
            ("trailwatch_processor/standin.py", STANDIN_SOURCE.format(version=version)),
        ):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), text)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def docker_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Any attempt to reach Docker is recorded and fails."""
    calls: list[tuple[Any, ...]] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise docker.errors.DockerException("no Docker in these tests")

    monkeypatch.setattr(docker, "from_env", refuse)
    return calls


class Log:
    """Thread-safe collector standing in for the emulator's log."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def says(self, function: str, phrase: str) -> bool:
        """Some line of the function's log output (prefixed ``[lambda:NAME]``) contains the phrase."""
        with self._lock:
            return any(line.startswith(f"[lambda:{function}] ") and phrase in line for line in self.lines)


@pytest.fixture(scope="module")
def log() -> Log:
    return Log()


@pytest.fixture(scope="module")
def runtime(endpoint: str, log: Log) -> Iterator[LambdaRuntime]:
    """One runtime for the module (for REGION only); each test uses its own function and queues."""
    rt = LambdaRuntime(endpoint, REGION, log, refresh_interval=REFRESH)
    rt.start()
    yield rt
    rt.stop()


@dataclass
class Stack:
    """One stand-in function wired to its own queue (with a DLQ) and a results queue."""

    client_for: Callable[[str], Any]
    name: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    results_url: str
    function_arn: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)

    def send(self, *bodies: dict[str, Any], **kwargs: Any) -> list[str]:
        sqs = self.client_for("sqs")
        return [
            sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(b), **kwargs)["MessageId"]
            for b in bodies
        ]

    def reports(self) -> list[dict[str, Any]]:
        """All invocation reports so far (drains the results queue into `seen`)."""
        sqs = self.client_for("sqs")
        while True:
            got = sqs.receive_message(QueueUrl=self.results_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return self.seen
            for message in got:
                self.seen.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.results_url, ReceiptHandle=message["ReceiptHandle"])

    def invocations_of(self, message_id: str) -> list[dict[str, Any]]:
        return [
            record
            for report in self.reports()
            for record in report["event"]["Records"]
            if record["messageId"] == message_id
        ]

    def counts(self, url: str) -> int:
        attributes = self.client_for("sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def dlq_bodies(self) -> list[dict[str, Any]]:
        got = self.client_for("sqs").receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]

    def deploy(
        self,
        code: dict[str, Any] | None = None,
        *,
        timeout: int = 3,
        env: dict[str, str] | None = None,
        handler: str = HANDLER,
    ) -> str:
        response = self.client_for("lambda").create_function(
            FunctionName=self.name,
            Runtime="python3.11",
            Role=ROLE_ARN,
            Handler=handler,
            Code=code or {"ZipFile": standin_zip()},
            Timeout=timeout,
            MemorySize=256,
            Environment={"Variables": {"RESULTS_URL": self.results_url, **(env or {})}},
        )
        self.function_arn = response["FunctionArn"]
        return self.function_arn

    def map(self, **settings: Any) -> dict[str, Any]:
        return self.client_for("lambda").create_event_source_mapping(
            EventSourceArn=self.queue_arn, FunctionName=self.name, **settings
        )


@pytest.fixture
def client_for(endpoint: str) -> Callable[..., Any]:
    def client(service: str, region: str = REGION) -> Any:
        return boto3.client(service, endpoint_url=endpoint, region_name=region)

    return client


@pytest.fixture
def make_stack(client_for: Callable[..., Any]) -> Callable[..., Stack]:
    iam = client_for("iam")
    try:
        iam.create_role(RoleName="standin-lambda", AssumeRolePolicyDocument="{}")
    except iam.exceptions.EntityAlreadyExistsException:
        pass

    def make(
        visibility_timeout: int = 1, max_receive_count: int = 2, region: str = REGION, deploy: bool = False
    ) -> Stack:
        """The queues of a new stand-in function; ``deploy`` also creates the function with the defaults."""

        def regional(service: str) -> Any:
            return client_for(service, region)

        sqs = regional("sqs")
        name = f"standin-{uuid.uuid4().hex[:8]}"
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
        queue_url = sqs.create_queue(
            QueueName=name,
            Attributes={"VisibilityTimeout": str(visibility_timeout), "RedrivePolicy": redrive},
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        results_url = sqs.create_queue(QueueName=f"{name}-results")["QueueUrl"]
        stack = Stack(regional, name, queue_url, queue_arn, dlq_url, results_url)
        if deploy:
            stack.deploy()
        return stack

    return make


REPORT_BATCH = {"FunctionResponseTypes": ["ReportBatchItemFailures"]}


# ---------------------------------------------------------------------------------------------------------
# moto's own path


MOTO_DOCKER_PROBE = """
import io, json, sys, zipfile
import boto3, docker
from moto.server import ThreadedMotoServer

calls = []
def refuse(*args, **kwargs):
    calls.append(1)
    raise docker.errors.DockerException("no Docker here")
docker.from_env = refuse

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
def client(name):
    return boto3.client(name, endpoint_url=f"http://{host}:{port}", region_name="eu-west-1",
                        aws_access_key_id="test", aws_secret_access_key="test")
client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")
code = io.BytesIO()
with zipfile.ZipFile(code, "w") as archive:
    archive.writestr("m.py", "def h(event, context):\\n    return None\\n")
client("lambda").create_function(FunctionName="f", Runtime="python3.11", Handler="m.h",
                                 Role="arn:aws:iam::123456789012:role/r", Code={"ZipFile": code.getvalue()})
sqs = client("sqs")
url = sqs.create_queue(QueueName="q")["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
client("lambda").create_event_source_mapping(EventSourceArn=arn, FunctionName="f")

def send_and_receive(body):
    try:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    except Exception:
        pass
    got = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"]).get("Messages", [])
    for message in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in got]

result = {"before": send_and_receive("one"), "calls_before": len(calls)}
from trailwatch.local import moto_patches
from trailwatch.local.lambda_sqs import add_message
row = tuple(p for p in moto_patches.PATCHES if p.replacement is add_message)
moto_patches.install(row)  # the queue and its mapping exist already
moto_patches.install(row)  # idempotent
result.update(after=send_and_receive("two"), calls_after=len(calls) - result["calls_before"])
server.stop()
print(json.dumps(result))
"""


def test_moto_docker_path_disabled_messages_stay_receivable() -> None:
    """In a fresh interpreter (the patch is process-wide): moto tries Docker on SendMessage to a mapped queue
    and consumes a receive; with the table's `Queue.add_message` row installed it does neither."""
    done = subprocess.run(
        [sys.executable, "-c", MOTO_DOCKER_PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["calls_before"] >= 1  # moto's own path is real: the probe would catch a regression
    assert result["after"] == [["two", "1"]]  # receivable, and nobody received it before us
    assert result["calls_after"] == 0


@pytest.mark.usefixtures("aws")
def test_fifo_deduplication_survives_the_add_message_replacement() -> None:
    """The replacement of moto's `Queue.add_message` keeps its FIFO deduplication (a second send with the
    same MessageDeduplicationId within 5 minutes is accepted and not queued)."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="dedup.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for body in ("first", "second"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId="same")
    sqs.send_message(QueueUrl=url, MessageBody="third", MessageGroupId="g", MessageDeduplicationId="other")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in got] == ["first", "third"]


# ---------------------------------------------------------------------------------------------------------
# partial batch responses (pure)


def _records(*ids: str) -> list[dict[str, Any]]:
    return [{"messageId": i, "receiptHandle": f"rh-{i}"} for i in ids]


@pytest.mark.parametrize(
    ("outcome", "report", "kept"),
    [
        (Outcome(ok=True, payload=None), True, ["a", "b", "c"]),
        (Outcome(ok=True, payload={}), True, ["a", "b", "c"]),
        (Outcome(ok=True, payload={"batchItemFailures": []}), True, ["a", "b", "c"]),
        (Outcome(ok=True, payload={"batchItemFailures": None}), True, ["a", "b", "c"]),
        (Outcome(ok=True, payload={"batchItemFailures": [{"itemIdentifier": "b"}]}), True, ["a", "c"]),
        (Outcome(ok=True, payload={"batchItemFailures": [{"itemIdentifier": "b"}]}), False, ["a", "b", "c"]),
        (Outcome(ok=True, payload={"batchItemFailures": [{"itemIdentifier": "zz"}]}), True, []),
        (Outcome(ok=True, payload={"batchItemFailures": [{"itemIdentifier": ""}]}), True, []),
        (Outcome(ok=True, payload={"batchItemFailures": [{"itemIdentifier": None}]}), True, []),
        (Outcome(ok=True, payload={"batchItemFailures": [{"id": "b"}]}), True, []),
        (Outcome(ok=True, payload={"batchItemFailures": "b"}), True, []),
        (Outcome(ok=True, payload="ok"), True, []),
        (Outcome(ok=True, payload="ok"), False, ["a", "b", "c"]),
        (Outcome(ok=False, error="boom"), True, []),
        (Outcome(ok=False, error="boom"), False, []),
    ],
)
def test_messages_to_delete(outcome: Outcome, report: bool, kept: list[str]) -> None:
    delete, reason = messages_to_delete(_records("a", "b", "c"), outcome, report)
    assert [r["messageId"] for r in delete] == kept
    assert bool(reason) == (kept != ["a", "b", "c"])


def test_sqs_record_shape() -> None:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh",
        "Body": "hello",
        "MD5OfBody": "5d41402abc4b2a76b9719d911017c592",
        "MD5OfMessageAttributes": "abc",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1"},
        "MessageAttributes": {
            "s": {"DataType": "String", "StringValue": "v"},
            "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    }
    record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    assert record == {
        "messageId": "m-1",
        "receiptHandle": "rh",
        "body": "hello",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1"},
        "messageAttributes": {
            "s": {"stringValue": "v", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "b": {
                "binaryValue": "AAE=",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "md5OfMessageAttributes": "abc",
        "md5OfBody": "5d41402abc4b2a76b9719d911017c592",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


class _EditableFinder:
    """Stands for setuptools' generated editable finder (module ``__editable___<dist>_finder``)."""

    __module__ = "__editable___demo_0_1_finder"


def test_isolate_imports_keeps_only_the_task_root_and_the_installation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Both kinds of editable install are dropped: a meta-path finder and a source directory on sys.path."""
    stdlib = str(Path(json.__file__).parent.parent)
    site_packages = str(Path(boto3.__file__).parent.parent)
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, _EditableFinder])
    monkeypatch.setattr(sys, "path_hooks", list(sys.path_hooks))
    monkeypatch.setattr(sys, "path", [stdlib, str(tmp_path / "src"), site_packages])
    monkeypatch.setattr(sys, "path_importer_cache", {})

    lambda_worker.isolate_imports(str(tmp_path / "task"))

    assert sys.path == [str(tmp_path / "task"), stdlib, site_packages]
    assert _EditableFinder not in sys.meta_path
    assert len(sys.meta_path) >= 2  # the standard finders stay


# ---------------------------------------------------------------------------------------------------------
# the runtime end to end


@pytest.mark.e2e
def test_batch_processed_deleted_with_lambda_event_env_context_and_isolation(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], log: Log, docker_calls: list[tuple[Any, ...]]
) -> None:
    stack = make_stack()
    stack.deploy(env={"GREETING": "hi", "AWS_PROFILE_IN_FUNCTION": "kept"}, timeout=7)
    stack.map(BatchSize=10, **REPORT_BATCH)
    bodies = [{"action": "print", "text": f"message-{i}"} for i in range(4)]
    sent = stack.send(*bodies, MessageAttributes={"kind": {"DataType": "String", "StringValue": "probe"}})

    wait_until(lambda: stack.counts(stack.queue_url) == 0, what="the queue to be emptied")
    records = [r for report in stack.reports() for r in report["event"]["Records"]]
    assert sorted(r["messageId"] for r in records) == sorted(sent)  # each processed exactly once
    for record in records:
        assert set(record) == {
            "messageId", "receiptHandle", "body", "attributes", "messageAttributes",
            "md5OfMessageAttributes", "md5OfBody", "eventSource", "eventSourceARN", "awsRegion",
        }  # fmt: skip
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == stack.queue_arn
        assert record["awsRegion"] == REGION
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
        assert record["messageAttributes"] == {
            "kind": {
                "stringValue": "probe",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        }

    report = stack.reports()[0]
    env, context = report["env"], report["context"]
    assert env["GREETING"] == "hi" and env["AWS_PROFILE_IN_FUNCTION"] == "kept"
    assert env["AWS_ENDPOINT_URL"] == runtime.endpoint
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == (REGION, REGION)
    # the execution role's session (sts:AssumeRole, as Lambda gives it), not the account's test keys
    assert env["AWS_ACCESS_KEY_ID"].startswith("ASIA") and env["AWS_SESSION_TOKEN"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == stack.name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["_HANDLER"] == HANDLER
    assert "PYTHONPATH" not in env and "AWS_PROFILE" not in env
    assert context["function_name"] == stack.name
    assert context["invoked_function_arn"] == stack.function_arn
    assert context["memory_limit_in_mb"] == "256"
    assert context["log_group_name"] == f"/aws/lambda/{stack.name}"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", context["log_stream_name"])
    assert 5000 < context["remaining_ms"] <= 7000  # Timeout=7
    uuid.UUID(context["aws_request_id"])

    import trailwatch_processor.records  # noqa: F401  (on the host: the leak checked below would be real)

    task_root = Path(env["LAMBDA_TASK_ROOT"])
    assert task_root.parent == runtime.code.root  # extracted zip, keyed by the code sha256
    assert task_root.name == hashlib.sha256(standin_zip()).hexdigest()
    assert Path(report["file"]) == task_root / "trailwatch_processor" / "standin.py"
    assert Path(report["package_file"]).parent.parent == task_root
    assert Path(report["cwd"]) == task_root
    # the host's editable install (trailwatch, trailwatch_processor.records exist there) does not leak in
    assert report["importable"] == {"trailwatch": False, "trailwatch_processor.records": False}

    text = wait_until(lambda: "standin says message-3" in log.text() and log.text(), what="the prints in log")
    for i in range(4):
        assert f"[lambda:{stack.name}] standin says message-{i}" in text
    assert f"[lambda:{stack.name}] START RequestId: {context['aws_request_id']}" in text
    assert docker_calls == []


@pytest.mark.e2e
def test_code_is_the_zip_the_function_was_created_with(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], client_for: Callable[[str], Any]
) -> None:
    stack = make_stack()
    s3 = client_for("s3")
    bucket = f"code-{stack.name}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="fn.zip", Body=standin_zip("from-s3-v1"))
    stack.deploy({"S3Bucket": bucket, "S3Key": "fn.zip"})
    s3.put_object(Bucket=bucket, Key="fn.zip", Body=standin_zip("overwritten"))  # no effect on the function
    stack.map()

    stack.send({"action": "ok"})
    first = wait_until(lambda: stack.reports() and stack.reports()[0], what="an invocation")
    assert first["version"] == "from-s3-v1"
    assert (
        Path(first["env"]["LAMBDA_TASK_ROOT"]).name == hashlib.sha256(standin_zip("from-s3-v1")).hexdigest()
    )

    client_for("lambda").update_function_code(FunctionName=stack.name, ZipFile=standin_zip("updated"))
    time.sleep(REFRESH + 0.2)  # the runtime re-reads the configuration at most once per refresh interval
    stack.send({"action": "ok"})
    second = wait_until(lambda: len(stack.reports()) > 1 and stack.reports()[1], what="a second invocation")
    assert second["version"] == "updated"
    assert second["pid"] != first["pid"]  # new code, new worker


@pytest.mark.e2e
def test_warm_worker_is_reused(runtime: LambdaRuntime, make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(deploy=True)
    stack.map(BatchSize=1)
    stack.send({"action": "ok"}, {"action": "ok"}, {"action": "ok"})
    reports = wait_until(lambda: len(stack.reports()) >= 3 and stack.reports(), what="three invocations")
    assert len({r["pid"] for r in reports}) == 1
    assert [len(r["event"]["Records"]) for r in reports] == [1, 1, 1]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("scaling", "reserved", "overlap"),
    [
        pytest.param(None, None, False, id="no-scaling-config-one-at-a-time"),
        pytest.param(2, None, True, id="maximum-concurrency-2-overlaps"),
        pytest.param(2, 1, False, id="reserved-concurrency-1-bounds-it"),
    ],
)
def test_mapping_concurrency_runs_invocations_in_parallel_workers(
    runtime: LambdaRuntime,
    make_stack: Callable[..., Stack],
    client_for: Callable[..., Any],
    scaling: int | None,
    reserved: int | None,
    overlap: bool,
) -> None:
    """Two slow invocations (1.5 s each) overlap in time, in two workers, only when the mapping allows 2."""
    stack = make_stack(visibility_timeout=10)
    stack.deploy(timeout=5)
    if reserved is not None:
        client_for("lambda").put_function_concurrency(
            FunctionName=stack.name, ReservedConcurrentExecutions=reserved
        )
    stack.send({"action": "sleep", "seconds": 1.5}, {"action": "sleep", "seconds": 1.5})
    stack.map(BatchSize=1, **({"ScalingConfig": {"MaximumConcurrency": scaling}} if scaling else {}))
    first, second = sorted(
        wait_until(lambda: len(stack.reports()) >= 2 and stack.reports(), what="two invocations", timeout=20),
        key=lambda r: r["started"],
    )
    gap = second["started"] - first["started"]
    if overlap:
        assert gap < 1.0 and first["pid"] != second["pid"]
    else:
        assert gap >= 1.4 and first["pid"] == second["pid"]


@pytest.mark.e2e
def test_batch_item_failures_retried_then_redriven_to_dlq(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack]
) -> None:
    stack = make_stack(visibility_timeout=1, max_receive_count=2, deploy=True)
    ok_a, bad, ok_b = stack.send({"action": "ok"}, {"action": "fail", "n": 1}, {"action": "ok"})
    stack.map(BatchSize=10, **REPORT_BATCH)  # after sending: the first receive takes all three

    wait_until(lambda: stack.dlq_bodies(), what="the failed message in the DLQ")
    assert stack.dlq_bodies() == [{"action": "fail", "n": 1}]
    assert stack.counts(stack.queue_url) == 0
    assert len(stack.invocations_of(ok_a)) == 1 and len(stack.invocations_of(ok_b)) == 1
    receive_counts = [r["attributes"]["ApproximateReceiveCount"] for r in stack.invocations_of(bad)]
    assert receive_counts == ["1", "2"]


@pytest.mark.e2e
@pytest.mark.parametrize("settings", [REPORT_BATCH, {}], ids=["report-batch-item-failures", "plain"])
def test_handler_exception_fails_the_batch_then_dlq(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], log: Log, settings: dict[str, Any]
) -> None:
    stack = make_stack(visibility_timeout=1, max_receive_count=2, deploy=True)
    ok, bad = stack.send({"action": "ok", "n": 0}, {"action": "raise", "text": f"poison-{stack.name}"})
    stack.map(BatchSize=10, **settings)

    wait_until(lambda: len(stack.dlq_bodies()) == 2, what="both messages of the failed batch in the DLQ")
    assert len(stack.invocations_of(ok)) == 2 and len(stack.invocations_of(bad)) == 2
    assert stack.counts(stack.queue_url) == 0
    assert log.says(stack.name, f"[ERROR] RuntimeError: standin exploded on poison-{stack.name}")
    assert log.says(stack.name, 'standin.py", line')  # the function's own frames
    assert not log.says(stack.name, "lambda_worker.py")  # not the bootstrap's


@pytest.mark.e2e
def test_unknown_item_identifier_fails_the_whole_batch(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], log: Log
) -> None:
    stack = make_stack(visibility_timeout=1, max_receive_count=1, deploy=True)
    ok, bogus = stack.send({"action": "ok"}, {"action": "bogus"})
    stack.map(BatchSize=10, **REPORT_BATCH)

    wait_until(lambda: len(stack.dlq_bodies()) == 2, what="the whole batch in the DLQ")
    assert len(stack.invocations_of(ok)) == 1 and len(stack.invocations_of(bogus)) == 1
    assert (
        f"[lambda:{stack.name}] batch of 2 from {stack.queue_arn}: invalid partial batch response"
        in log.text()
    )


@pytest.mark.e2e
def test_batching_window_gathers_messages_sent_apart(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], log: Log
) -> None:
    stack = make_stack(visibility_timeout=30, deploy=True)
    stack.map(BatchSize=3, MaximumBatchingWindowInSeconds=3)
    wait_until(lambda: f"polling {stack.queue_arn}" in log.text(), what="the poller")
    sent = []
    for i in range(3):
        sent += stack.send({"action": "ok", "n": i})
        time.sleep(0.3)
    reports = wait_until(lambda: stack.reports(), what="an invocation")
    assert [r["messageId"] for r in reports[0]["event"]["Records"]] == sent


@pytest.mark.e2e
def test_fifo_queue_keeps_order_and_group_attributes(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], client_for: Callable[..., Any]
) -> None:
    stack = make_stack(deploy=True)
    sqs = client_for("sqs")
    stack.queue_url = sqs.create_queue(
        QueueName=f"{stack.name}.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    stack.queue_arn = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sent = [stack.send({"action": "ok", "n": i}, MessageGroupId="g")[0] for i in range(4)]
    stack.map(BatchSize=10)

    wait_until(lambda: stack.counts(stack.queue_url) == 0, what="the FIFO queue to be emptied")
    records = [r for report in stack.reports() for r in report["event"]["Records"]]
    assert [r["messageId"] for r in records] == sent
    for record in records:
        assert record["attributes"]["MessageGroupId"] == "g"
        assert "MessageDeduplicationId" in record["attributes"]  # moto 5.2.1 omits SequenceNumber


@pytest.mark.e2e
def test_batch_size_bounds_each_invocation(runtime: LambdaRuntime, make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(visibility_timeout=30, deploy=True)
    sent = stack.send(*({"action": "ok", "n": i} for i in range(5)))
    stack.map(BatchSize=2)
    wait_until(lambda: stack.counts(stack.queue_url) == 0, what="the queue to be emptied")
    sizes = [len(r["event"]["Records"]) for r in stack.reports()]
    assert sorted(sizes) == [1, 2, 2]
    assert sorted(r["messageId"] for rep in stack.reports() for r in rep["event"]["Records"]) == sorted(sent)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("handler", "error"),
    [
        ("trailwatch_processor.missing.handler", "Runtime.ImportModuleError: Unable to import module "
         "'trailwatch_processor.missing': No module named 'trailwatch_processor.missing'"),
        ("trailwatch_processor.standin.nope", "Runtime.HandlerNotFound: Handler 'nope' missing on module "
         "'trailwatch_processor.standin'"),
        ("handler", "Runtime.MalformedHandlerName: Bad handler 'handler'"),
    ],
    ids=["module-missing", "function-missing", "malformed"],
)  # fmt: skip
def test_init_error_fails_the_invocation(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], log: Log, handler: str, error: str
) -> None:
    stack = make_stack(visibility_timeout=1, max_receive_count=1)
    stack.deploy(handler=handler)
    stack.map()
    stack.send({"action": "ok"})
    wait_until(lambda: stack.dlq_bodies() == [{"action": "ok"}], what="the message in the DLQ")
    assert log.says(stack.name, f"[ERROR] {error}")
    assert stack.reports() == []


@pytest.mark.e2e
def test_timeout_kills_the_worker_and_counts_as_failure(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], log: Log
) -> None:
    stack = make_stack(visibility_timeout=2, max_receive_count=1)
    stack.deploy(timeout=2)
    stack.map(BatchSize=1)
    [slow] = stack.send({"action": "sleep", "seconds": 30})

    wait_until(lambda: log.says(stack.name, "Error: Task timed out after 2.00 seconds"), what="the timeout")
    first_pid = stack.reports()[0]["pid"]
    [after] = stack.send({"action": "ok"})
    wait_until(lambda: stack.invocations_of(after), what="the next message to be processed")
    assert stack.reports()[-1]["pid"] != first_pid  # a fresh worker
    wait_until(
        lambda: stack.dlq_bodies() == [{"action": "sleep", "seconds": 30}], what="the slow message in the DLQ"
    )
    assert len(stack.invocations_of(slow)) == 1


@pytest.mark.e2e
def test_worker_crash_fails_the_invocation_and_restarts(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], log: Log
) -> None:
    stack = make_stack(visibility_timeout=1, max_receive_count=1, deploy=True)
    stack.map(BatchSize=1)
    [crash] = stack.send({"action": "crash"})

    wait_until(lambda: stack.dlq_bodies() == [{"action": "crash"}], what="the crashing message in the DLQ")
    assert len(stack.invocations_of(crash)) == 1
    assert log.says(stack.name, "Error: worker process exited with code 3")
    [after] = stack.send({"action": "ok"})
    wait_until(lambda: stack.invocations_of(after), what="a message after the crash")
    assert len({r["pid"] for r in stack.reports()}) == 2  # the crashed worker, then a fresh one


@pytest.mark.e2e
def test_reserved_concurrency_zero_throttles(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], log: Log, client_for: Callable[..., Any]
) -> None:
    stack = make_stack(deploy=True)
    client_for("lambda").put_function_concurrency(FunctionName=stack.name, ReservedConcurrentExecutions=0)
    [message_id] = stack.send({"action": "ok"})
    stack.map()
    wait_until(lambda: f"function {stack.name}: ReservedConcurrentExecutions is 0" in log.text())
    time.sleep(1.0)  # a poller that ignored the throttle would have received the message by now
    assert stack.reports() == []

    client_for("lambda").delete_function_concurrency(FunctionName=stack.name)
    wait_until(lambda: stack.invocations_of(message_id), what="the message once unthrottled")
    record = stack.invocations_of(message_id)[0]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"  # never received while throttled


@pytest.mark.e2e
def test_disabled_or_deleted_mapping_is_not_polled(
    runtime: LambdaRuntime, make_stack: Callable[..., Stack], log: Log, client_for: Callable[..., Any]
) -> None:
    stack = make_stack(deploy=True)
    stack.send({"action": "ok"})
    mapping = stack.map(Enabled=False)
    time.sleep(4 * REFRESH)  # several discovery rounds
    assert stack.reports() == [] and stack.counts(stack.queue_url) == 1
    assert mapping["UUID"] not in log.text()

    client_for("lambda").update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    wait_until(lambda: stack.counts(stack.queue_url) == 0, what="processing once enabled")

    client_for("lambda").delete_event_source_mapping(UUID=mapping["UUID"])
    wait_until(lambda: f"stopped polling for mapping {mapping['UUID']}" in log.text())
    time.sleep(1.1)  # the poller's last long poll ends
    stack.send({"action": "ok"})
    time.sleep(4 * REFRESH)
    assert stack.counts(stack.queue_url) == 1 and len(stack.reports()) == 1


@pytest.mark.e2e
def test_runtime_requests_are_marked_internal_for_the_recorder(endpoint: str) -> None:
    """The Lambda service's own polling is not in the account's trail (the function's calls are)."""
    rt = LambdaRuntime(endpoint, REGION, Log())
    try:
        client = rt.client("sqs")
        sent: list[Any] = []
        client.meta.events.register("before-send.*.*", lambda request, **_: sent.append(request.headers))
        client.list_queues()
        assert sent and sent[0].get(INTERNAL_HEADER) == "1"
    finally:
        rt.stop()


@pytest.mark.e2e
def test_stop_is_quick_and_kills_workers(endpoint: str, make_stack: Callable[..., Stack]) -> None:
    """A runtime of its own, in a region no other test's runtime polls."""
    rt = LambdaRuntime(endpoint, "eu-west-2", Log())
    rt.start()
    stack = make_stack(region="eu-west-2", deploy=True)
    stack.map()
    stack.send({"action": "ok"})
    wait_until(lambda: stack.reports(), what="an invocation")
    worker = rt.host(stack.function_arn).worker
    assert worker is not None and worker.alive
    code_root = rt.code.root
    assert any(code_root.iterdir())

    started = time.monotonic()
    rt.stop()
    assert time.monotonic() - started < 4
    assert not worker.alive
    assert not code_root.exists()
