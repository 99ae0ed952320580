"""Settings from the function's environment and AWS clients, created once per container.

boto3 honours ``AWS_ENDPOINT_URL`` (and the per-service variants) by itself, which is how the function
reaches the local AWS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_CONFIG_KEY = "config/monitored_events.json"
DEFAULT_RETENTION_DAYS = 90

# Standard retry mode: exponential backoff with jitter on throttling and transient errors; timeouts well
# below the function timeout so a hung connection is retried instead of eating the whole invocation.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=20,
    tcp_keepalive=True,
)


class SettingsError(ValueError):
    """The function's environment is incomplete or malformed."""


@dataclass(frozen=True)
class Settings:
    events_table: str
    alert_topic_arn: str
    config_bucket: str
    config_key: str = DEFAULT_CONFIG_KEY
    retention_days: int = DEFAULT_RETENTION_DAYS
    log_level: str = "INFO"
    claim_stale_seconds: float | None = None  # None: the function timeout, from the Lambda context
    # How often the config object is re-checked (conditional GET). 60 s in production; tests and the proof
    # shorten it instead of waiting a minute.
    config_ttl_seconds: float = 60.0
    # The processing queue's maxReceiveCount: the last receive of a failing file declares it poison.
    max_receive_count: int | None = None
    # Hunts: the hunt queue's ARN; its messages must be hunt requests (hunt.py).
    hunt_queue_arn: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [name for name in ("EVENTS_TABLE", "ALERT_TOPIC_ARN", "CONFIG_BUCKET") if not env.get(name)]
        if missing:
            raise SettingsError(f"environment variable(s) not set: {', '.join(missing)}")
        return cls(
            events_table=env["EVENTS_TABLE"],
            alert_topic_arn=env["ALERT_TOPIC_ARN"],
            config_bucket=env["CONFIG_BUCKET"],
            config_key=env.get("CONFIG_KEY") or DEFAULT_CONFIG_KEY,
            retention_days=_number(env, "RETENTION_DAYS", DEFAULT_RETENTION_DAYS, int),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            claim_stale_seconds=_number(env, "CLAIM_STALE_SECONDS", None, float),
            config_ttl_seconds=_number(env, "CONFIG_TTL_SECONDS", 60.0, float),
            max_receive_count=_number(env, "MAX_RECEIVE_COUNT", None, int),
            hunt_queue_arn=env.get("HUNT_QUEUE_ARN") or None,
        )


def _number(env: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    text = env.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r}: expected a {kind.__name__}") from None
    if value <= 0:
        raise SettingsError(f"{name}={text!r}: must be positive")
    return value


@dataclass(frozen=True)
class Clients:
    s3: Any
    dynamodb: Any
    sns: Any

    @classmethod
    def create(cls, session: boto3.session.Session | None = None) -> Clients:
        session = session or boto3.session.Session()
        return cls(
            s3=session.client("s3", config=CLIENT_CONFIG),
            dynamodb=session.client("dynamodb", config=CLIENT_CONFIG),
            sns=session.client("sns", config=CLIENT_CONFIG),
        )
