"""What the local CloudFormation models share: property helpers, moto's backends, warnings."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.utilities.utils import get_partition

LogFn = Callable[[str], None]
Json = dict[str, Any]  # a resource's template entry or properties

_log: LogFn = logging.getLogger("trailwatch.local.cfn").warning
_PER_PARTITION = frozenset({"s3", "iam"})  # moto keys these backends by partition, the others by region


def set_log(log: LogFn) -> None:
    """Where warnings about declared properties the local AWS does not emulate go."""
    global _log
    _log = log


def warn(message: str) -> None:
    _log(message)


def moto_backend(service: str, account_id: str, region_name: str) -> Any:
    """moto's backend of `service` for an account and region."""
    from moto.backends import get_backend

    return get_backend(service)[account_id][  # type: ignore[call-overload]
        get_partition(region_name) if service in _PER_PARTITION else region_name
    ]


def queue_name(queue_url_or_arn: str) -> str:
    """A queue name from its URL (what Ref gives) or ARN."""
    return queue_url_or_arn.rstrip("/").replace(":", "/").rsplit("/", 1)[-1]


class Cfn:
    """Shared helpers (a plain mixin: models must subclass CloudFormationModel directly to be found)."""

    @staticmethod
    def _props(cloudformation_json: dict[str, Any]) -> dict[str, Any]:
        return cloudformation_json.get("Properties") or {}

    @classmethod
    def _require(cls, props: dict[str, Any], name: str) -> Any:
        value = props.get(name)
        if value is None or value == "" or value == []:
            raise ValidationError(
                message=f"{cls.cloudformation_type()}: Properties.{name} is required"  # type: ignore[attr-defined]
            )
        return value

    @classmethod
    def _fail(cls, message: str) -> ValidationError:
        return ValidationError(message=f"{cls.cloudformation_type()}: {message}")  # type: ignore[attr-defined]

    @classmethod
    def _bool(cls, props: dict[str, Any], name: str, default: bool | None = None) -> bool | None:
        """A CloudFormation boolean: true/false, or the strings "true"/"false" (any case)."""
        value = props.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise cls._fail(f"Properties.{name} must be true or false, got {value!r}")

    @classmethod
    def _int(cls, props: dict[str, Any], name: str) -> int | None:
        value = props.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise cls._fail(f"Properties.{name} must be an integer, got {value!r}") from None

    @staticmethod
    def _policy_text(document: Any) -> str:
        """A policy document as AWS stores it: JSON text (CloudFormation accepts a mapping or a string)."""
        if isinstance(document, str):
            return json.dumps(json.loads(document))
        return json.dumps(document)

    @classmethod
    def _unsupported(cls, props: dict[str, Any], handled: set[str], resource: str) -> None:
        """Say which declared properties the local AWS does not apply (never silently)."""
        for name in sorted(set(props) - handled):
            warn(f"{cls.cloudformation_type()} {resource}: property {name} is not emulated locally")  # type: ignore[attr-defined]
