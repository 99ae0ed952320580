"""Fixtures for the CLI tests (import them from a test module: `from tests.functional.cli_conftest import *`).

- `cli`: run `trailwatch ARGS...` through Click's CliRunner and get the Result.
- `moto_env`: moto's in-process mock (mock_aws) for the test.
- `small_template`: a template with main.yaml's parameter and output names but only resource types moto's
  in-process CloudFormation creates, so deploy/events/upload-config/destroy run under mock_aws.
- `failing_client`: make one operation of one service raise a ClientError (moto cannot deny access).
- `shared_stack`: one deploy of the small template per module (module-scoped moto, template and fast polls),
  for tests that only need a deployed stack; the config object and the events table are put back as they were
  after each test. A module using it must not use `moto_env` (one mock per module).
- `local_aws_env`: the local AWS (trailwatch.local.server.LocalAWS) for a module, with the environment of the
  CLI pointed at it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws
from trailwatch import resources
from trailwatch.main import cli as trailwatch_cli
from trailwatch.session import Aws

from tests.clients import cli_environment
from tests.conftest import set_test_aws_environment

SMALL_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: trailwatch CLI test stack (resource types moto's in-process CloudFormation creates)
Parameters:
  TrailBucketName:
    Type: String
  AlertEmail:
    Type: String
  EventsTableName:
    Type: String
    Default: SecurityEvents
  CodeBucket:
    Type: String
  CodeKey:
    Type: String
  LogLevel:
    Type: String
    Default: INFO
Resources:
  TrailBucket:
    Type: AWS::S3::Bucket
    DeletionPolicy: Retain
    Properties:
      BucketName: !Ref TrailBucketName
  AlertTopic:
    Type: AWS::SNS::Topic
    Properties:
      Subscription:
        - Protocol: email
          Endpoint: !Ref AlertEmail
  LogDeliveryTopic:
    Type: AWS::SNS::Topic
  DeadLetterQueue:
    Type: AWS::SQS::Queue
  LogProcessingQueue:
    Type: AWS::SQS::Queue
    Properties:
      Tags:
        - Key: code
          Value: !Sub "${CodeBucket}/${CodeKey}/${LogLevel}"
  EventsTable:
    Type: AWS::DynamoDB::Table
    DeletionPolicy: Retain
    Properties:
      TableName: !Ref EventsTableName
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: EventId, AttributeType: S}
        - {AttributeName: event_day, AttributeType: S}
        - {AttributeName: event_time, AttributeType: S}
        - {AttributeName: rule_id, AttributeType: S}
      KeySchema:
        - {AttributeName: EventId, KeyType: HASH}
      GlobalSecondaryIndexes:
        - IndexName: ByDay
          KeySchema:
            - {AttributeName: event_day, KeyType: HASH}
            - {AttributeName: event_time, KeyType: RANGE}
          Projection: {ProjectionType: ALL}
        - IndexName: ByRule
          KeySchema:
            - {AttributeName: rule_id, KeyType: HASH}
            - {AttributeName: event_time, KeyType: RANGE}
          Projection: {ProjectionType: ALL}
Outputs:
  TrailBucketName:
    Value: !Ref TrailBucket
  AlertTopicArn:
    Value: !Ref AlertTopic
  LogDeliveryTopicArn:
    Value: !Ref LogDeliveryTopic
  LogQueueUrl:
    Value: !Ref LogProcessingQueue
  DeadLetterQueueUrl:
    Value: !Ref DeadLetterQueue
  EventsTableName:
    Value: !Ref EventsTable
  ConfigS3Uri:
    Value: !Sub "s3://${TrailBucket}/config/monitored_events.json"
"""

TEST_BUCKET = "tw-cli-test-trail-bucket"
TEST_EMAIL = "secops@example.com"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ARTIFACTS_BUCKET = f"trailwatch-artifacts-{ACCOUNT}-{REGION}"


