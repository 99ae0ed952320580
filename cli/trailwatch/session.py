"""boto3 session and clients from the global options (and the AWS CLI's own environment variables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.config

from trailwatch.errors import CREDENTIALS_HINT, REGION_HINT, NoCredentials, NoRegion

DEFAULT_STACK_NAME = "trailwatch"


def check_endpoint_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; ValueError (a usage error, said why) otherwise.

    botocore raises a bare ValueError deep inside client creation for the same input."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as err:
        raise ValueError(f"{url!r} is not a URL ({err}); expected e.g. http://127.0.0.1:4566") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or " " in url:
        raise ValueError(f"{url!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:4566")
    return url


@dataclass
class Options:
    """The global options, given before or after the subcommand name."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    stack_name: str = DEFAULT_STACK_NAME
    verbose: int = 0


@dataclass
class Aws:
    """Lazily created boto3 clients sharing one session, region and endpoint."""

    options: Options
    _session: boto3.Session | None = None
    _clients: dict[str, Any] = field(default_factory=dict)
    _account: str | None = None

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            self._session = boto3.Session(
                profile_name=self.options.profile or None, region_name=self.options.region or None
            )
        return self._session

    @property
    def region(self) -> str:
        region = self.session.region_name
        if not region:
            raise NoRegion("No AWS region configured.", REGION_HINT)
        return region

    @property
    def endpoint_url(self) -> str | None:
        return self.options.endpoint_url or None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            if self.session.get_credentials() is None:
                raise NoCredentials("No AWS credentials found.", CREDENTIALS_HINT)
            config = botocore.config.Config(
                retries={"mode": "standard"},
                s3={"addressing_style": "path"} if self.endpoint_url else {},
            )
            self._clients[service] = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=config
            )
        return self._clients[service]

    def account_id(self) -> str:
        if self._account is None:
            self._account = str(self.client("sts").get_caller_identity()["Account"])
        return self._account

    @property
    def partition(self) -> str:
        return self.session.get_partition_for_region(self.region)

    def cli_flags(self) -> str:
        """The `aws` CLI flags that reach the same place, for printed commands."""
        flags = [f"--region {self.region}"]
        if self.options.profile:
            flags.append(f"--profile {self.options.profile}")
        if self.endpoint_url:
            flags.append(f"--endpoint-url {self.endpoint_url}")
        return " ".join(flags)
