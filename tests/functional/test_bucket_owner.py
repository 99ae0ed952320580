"""Buckets trailwatch expects to own are checked with `ExpectedBucketOwner`.

The artifacts bucket's name is predictable (`trailwatch-artifacts-<account>-<region>`): another account can
create it first, with a policy letting the victim write, then read and replace the Lambda zip. On the local
AWS (which enforces the header as AWS does; moto alone ignores it) a second account is reached through
moto's multi-account support: STS AssumeRole into another account id gives credentials of that account.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
import pytest
from botocore.client import BaseClient
from trailwatch import configcmd, destroy, verify
from trailwatch.local.server import LocalAWS, reset_moto_state, s3_request_bucket
from trailwatch.package import BucketNotOwned, artifacts_bucket_name
from trailwatch.session import Aws, Options
from trailwatch.ui import UI
from trailwatch_processor.aws import Settings
from trailwatch_processor.config_source import ConfigCache
from trailwatch_processor.file_run import _get_object
from trailwatch_processor.handler import account_of
from trailwatch_processor.notifications import ObjectRef

from tests.clients import TEST_CREDENTIALS, assumed_role_session
from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import TEST_BUCKET, local_env

pytestmark = pytest.mark.e2e
VICTIM = "123456789012"
ATTACKER = "111111111111"
PLANTED = artifacts_bucket_name(VICTIM, "us-east-1")
CONFIG_KEY = "config/monitored_events.json"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalAWS]:
    with LocalAWS(port=0, lambda_runtime=False, cloudtrail=False) as aws:
        yield aws


@pytest.fixture
def local(server: LocalAWS, monkeypatch: pytest.MonkeyPatch, fast_polls: None) -> LocalAWS:
    """The module's local AWS, emptied, with the CLI's environment pointed at it (victim's credentials)."""
    reset_moto_state()
    local_env(monkeypatch, server)
    return server


def _client(aws: LocalAWS, service: str, **credentials: str) -> BaseClient:
    credentials = credentials or TEST_CREDENTIALS
    return boto3.client(service, endpoint_url=aws.endpoint, region_name=aws.region, **credentials)


@pytest.fixture
def victim_s3(local: LocalAWS) -> BaseClient:
    return _client(local, "s3")


@pytest.fixture
def attacker_s3(local: LocalAWS) -> BaseClient:
    """S3 as account 111111111111 (moto maps the assumed role's keys to the role's account)."""
    creds = _client(local, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{ATTACKER}:role/squatter", RoleSessionName="squatter"
    )["Credentials"]
    session = assumed_role_session(creds, local.region)
    s3 = session.client("s3", endpoint_url=local.endpoint)
    account = session.client("sts", endpoint_url=local.endpoint).get_caller_identity()["Account"]
    assert account == ATTACKER
    return s3


@pytest.fixture
def plant(attacker_s3: BaseClient) -> Callable[[str], str]:
    """`plant(name)`: the attacker creates the bucket, with a policy letting the victim account in."""

    def create(bucket: str) -> str:
        attacker_s3.create_bucket(Bucket=bucket)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{VICTIM}:root"},
                    "Action": "s3:*",
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
        attacker_s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        return bucket

    return create


def _keys(s3: BaseClient, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


# -- the local AWS enforces the header like AWS ----------------------------------------------------
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("head_bucket", {}),
    ("list_objects_v2", {}),
    ("get_bucket_policy", {}),
    ("put_object", {"Key": "k", "Body": b"zip"}),
    ("get_object", {"Key": "k"}),
]


@pytest.mark.parametrize(("operation", "extra"), CALLS, ids=[c[0] for c in CALLS])
def test_local_aws_refuses_a_bucket_of_another_owner(
    victim_s3: BaseClient, attacker_s3: BaseClient, plant: Callable[[str], str], operation: str, extra: dict
) -> None:
    bucket = plant("owner-check")
    attacker_s3.put_object(Bucket=bucket, Key="k", Body=b"zip")
    call = getattr(victim_s3, operation)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        call(Bucket=bucket, ExpectedBucketOwner=VICTIM, **extra)
    assert _status(denied.value) == 403
    call(Bucket=bucket, ExpectedBucketOwner=ATTACKER, **extra)  # the right owner: served
    call(Bucket=bucket, **extra)  # no header: moto's cross-account access, as before


def test_local_aws_leaves_a_missing_bucket_to_moto(victim_s3: BaseClient) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        victim_s3.head_bucket(Bucket="no-such-bucket-here", ExpectedBucketOwner=VICTIM)
    assert _status(missing.value) == 404


def test_local_aws_checks_the_copy_source_owner(
    victim_s3: BaseClient, attacker_s3: BaseClient, plant: Callable[[str], str]
) -> None:
    source = plant("copy-source-owner-check")
    attacker_s3.put_object(Bucket=source, Key="k", Body=b"zip")
    victim_s3.create_bucket(Bucket="victim-destination")
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        victim_s3.copy_object(
            Bucket="victim-destination",
            Key="k",
            CopySource={"Bucket": source, "Key": "k"},
            ExpectedSourceBucketOwner=VICTIM,
        )
    assert _status(denied.value) == 403
    assert _keys(victim_s3, "victim-destination") == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4566/trail-bucket/AWSLogs/x.json.gz",
        "http://localhost:4566/trail-bucket",
        "http://trail-bucket.localhost:4566/AWSLogs/x.json.gz",
        "https://trail-bucket.s3.us-east-1.amazonaws.com/k",
        "https://s3.us-east-1.amazonaws.com/trail-bucket/k",
    ],
)
def test_s3_request_bucket_path_style_or_virtual_hosted(url: str) -> None:
    parts = urlsplit(url)
    assert s3_request_bucket({"HTTP_HOST": parts.netloc, "PATH_INFO": parts.path}) == "trail-bucket"