def run_cli(*args: str, input: str | None = None) -> Result:
    """The Result of running trailwatch with these arguments."""
    return CliRunner().invoke(trailwatch_cli, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def cli() -> Callable[..., Result]:
    """`cli("deploy", "--bucket", ...)`: the Result of running trailwatch with these arguments."""
    return run_cli


def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    from trailwatch import stack, verify

    monkeypatch.setattr(stack, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(verify, "POLL_SECONDS", 0.1)


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    _fast_polls(monkeypatch)


@pytest.fixture
def moto_env(fast_polls: None) -> Iterator[None]:
    """moto in-process, with the local AWS's CloudFormation models (moto's own change sets leave a stack
    without outputs; the local AWS fixes that and is what `trailwatch local up` users deploy to)."""
    from trailwatch.local import cfn_models

    cfn_models.register()
    with mock_aws():
        yield


@pytest.fixture
def small_template(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(resources, "template_text", lambda: SMALL_TEMPLATE)
    return SMALL_TEMPLATE


TEST_MONITORED = ["CreateUser", "StopLogging", "PutBucketPolicy"]


@pytest.fixture
def config_file(tmp_path: Any) -> Any:
    """A small valid config (the `monitored_events` form)."""
    return write_config(tmp_path / "events.json", TEST_MONITORED)


def deploy_arguments(config_file: Any) -> list[str]:
    config = str(config_file)
    return ["deploy", "--bucket", TEST_BUCKET, "--email", TEST_EMAIL, "--no-verify", "--config", config]


@pytest.fixture
def deploy_args(config_file: Any) -> list[str]:
    return deploy_arguments(config_file)


# -- one deployed stack per module ----------------------------------------------------------------------
CONFIG_KEY = "config/monitored_events.json"
EVENTS_TABLE = "SecurityEvents"


@pytest.fixture(scope="module")
def shared_stack_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """moto, the small template and fast polls for the whole module, and `trailwatch deploy` run once in it
    (config: TEST_MONITORED). Tests reach it through `shared_stack`, which restores what they change."""
    from trailwatch.local import cfn_models

    with pytest.MonkeyPatch.context() as monkeypatch:
        set_test_aws_environment(monkeypatch)  # the autouse one is per test, and this runs before it
        _fast_polls(monkeypatch)
        monkeypatch.setattr(resources, "template_text", lambda: SMALL_TEMPLATE)
        cfn_models.register()
        with mock_aws():
            config = write_config(tmp_path_factory.mktemp("shared-stack") / "events.json", TEST_MONITORED)
            deployed = run_cli(*deploy_arguments(config))
            assert deployed.exit_code == 0, deployed.output
            yield


def _table_items(table: Any) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for page in table.meta.client.get_paginator("scan").paginate(TableName=table.name, ConsistentRead=True):
        items.update({item["EventId"]: item for item in page["Items"]})
    return items


@pytest.fixture
def shared_stack(shared_stack_module: None) -> Iterator[None]:
    """The module's deployed stack (bucket TEST_BUCKET, table SecurityEvents). What the test changes in the
    config object and the events table is put back afterwards, so each test starts from what the module
    set up (the deploy, and what module fixtures stored after it), in any order."""
    s3 = boto3.client("s3")
    table = boto3.resource("dynamodb").Table(EVENTS_TABLE)
    try:
        got = s3.get_object(Bucket=TEST_BUCKET, Key=CONFIG_KEY)
        config: dict[str, Any] | None = {"Body": got["Body"].read(), "ContentType": got["ContentType"]}
    except s3.exceptions.NoSuchKey:
        config = None
    items = _table_items(table)
    yield
    if config is None:
        s3.delete_object(Bucket=TEST_BUCKET, Key=CONFIG_KEY)
    else:
        s3.put_object(Bucket=TEST_BUCKET, Key=CONFIG_KEY, **config)
    after = _table_items(table)
    with table.batch_writer() as batch:
        for event_id in after.keys() - items.keys():
            batch.delete_item(Key={"EventId": event_id})
        for event_id, item in items.items():
            if after.get(event_id) != item:
                batch.put_item(Item=item)


class _FailingClient:
    """A real client except for one operation, which raises the given ClientError."""

    def __init__(self, inner: Any, operation: str, code: str, message: str) -> None:
        self._inner, self._operation, self._code, self._message = inner, operation, code, message

    def __getattr__(self, name: str) -> Any:
        if name == self._operation:
            op_name = self._inner.meta.method_to_api_mapping.get(name, name)

            def fail(*args: Any, **kwargs: Any) -> Any:
                raise botocore.exceptions.ClientError(
                    {"Error": {"Code": self._code, "Message": self._message}}, op_name
                )

            return fail
        return getattr(self._inner, name)


@pytest.fixture
def failing_client(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str, str, str], None]:
    """`failing_client("sts", "get_caller_identity", "AccessDenied", "...")`."""

    def install(service: str, operation: str, code: str, message: str) -> None:
        original = Aws.client

        def client(self: Aws, name: str) -> Any:
            real = original(self, name)
            return _FailingClient(real, operation, code, message) if name == service else real

        monkeypatch.setattr(Aws, "client", client)

    return install


def write_config(path: Any, names: list[str]) -> Any:
    path.write_text(json.dumps({"monitored_events": names}))
    return path


@pytest.fixture(scope="module")
def local_aws_env() -> Iterator[Any]:
    """A LocalAWS for the module; tests point the CLI at it with `local_env(monkeypatch, aws)`."""
    from trailwatch.local.server import LocalAWS

    with LocalAWS(port=0, lambda_runtime=True, cloudtrail=True, delivery_interval=1.0) as aws:
        yield aws


def local_env(monkeypatch: pytest.MonkeyPatch, aws: Any) -> None:
    for name, value in cli_environment(aws).items():
        monkeypatch.setenv(name, value)
