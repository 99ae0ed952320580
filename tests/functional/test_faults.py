"""The fault injector on a LocalAWS: each protocol's injected error reaches boto3 as the intended
ClientError (code and HTTP status), `times` and time windows are exact, predicates select requests, and
requests that match no fault reach moto unchanged."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from xml.etree import ElementTree

import boto3
import botocore.endpoint
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from trailwatch.local.faults import FaultInjector, error_response, json_field, label_prefix
from trailwatch.local.server import LocalAWS

TABLE = "faults-table"
BUCKET = "faults-bucket"


@pytest.fixture(scope="module")
def injected() -> Iterator[tuple[LocalAWS, FaultInjector]]:
    injector = FaultInjector()
    aws = LocalAWS(port=0, lambda_runtime=False, cloudtrail=False)
    aws.middlewares.append(injector.wrap)
    with aws:
        yield aws, injector


@pytest.fixture()
def faults(injected: tuple[LocalAWS, FaultInjector]) -> Iterator[FaultInjector]:
    injector = injected[1]
    injector.clear()
    yield injector
    injector.clear()


@pytest.fixture(scope="module")
def client(injected: tuple[LocalAWS, FaultInjector]):
    aws = injected[0]
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    no_retry = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    cache: dict[str, BaseClient] = {}

    def make(service: str) -> BaseClient:
        if service not in cache:
            cache[service] = session.client(service, endpoint_url=aws.endpoint, config=no_retry)
        return cache[service]

    make("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    make("s3").create_bucket(Bucket=BUCKET)
    make("s3").put_object(Bucket=BUCKET, Key="a/one", Body=b"1")
    make("s3").put_object(Bucket=BUCKET, Key="b/two", Body=b"2")
    return make


def _topic(client) -> str:
    return client("sns").create_topic(Name="faults-topic")["TopicArn"]


CASES = [
    ("dynamodb", "PutItem", "ProvisionedThroughputExceededException", 400),
    ("dynamodb", "PutItem", "ThrottlingException", 400),
    ("sns", "Publish", "InternalError", 500),
    ("sns", "Publish", "Throttling", 400),
    ("s3", "GetObject", "InternalError", 500),
    ("s3", "GetObject", "SlowDown", 503),
]


def _call(client, service: str) -> dict:
    if service == "dynamodb":
        return client("dynamodb").put_item(TableName=TABLE, Item={"k": {"S": "x"}})
    if service == "sns":
        return client("sns").publish(TopicArn=_topic(client), Message="m")
    return client("s3").get_object(Bucket=BUCKET, Key="a/one")


@pytest.mark.parametrize(("service", "operation", "code", "status"), CASES, ids=[c[2] for c in CASES])
def test_error_parsed_by_boto3_as_intended(client, faults, service, operation, code, status) -> None:
    fault = faults.add(service, operation, code, times=1)
    with pytest.raises(ClientError) as caught:
        _call(client, service)
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert fault.hits == 1
    _call(client, service)  # the fault is used up: the next call reaches moto
    assert fault.hits == 1


def test_times_is_exact_then_the_call_succeeds(client, faults) -> None:
    fault = faults.add("dynamodb", "PutItem", "ThrottlingException", times=3)
    failures = 0
    for _ in range(5):
        try:
            client("dynamodb").put_item(TableName=TABLE, Item={"k": {"S": "t"}})
        except ClientError:
            failures += 1
    assert (failures, fault.hits) == (3, 3)


class FakeClock:
    """The injector's monotonic clock, moved by the test instead of waited for."""

    def __init__(self) -> None:
        self.seconds = time.monotonic()

    def __call__(self) -> float:
        return self.seconds


def test_window_ends(client, faults, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(faults, "clock", clock)  # the module's injector: its real clock comes back after
    faults.add("s3", "GetObject", "SlowDown", times=None, duration=0.5)
    with pytest.raises(ClientError):
        client("s3").get_object(Bucket=BUCKET, Key="a/one")
    clock.seconds += 0.4
    with pytest.raises(ClientError):  # still inside the window
        client("s3").get_object(Bucket=BUCKET, Key="a/one")
    clock.seconds += 0.2
    assert client("s3").get_object(Bucket=BUCKET, Key="a/one")["Body"].read() == b"1"


def test_predicates_select_requests(client, faults) -> None:
    faults.add(
        "s3", "GetObject", "InternalError", times=None, duration=30, predicate=label_prefix("Key", "a/")
    )
    faults.add(
        "dynamodb", "PutItem", "ThrottlingException", times=5, predicate=json_field("TableName", "other")
    )
    with pytest.raises(ClientError):
        client("s3").get_object(Bucket=BUCKET, Key="a/one")
    assert client("s3").get_object(Bucket=BUCKET, Key="b/two")["Body"].read() == b"2"
    client("dynamodb").put_item(TableName=TABLE, Item={"k": {"S": "p"}})  # other table: untouched
    assert faults.hits() == 1


def test_other_operations_pass_through(client, faults) -> None:
    faults.add("dynamodb", "PutItem", "ThrottlingException", times=5)
    item = client("dynamodb").get_item(TableName=TABLE, Key={"k": {"S": "x"}})
    assert item["Item"]["k"]["S"] == "x"
    assert faults.hits() == 0


def test_boto3_standard_retries_absorb_short_faults(
    injected, faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two throttled attempts, then the third succeeds. botocore's backoff between attempts is recorded
    instead of slept (`botocore.endpoint` uses its `time` module for that sleep only)."""
    aws = injected[0]
    backoffs: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=backoffs.append))
    retrying = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).client(
        "dynamodb",
        endpoint_url=aws.endpoint,
        config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
    )
    fault = faults.add("dynamodb", "PutItem", "ThrottlingException", times=2)
    retrying.put_item(TableName=TABLE, Item={"k": {"S": "r"}})
    assert fault.hits == 2
    assert len(backoffs) == 2 and all(seconds > 0 for seconds in backoffs), backoffs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"times": 0}, "times must be >= 1"),
        ({"times": None}, "give times, duration or both"),
        ({"times": 1, "duration": 0}, "duration must be > 0"),
        ({"times": 1, "delay": -1}, "delay must be >= 0"),
    ],
)
def test_bad_fault_arguments_are_named(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        FaultInjector().add("s3", "GetObject", "SlowDown", **kwargs)


@pytest.mark.parametrize("protocol", ["json", "query", "rest-xml"])
def test_error_message_survives_markup(protocol) -> None:
    status, headers, body = error_response(protocol, "InternalError", "a <b> & c", 500)
    assert status == 500 and dict(headers)["Content-Length"] == str(len(body))
    if protocol == "json":
        assert json.loads(body)["message"] == "a <b> & c"
    else:
        assert ElementTree.fromstring(body).find(".//Message").text == "a <b> & c"
