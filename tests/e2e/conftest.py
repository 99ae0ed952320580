"""The local AWS for end-to-end tests: one `LocalAWS` per test module (moto's state is process-global, so
modules never share resources), boto3 clients bound to its endpoint, and a helper that deploys main.yaml.

A module chooses the emulator's services with a module-level dict, e.g.
`LOCAL_AWS_OPTIONS = {"lambda_runtime": False}` or `{"cloudtrail": True, "delivery_interval": 120.0}`
(defaults: the Lambda runtime on; CloudTrail off, so the only log files in a bucket are the module's own;
when on, delivery every second).
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from trailwatch.local.server import LocalAWS
from trailwatch.package import build_package
from trailwatch_processor.outputs import webhook

from tests.clients import TEST_CREDENTIALS, ClientFactory, cached_clients
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "main.yaml"
DEFAULT_OPTIONS: dict[str, Any] = {"lambda_runtime": True, "cloudtrail": False, "delivery_interval": 1.0}

ACCOUNT = "123456789012"
REGION = "us-east-1"


def wait_for(check: Callable[[], Any], what: str, seconds: float = 45.0) -> Any:
    """Poll `check` every half second until it returns something truthy (returned); fail after `seconds`."""
    return wait_until(check, seconds, what, interval=0.5)


def take_messages(sqs: Any, queue_url: str, *, wait_seconds: int = 1, **receive: Any) -> Iterator[dict]:
    """Every message of the queue, each deleted once the caller has taken it: receives (long polls of
    `wait_seconds`) until one comes back empty."""
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds, **receive
    ).get("Messages", []):
        for message in messages:
            yield message
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def scan_table(client: ClientFactory, table: str) -> Iterator[dict]:
    """Every item of the DynamoDB table `table` (raw attribute values)."""
    for page in client("dynamodb").get_paginator("scan").paginate(TableName=table):
        yield from page["Items"]


def drain_until(
    drain: Callable[[], None],
    done: Callable[[], bool],
    what: str,
    progress: Callable[[], str],
    seconds: float,
) -> None:
    """`drain()` until `done()`, then once more (a late duplicate shows then); fail after `seconds`, saying
    `progress()`."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {progress()}")
        drain()
    drain()


def upload_bundled_config(client: ClientFactory, bucket: str) -> None:
    """Put the repository's events.json where the processor reads its config, without its noise control:
    these tests expect every event alerted at once (noise control is test_noise_e2e's)."""
    from trailwatch.noise_free import bundled_config_without_noise

    client("s3").put_object(
        Bucket=bucket, Key="config/monitored_events.json", Body=bundled_config_without_noise()
    )


def subscribe_alert_queue(client: ClientFactory, topic_arn: str, queue_name: str) -> str:
    """A new SQS queue subscribed (raw delivery) to `topic_arn`: its URL, to read the alerts from."""
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("sns").subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    return url


@pytest.fixture(scope="module")
def local_aws(request: pytest.FixtureRequest) -> Iterator[LocalAWS]:
    """A running LocalAWS on a free loopback port, empty at the start of the module."""
    options = {**DEFAULT_OPTIONS, **getattr(request.module, "LOCAL_AWS_OPTIONS", {})}
    with LocalAWS(port=0, **options) as aws:
        yield aws


def client_factory(aws: LocalAWS) -> ClientFactory:
    """boto3 clients for `aws` (own session: boto3's default session is not thread-safe)."""
    session = boto3.session.Session(region_name=aws.region, **TEST_CREDENTIALS)
    retries = Config(retries={"max_attempts": 2, "mode": "standard"})
    return cached_clients(session, endpoint_url=aws.endpoint, config=retries)


@pytest.fixture(scope="module")
def aws_client(local_aws: LocalAWS) -> ClientFactory:
    """`aws_client("s3")`: a client of the module's LocalAWS (one per service)."""
    return client_factory(local_aws)


