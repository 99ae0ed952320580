"""Fixtures for the CLI tests (import them from a test module: `from tests.functional.cli_conftest import *`).

- `cli`: run `trailwatch ARGS...` through Click's CliRunner and get the Result.
- `moto_env`: moto's in-process mock (mock_aws) for the test.
- `small_template`: a template with main.yaml's parameter and output names but only resource types moto's
  in-process CloudFormation creates, so deploy/events/upload-config/destroy run under mock_aws.
- `failing_client`: make one operation of one service raise a ClientError (moto cannot deny access).
- `local_aws_env`: the local AWS (trailwatch.local.server.LocalAWS) for a module, with the environment of the
  CLI pointed at it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws
from trailwatch import resources
from trailwatch.main import cli as trailwatch_cli
from trailwatch.session import Aws

from tests.clients import cli_environment

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


@pytest.fixture
def cli() -> Callable[..., Result]:
    """`cli("deploy", "--bucket", ...)`: the Result of running trailwatch with these arguments."""

    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(trailwatch_cli, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    from trailwatch import stack, verify

    monkeypatch.setattr(stack, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(verify, "POLL_SECONDS", 0.1)


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


@pytest.fixture
def deploy_args(config_file: Any) -> list[str]:
    return [
        "deploy",
        "--bucket",
        TEST_BUCKET,
        "--email",
        TEST_EMAIL,
        "--no-verify",
        "--config",
        str(config_file),
    ]


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
