"""`trailwatch local`: run the local AWS (moto's server with trailwatch's additions) in the foreground."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType

import click

from trailwatch.errors import UsageError
from trailwatch.local.server import LocalAWS, is_loopback_name

TEST_ACCESS_KEY_ID = "test"
TEST_SECRET_ACCESS_KEY = "test"
DEV_USER = "trailwatch-dev"
DEFAULT_DELIVERY_INTERVAL = 300.0  # AWS: a log file about every 5 minutes


@click.group("local")
def local_group() -> None:
    """The local AWS: the whole pipeline on this machine, no AWS account needed."""


def export_lines(
    endpoint: str,
    region: str,
    access_key_id: str = TEST_ACCESS_KEY_ID,
    secret_access_key: str = TEST_SECRET_ACCESS_KEY,
) -> list[str]:
    """The shell lines that point the AWS CLI and SDKs at the local AWS (default: the root test keys).

    AWS_DEFAULT_REGION as well as AWS_REGION: boto3 and AWS CLI v1 read only the former.
    """
    return [
        f"export AWS_ENDPOINT_URL={endpoint}",
        f"export AWS_ACCESS_KEY_ID={access_key_id}",
        f"export AWS_SECRET_ACCESS_KEY={secret_access_key}",
        f"export AWS_REGION={region}",
        f"export AWS_DEFAULT_REGION={region}",
    ]


def create_dev_user(aws: LocalAWS, name: str = DEV_USER) -> tuple[str, str]:
    """An IAM user with administrator access and an access key on the local AWS: (key id, secret).

    Created through the emulator's own (unrecorded) client, so the trail does not show it as root's calls;
    calls made with its key are recorded as an ordinary `IAMUser`, not as root usage."""
    import boto3

    from trailwatch.local.recorder import mark_internal

    iam = mark_internal(
        boto3.client(
            "iam",
            endpoint_url=aws.endpoint,
            region_name=aws.region,
            aws_access_key_id=TEST_ACCESS_KEY_ID,
            aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
        )
    )
    iam.create_user(UserName=name)
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="administrator", PolicyDocument=json.dumps(admin))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def exposure_warning(host: str, port: int) -> str | None:
    """The warning for a bind address beyond loopback (None for loopback): what anyone reaching it can do."""
    if is_loopback_name(host):
        return None
    where = "every interface" if host.strip("[]") in ("", "0.0.0.0", "::") else host
    return (
        f"WARNING: --host {host or '0.0.0.0'} listens beyond loopback ({where}, port {port}). The local AWS "
        "checks no credentials and its Lambda runtime runs any function created on it as your user: anyone "
        "who can reach this address can read and change everything in it and run code on this machine. "
        "Use it only on a network you trust; the default --host 127.0.0.1 is for you alone."
    )


@local_group.command("up")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=4566, show_default=True, help="Port (0: any free)."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Beyond loopback, anyone who reaches it can run code here (warned).",
)
@click.option(
    "--region", default="us-east-1", show_default=True, help="Region of the trail delivery and runtime."
)
@click.option(
    "--delivery-interval",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_DELIVERY_INTERVAL,
    show_default=True,
    help="Seconds between CloudTrail log file deliveries (default 300, as AWS: about every 5 minutes). "
    "EventBridge gets each event at once, whatever the interval.",
)
@click.option(
    "--cloudtrail/--no-cloudtrail",
    default=True,
    show_default=True,
    help="Record the calls served and deliver them to the emulator's trails as CloudTrail log files.",
)
@click.option(
    "--lambda-runtime/--no-lambda-runtime",
    default=True,
    show_default=True,
    help="Run Lambda functions for their SQS event source mappings.",
)
def up(
    port: int, host: str, region: str, delivery_interval: float, cloudtrail: bool, lambda_runtime: bool
) -> None:
    """Run an AWS-compatible endpoint on this machine until Ctrl-C.

    \b
    Example:
      trailwatch local up --port 4566
      # in another shell, after the printed exports:
      aws s3 ls
    """
    aws = LocalAWS(
        host,
        port,
        region,
        delivery_interval=delivery_interval,
        cloudtrail=cloudtrail,
        lambda_runtime=lambda_runtime,
    )
    try:
        aws.start()
    except OSError as err:
        raise UsageError(
            f"cannot listen on {host}:{port}: {err.strerror or err}",
            hint="choose another --port (0 picks a free one) or stop the program using it",
        ) from err
    stop = threading.Event()
    previous = _on_signals(stop)
    try:
        warning = exposure_warning(host, aws.port)
        if warning:
            click.secho(warning, fg="red", bold=True, err=True)
        click.echo(f"trailwatch local AWS on {aws.endpoint} (region {aws.region}, account {aws.account_id})")
        key_id, secret = create_dev_user(aws)
        click.echo(f"Point the AWS CLI or an SDK at it, as the IAM user {DEV_USER} (administrator):")
        for line in export_lines(aws.endpoint, aws.region, key_id, secret):
            click.echo(f"  {line}")
        click.echo("  # or as the account's root user (the test credentials; every call is root usage):")
        click.echo(f"  # export AWS_ACCESS_KEY_ID={TEST_ACCESS_KEY_ID}")
        click.echo(f"  # export AWS_SECRET_ACCESS_KEY={TEST_SECRET_ACCESS_KEY}")
        click.echo("Press Ctrl-C to stop.")
        while not stop.wait(0.5):
            pass
    finally:
        _restore_signals(previous)
        click.echo("stopping the local AWS...")
        aws.stop()


def _on_signals(stop: threading.Event) -> dict[int, object]:
    """Ctrl-C and SIGTERM end `up` cleanly (services stopped, port released)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (e.g. invoked from a test runner's thread)
            pass
    return previous


def _restore_signals(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