def placeholder_zip() -> bytes:
    """A tiny Lambda package: enough for CloudFormation to create the function."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("trailwatch_processor/__init__.py", "")
        archive.writestr(
            "trailwatch_processor/handler.py",
            "def handler(event, context):\n    return {'batchItemFailures': []}\n",
        )
    return buffer.getvalue()


def deploy_main_stack(
    client: ClientFactory,
    stack_name: str,
    parameters: dict[str, str],
    *,
    code: bytes | None = None,
    code_bucket: str = "trailwatch-code",
    template: Path = TEMPLATE,
) -> dict[str, str]:
    """Upload the Lambda package, create the stack from `template` through CloudFormation and return its
    outputs. `parameters` must include TrailBucketName and AlertEmail; CodeBucket/CodeKey are filled."""
    s3 = client("s3")
    if code_bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=code_bucket)
    code_key = f"{stack_name}/processor.zip"
    s3.put_object(Bucket=code_bucket, Key=code_key, Body=code if code is not None else placeholder_zip())
    values = {"CodeBucket": code_bucket, "CodeKey": code_key, **parameters}
    cfn = client("cloudformation")
    cfn.create_stack(
        StackName=stack_name,
        TemplateBody=template.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise AssertionError(
            f"stack {stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}"
        )
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@pytest.fixture(scope="module")
def deploy_stack(aws_client: ClientFactory) -> Callable[..., dict[str, str]]:
    """`deploy_stack(stack_name, parameters, code=zip_bytes)` on the module's LocalAWS: the outputs."""

    def deploy(stack_name: str, parameters: dict[str, str], **kwargs: Any) -> dict[str, str]:
        return deploy_main_stack(aws_client, stack_name, parameters, **kwargs)

    return deploy


@pytest.fixture(scope="module")
def deploy_processor(deploy_stack: Callable[..., dict[str, str]]) -> Callable[..., dict[str, str]]:
    """`deploy_processor(stack_name, bucket, **parameters)`: main.yaml with the real processor package,
    alerts to e2e@example.com, trail bucket `bucket`: the outputs."""

    def deploy(stack_name: str, bucket: str, **parameters: str) -> dict[str, str]:
        values = {"TrailBucketName": bucket, "AlertEmail": "e2e@example.com", **parameters}
        return deploy_stack(stack_name, values, code=build_package().data)

    return deploy


@dataclass
class Watch:
    """A deployed processor stack and what it made so far: the alerts of a queue subscribed to its alert
    topic, the items of its events table (by EventId)."""

    client: ClientFactory
    outputs: dict[str, str]
    alert_queue: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def drain(self) -> None:
        for message in take_messages(self.client("sqs"), self.alert_queue):
            self.alerts.append(json.loads(message["Body"]))
        for item in scan_table(self.client, self.outputs["EventsTableName"]):
            self.items[item["EventId"]["S"]] = item

    def wait_until(self, done: Callable[[], bool], what: str, seconds: float = 40.0) -> None:
        drain_until(self.drain, done, what, lambda: f"{len(self.items)} items, {self.alerts}", seconds)


@pytest.fixture(scope="module")
def deploy_watched(
    aws_client: ClientFactory, deploy_processor: Callable[..., dict[str, str]]
) -> Callable[..., Watch]:
    """`deploy_watched(stack_name, bucket, **parameters)`: deploy_processor's stack with the bundled config
    (without noise control) and a queue `<stack_name>-alerts` subscribed to its alert topic."""

    def deploy(stack_name: str, bucket: str, **parameters: str) -> Watch:
        outputs = deploy_processor(stack_name, bucket, **parameters)
        upload_bundled_config(aws_client, bucket)
        queue = subscribe_alert_queue(aws_client, outputs["AlertTopicArn"], f"{stack_name}-alerts")
        return Watch(aws_client, outputs, queue)

    return deploy


class Receiver:
    """A loopback HTTP endpoint for output tests: records every POST (headers, raw body), answers 200.
    `signing_key`: the key its output's secret names (the webhook output signs with it)."""

    def __init__(self, name: str) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.signing_key = webhook.new_signing_key()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{name}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def create_output_secrets(
    client: ClientFactory, stack: str, receivers: dict[str, Receiver]
) -> dict[str, str]:
    """The Slack and webhook outputs' secrets (Secrets Manager) pointing at `receivers`: as the stack's
    parameters, {"SlackSecretArn": ..., "WebhookSecretArn": ...}."""
    secrets = client("secretsmanager")
    slack = {"url": receivers["slack"].url}
    hook = {"url": receivers["webhook"].url, "signing_key": receivers["webhook"].signing_key}
    return {
        "SlackSecretArn": secrets.create_secret(
            Name=f"trailwatch/{stack}/slack", SecretString=json.dumps(slack)
        )["ARN"],
        "WebhookSecretArn": secrets.create_secret(
            Name=f"trailwatch/{stack}/webhook", SecretString=json.dumps(hook)
        )["ARN"],
    }


@pytest.fixture(scope="module")
def receivers() -> Iterator[dict[str, Receiver]]:
    """`receivers["slack"]`, `receivers["webhook"]`: loopback receivers for the module's output secrets."""
    made = {name: Receiver(name) for name in ("slack", "webhook")}
    yield made
    for receiver in made.values():
        receiver.close()
