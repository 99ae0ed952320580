"""boto3 clients and CLI environments for the tests (and the benchmarks) that talk to an AWS: moto's
in-process mock or a running LocalAWS."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from botocore.client import BaseClient

if TYPE_CHECKING:  # the local AWS costs seconds to import
    from trailwatch.local.server import LocalAWS

ClientFactory = Callable[..., BaseClient]

# The LocalAWS takes any credentials; these are its root user's (the account 123456789012).
TEST_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def cached_clients(session: boto3.session.Session, **client_kwargs: Any) -> ClientFactory:
    """`make("s3")`: one client per service of `session`, made on first use with `client_kwargs`."""
    cache: dict[str, BaseClient] = {}

    def make(service: str) -> BaseClient:
        if service not in cache:
            cache[service] = session.client(service, **client_kwargs)
        return cache[service]

    return make


def assumed_role_session(credentials: dict[str, Any], region: str | None = None) -> boto3.session.Session:
    """A session with the `Credentials` of an sts:AssumeRole answer (the role's account on a LocalAWS)."""
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )


def local_client(aws: LocalAWS, service: str, region: str) -> Any:
    """A client of `aws` in `region` with the root test credentials (for a region the factory is not in)."""
    return boto3.client(service, endpoint_url=aws.endpoint, region_name=region, **TEST_CREDENTIALS)


def cli_environment(aws: LocalAWS) -> dict[str, str]:
    """The environment that points the `trailwatch` CLI (any AWS SDK) at `aws` as its root user."""
    return {
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS["aws_secret_access_key"],
        "AWS_REGION": aws.region,
        "AWS_DEFAULT_REGION": aws.region,
    }