def test_s3_request_to_the_service_names_no_bucket() -> None:
    assert s3_request_bucket({"HTTP_HOST": "127.0.0.1:4566", "PATH_INFO": "/"}) is None


# -- the CLI refuses buckets it does not own -----------------------------------------------------
def test_deploy_refuses_a_planted_artifacts_bucket(
    local: LocalAWS, cli: Any, deploy_args: list[str], small_template: str, plant: Callable, attacker_s3: Any
) -> None:
    plant(PLANTED)
    result = cli(*deploy_args)
    assert result.exit_code == 3, result.output
    assert f"Bucket '{PLANTED}' exists but S3 refused it with ExpectedBucketOwner={VICTIM}" in result.output
    assert "This may be an attack" in result.output and "Hint:" in result.output
    assert _keys(attacker_s3, PLANTED) == [], "the Lambda package reached the attacker's bucket"
    assert _client(local, "cloudformation").list_stacks()["StackSummaries"] == []


def test_deploy_with_an_artifacts_bucket_of_its_own_avoids_the_planted_one(
    local: LocalAWS, cli: Any, deploy_args: list[str], small_template: str, plant: Callable, attacker_s3: Any
) -> None:
    plant(PLANTED)
    refused = cli(*deploy_args)
    assert refused.exit_code == 3 and "--artifacts-bucket NAME" in refused.output
    result = cli(*deploy_args, "--artifacts-bucket", "victims-own-artifacts")
    assert result.exit_code == 0, result.output
    assert _keys(attacker_s3, PLANTED) == []
    (key,) = _keys(_client(local, "s3"), "victims-own-artifacts")
    stack = _client(local, "cloudformation").describe_stacks(StackName="trailwatch")["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert (params["CodeBucket"], params["CodeKey"]) == ("victims-own-artifacts", key)
    removed = cli("destroy", "--yes")
    assert removed.exit_code == 0, removed.output
    assert "artifacts bucket s3://victims-own-artifacts" in removed.output  # the stack's CodeBucket
    assert PLANTED not in removed.output


def test_artifacts_bucket_option_refuses_a_bucket_of_another_account(
    local: LocalAWS, cli: Any, deploy_args: list[str], small_template: str, plant: Callable, attacker_s3: Any
) -> None:
    plant("squatted-artifacts")
    result = cli(*deploy_args, "--artifacts-bucket", "squatted-artifacts")
    assert result.exit_code == 3, result.output
    assert "This may be an attack" in result.output
    assert _keys(attacker_s3, "squatted-artifacts") == []


def test_deploy_refuses_a_trail_bucket_of_another_account(
    local: LocalAWS, cli: Any, deploy_args: list[str], small_template: str, plant: Callable
) -> None:
    """Before: HeadBucket succeeded through the attacker's policy and the bucket passed for this account's."""
    plant(TEST_BUCKET)
    result = cli(*deploy_args)
    assert result.exit_code == 3, result.output
    assert "another AWS account owns it" in result.output


NO_OWNER_PARAMETER = {"CreateBucket", "ListBuckets"}  # S3 operations that take no ExpectedBucketOwner


def test_every_s3_call_of_the_cli_names_the_owner(
    local: LocalAWS,
    cli: Any,
    deploy_args: list[str],
    small_template: str,
    monkeypatch: pytest.MonkeyPatch,
    config_file: Any,
) -> None:
    """deploy (twice), upload-config, verify, destroy work on the enforcing local AWS, and no S3 call of
    theirs on a bucket goes without the header."""
    calls: list[tuple[str, str, str | None]] = []
    original = Aws.client

    def watch(params: dict, model: Any, **_: Any) -> None:
        if "Bucket" in params:
            calls.append((model.name, params["Bucket"], params.get("ExpectedBucketOwner")))

    def client(self: Aws, name: str) -> Any:
        made = original(self, name)
        if name == "s3" and not getattr(made, "_owner_watch", False):
            made.meta.events.register("provide-client-params.s3", watch)
            made._owner_watch = True
        return made

    monkeypatch.setattr(Aws, "client", client)
    for _ in range(2):  # the second finds the bucket and reuses the package (ListObjectsV2)
        result = cli(*deploy_args)
        assert result.exit_code == 0, result.output
    assert "Reusing existing deployment package." in result.output
    config_file.write_text(
        json.dumps({"monitored_events": ["CreateUser", "StopLogging", "PutBucketPolicy", "DeleteTrail"]})
    )
    result = cli("upload-config", str(config_file))
    assert result.exit_code == 0, result.output
    cli("verify", "--no-probe")  # the small stack has no trail: some checks fail, its S3 calls are what count
    assert cli("destroy", "--yes").exit_code == 0
    operations = {op for op, _, _ in calls}
    assert {"HeadBucket", "PutObject", "GetObject", "PutBucketPolicy", "ListObjectsV2"} <= operations
    assert {"GetPublicAccessBlock", "GetBucketPolicy", "GetBucketNotificationConfiguration"} <= operations
    assert [c for c in calls if c[0] not in NO_OWNER_PARAMETER and c[2] != VICTIM] == []


def test_upload_config_refuses_a_trail_bucket_of_another_account(
    local: LocalAWS, plant: Callable, attacker_s3: BaseClient, config_file: Any
) -> None:
    bucket = plant("someone-elses-trail-bucket")
    with pytest.raises(BucketNotOwned, match="may be an attack"):
        configcmd.upload(Aws(Options()), UI(), config_file, outputs={"TrailBucketName": bucket})
    assert _keys(attacker_s3, bucket) == []


VERIFY_S3_CHECKS = [
    verify.check_public_access,
    verify.check_encryption,
    verify.check_policy,
    verify.check_bucket_notification,
    verify.check_config,
]


@pytest.mark.parametrize("check", VERIFY_S3_CHECKS, ids=[c.__name__ for c in VERIFY_S3_CHECKS])
def test_verify_reads_nothing_from_a_trail_bucket_of_another_account(
    local: LocalAWS, plant: Callable, attacker_s3: BaseClient, check: Callable
) -> None:
    bucket = plant("someone-elses-trail-bucket")
    attacker_s3.put_object(Bucket=bucket, Key=CONFIG_KEY, Body=b'{"monitored_events": ["CreateUser"]}')
    ctx = verify.Context(Aws(Options()), {}, {"TrailBucketName": bucket, "LogDeliveryTopicArn": "arn"}, {})
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        check(ctx)
    assert _status(denied.value) == 403


def test_destroy_lists_no_removal_for_a_bucket_of_another_account(
    local: LocalAWS, plant: Callable, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(PLANTED)
    assert destroy.bucket_exists(Aws(Options()), PLANTED, UI()) is False
    assert "not owned by account 123456789012" in capsys.readouterr().err


# -- the processor reads its trail bucket only when its account owns it -------------------------------
def test_processor_config_cache_refuses_a_bucket_of_another_account(
    victim_s3: BaseClient, attacker_s3: BaseClient, plant: Callable
) -> None:
    """Without the owner, the attacker's config (one harmless rule) would replace the monitoring rules."""
    bucket = plant("someone-elses-trail-bucket")
    attacker_s3.put_object(Bucket=bucket, Key=CONFIG_KEY, Body=b'{"monitored_events": ["NoSuchEvent"]}')
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        ConfigCache(victim_s3, bucket, CONFIG_KEY, expected_owner=VICTIM).matcher()
    assert _status(denied.value) == 403
    unchecked = ConfigCache(victim_s3, bucket, CONFIG_KEY).matcher()  # what an unknown account gives
    assert [r.id for r in unchecked.rules] == ["NoSuchEvent"]


def test_processor_log_read_refuses_a_bucket_of_another_account(
    victim_s3: BaseClient, attacker_s3: BaseClient, plant: Callable
) -> None:
    bucket = plant("someone-elses-trail-bucket")
    key = f"AWSLogs/{VICTIM}/CloudTrail/us-east-1/2026/01/01/x.json.gz"
    attacker_s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    ref = ObjectRef(bucket=bucket, key=key, size=None, etag=None, event_time=None)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        _get_object(victim_s3, ref, VICTIM)
    assert _status(denied.value) == 403
    assert _get_object(victim_s3, ref, ATTACKER).read() == b"{}"


class _Context:
    def __init__(self, arn: str | None) -> None:
        self.invoked_function_arn = arn


@pytest.mark.parametrize(
    ("arn", "account"),
    [
        ("arn:aws:lambda:us-east-1:123456789012:function:trailwatch-processor", VICTIM),
        ("arn:aws-cn:lambda:cn-north-1:123456789012:function:f:live", VICTIM),
        ("not-an-arn", None),
        (None, None),
    ],
)
def test_account_of_the_function(arn: str | None, account: str | None) -> None:
    assert account_of(_Context(arn)) == account


def test_cold_start_takes_the_owner_from_the_function_arn(monkeypatch: pytest.MonkeyPatch) -> None:
    """handler() wires the function's account into the config cache and every log read."""
    from trailwatch_processor import handler as entry

    built: list[Any] = []
    original = entry.build_deps

    def build(*args: Any, **kwargs: Any) -> Any:
        built.append(original(Settings("SecurityEvents", "arn:topic", "trail-bucket"), **kwargs))
        return built[-1]

    monkeypatch.setattr(entry, "_container_deps", None)
    monkeypatch.setattr(entry, "build_deps", build)
    monkeypatch.setattr(entry, "setup_logging", lambda level: None)  # leave the test run's logging alone
    context = _Context("arn:aws:lambda:us-east-1:123456789012:function:trailwatch-processor")
    assert entry.handler({"Records": []}, context) == {"batchItemFailures": []}
    (deps,) = built
    assert deps.bucket_owner == VICTIM and deps.config.expected_owner == VICTIM
