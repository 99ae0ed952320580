"""moto-backed AWS for the processor: the trail bucket, SecurityEvents table, alert topic with a counting
SQS subscriber, and Deps wired with clients built inside the mock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws
from moto.core.base_backend import BackendDict
from moto.core.model_instances import reset_model_data
from trailwatch.local import moto_patches
from trailwatch_processor.aws import Clients, Settings

from tests.functional import factories as f

if TYPE_CHECKING:  # the local AWS costs seconds to import: only the tests that start one pay for it
    from trailwatch.local.server import LocalAWS

BUCKET = "trail-bucket"
TABLE = "SecurityEvents"
CONFIG_KEY = "config/monitored_events.json"


class Clock:
    """Injected time: monotonic seconds for the config cache, UTC datetimes for the alert state."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.start = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


@dataclass
class Env:
    clients: Clients
    settings: Settings
    sqs: Any
    alert_queue_url: str
    clock: Clock
    received: list[dict] = field(default_factory=list)

    def put_log(self, records: list[dict], key: str | None = None, *, compress: bool = True) -> str:
        key = key or f.log_key()
        self.clients.s3.put_object(Bucket=BUCKET, Key=key, Body=f.log_bytes(records, compress=compress))
        return key

    def put_config(self, config: Any) -> None:
        body = config if isinstance(config, bytes | str) else json.dumps(config)
        self.clients.s3.put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=body)

    def alerts(self) -> list[dict]:
        """Every alert published so far (the ``sqs`` JSON body of each), drained from the subscriber queue."""
        sqs = self.sqs
        while True:
            got = sqs.receive_message(QueueUrl=self.alert_queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not got:
                return self.received
            self.received.extend(json.loads(message["Body"]) for message in got)
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)]
            deleted = sqs.delete_message_batch(QueueUrl=self.alert_queue_url, Entries=entries)
            assert not deleted.get("Failed"), deleted["Failed"]

    def items(self) -> dict[str, dict]:
        """The whole table but the last-processed marker, by EventId (plain values).

        Read from moto's table itself, in DynamoDB JSON as a Scan returns it: a Scan through the API costs
        ~2.8 ms of CPU per item in moto's response serializer (170 ms for 60 events), this 1 ms in all.
        test_processor's test_env_items_is_what_a_scan_returns holds the two equal."""
        from trailwatch_processor import markers, store

        out: dict[str, dict] = {}
        for stored in dynamodb_backend().get_table(TABLE).all_items():
            item = stored.to_json()["Attributes"]
            if item["EventId"]["S"].startswith(markers.LAST_PROCESSED_PREFIX):
                continue  # the processor's liveness marker (read by `trailwatch verify`), not an event
            out[item["EventId"]["S"]] = store.plain(item)
        return out


def dynamodb_backend() -> Any:
    """moto's DynamoDB of the account and region the clients use."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][f.REGION]


def create_table(ddb: Any) -> None:
    ddb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("EventId", "event_day", "event_time", "rule_id")
        ],
        KeySchema=[{"AttributeName": "EventId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": partition, "KeyType": "HASH"},
                    {"AttributeName": "event_time", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, partition in (("ByDay", "event_day"), ("ByRule", "rule_id"))
        ],
    )


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    """One botocore session for the suite: clients load their service models once, not per test."""
    return boto3.session.Session(region_name="us-east-1")


def _empty_backends() -> None:
    """What a mock_aws start and stop do to the data: every backend emptied, moto's model registry cleared."""
    BackendDict.reset()
    reset_model_data()


@pytest.fixture
def aws() -> Iterator[None]:
    """moto for one test, from empty backends to empty backends. Nested in a module's `env_clients` mock a
    start and a stop reset nothing (moto resets on the outermost only), so the reset is ours."""
    with mock_aws():
        _empty_backends()
        moto_patches.install()  # moto as the local AWS runs it, whatever ran before in the process
        try:
            yield
        finally:
            _empty_backends()


@pytest.fixture(scope="module")
def env_clients(boto_session: boto3.session.Session) -> Iterator[tuple[Clients, Any]]:
    """The processor's clients and an SQS client, built once per module, inside one mock_aws held for the
    module. Per test that saves ~30 ms of CPU in clients and ~12 ms in the mock's start (registering ~1,250
    URL patterns of the `responses` library): each test's `aws` is then a nested mock that empties the
    backends itself. A client keeps no AWS data. A test that wraps a client (a fault) wraps it in its own
    Deps or with monkeypatch, never in place for the next test. Only the modules that use `env` hold the
    mock (all moto-only: none talks to a LocalAWS)."""
    with mock_aws():
        yield Clients.create(boto_session), boto_session.client("sqs")


@pytest.fixture
def env(aws: None, env_clients: tuple[Clients, Any]) -> Env:
    clients, sqs = env_clients
    clients.s3.create_bucket(Bucket=BUCKET)
    create_table(clients.dynamodb)
    topic_arn = clients.sns.create_topic(Name="trailwatch-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alert-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    clients.sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    settings = Settings(
        events_table=TABLE,
        alert_topic_arn=topic_arn,
        config_bucket=BUCKET,
        config_key=CONFIG_KEY,
        retention_days=30,
    )
    return Env(clients=clients, settings=settings, sqs=sqs, alert_queue_url=queue_url, clock=Clock())


@pytest.fixture
def deps(env: Env):
    """Deps as the handler builds them, with the injected clock."""
    from trailwatch_processor.handler import build_deps

    built = build_deps(env.settings, env.clients)
    built.config.clock = env.clock.monotonic
    built.now = env.clock.now
    built.claim_stale_seconds = 300.0
    # Tests through this fixture count event items and alerts; the config-version announcement (one more
    # item pair and alert on the first load) is tested with build_deps itself in test_config_source.py.
    built.config.on_loaded = None
    return built


# -- the local AWS per test (test_local_eventbridge*, test_local_s3_eventbridge) ------------------------
def _local_aws_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options: dict[str, Any] = {"lambda_runtime": False, "delivery_interval": 3600.0}
    options.update(getattr(request.module, "LOCAL_AWS_OPTIONS", {}))
    return options


@pytest.fixture
def local_aws(request: pytest.FixtureRequest) -> Iterator[LocalAWS]:
    """A quiet LocalAWS of the test's own on a free loopback port: no Lambda runtime, CloudTrail delivery
    hourly (never, in a test). A module changes the options with a module-level dict, as in
    tests/e2e/conftest.py, e.g. `LOCAL_AWS_OPTIONS = {"cloudtrail": False}`."""
    from trailwatch.local.server import LocalAWS

    with LocalAWS(port=0, log=lambda message: None, **_local_aws_options(request)) as aws:
        yield aws


# -- one local AWS per test module, fresh for each test (test_local_eventbridge*, test_local_s3_eventbridge,
# test_recorder)
@pytest.fixture(scope="module")
def module_local_aws(request: pytest.FixtureRequest) -> Iterator[LocalAWS]:
    """The quiet LocalAWS of `local_aws` (same options, same `LOCAL_AWS_OPTIONS`), started once for the
    module: tests take it through `fresh_local_aws`. A test that starts a LocalAWS of its own stops this one
    first (one LocalAWS per process); `fresh_local_aws` starts it again if a later test needs it."""
    from trailwatch.local.server import LocalAWS

    aws = LocalAWS(port=0, log=lambda message: None, **_local_aws_options(request))
    try:
        yield aws
    finally:
        aws.stop()


@pytest.fixture
def fresh_local_aws(module_local_aws: LocalAWS) -> LocalAWS:
    """The module's LocalAWS as a new one would be: every moto resource forgotten (what `LocalAWS.start`
    does first) and the recorder's records, pending deliveries and digest chains of earlier tests dropped."""
    from trailwatch.local.server import reset_moto_state

    aws = module_local_aws
    if not aws.running:
        aws.start()
        return aws
    reset_moto_state()
    if aws.recorder is not None:
        aws.recorder.forget()
    return aws
