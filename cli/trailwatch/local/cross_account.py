"""Requests across accounts as AWS decides them, for the local AWS (attach mode's log-archive account).

moto keeps one bucket namespace for all accounts and lets any account read any bucket, decrypt with any
key and forward events to any bus. AWS lets a principal of account A act on a resource of account B only
when B's resource policy allows it (the identity policy in A must allow it too; the local AWS does not
enforce identity policies in any account). Here:

- **S3** (`cross_account_guard`, a WSGI middleware): a request on a bucket another account owns is served
  only when the bucket policy allows the caller the action (an explicit Deny wins); otherwise 403
  AccessDenied (HEAD with the bucket's region in ``x-amz-bucket-region``, as S3 answers).
- **KMS through S3**: reading an SSE-KMS object of another account also needs the key policy to allow the
  caller ``kms:Decrypt`` (``kms:ViaService`` = ``s3.<region>.amazonaws.com``); otherwise 403 AccessDenied
  (KMS.AccessDeniedException on AWS is reported by S3 as AccessDenied).
- **EventBridge**: S3's EventBridge events (`send_event_bridge_message`, replacing moto's sender) are
  shaped as AWS sends them and put on the bucket owner's default bus in the bucket's region by
  `eventbridge.put_on_bus`, the one path of every event to a bus; a bus of another account takes an event
  only when its policy allows the sending account ``events:PutEvents`` (`bus_admits`).
- ``AWS::Events::EventBusPolicy`` (`EventBusPolicy`), the CloudFormation type main.yaml's attach mode
  uses to admit the owner's forwarding rule, which moto's CloudFormation does not know.

The caller is the access key's identity (`cloudtrail_identity.caller_identity`): an assumed role matches a
principal naming the role or its account; moto's test keys are the default account's root.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from moto.core.common_models import CloudFormationModel

from trailwatch.local import eventbridge, s3_events, s3_policy
from trailwatch.local.cfn_common import Cfn, Json, moto_backend
from trailwatch.local.operations import HttpRequest, identify, parse_credential

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]

# S3 operations whose IAM action is not "s3:" + the operation name (the S3 User Guide's action mapping).
_S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "HeadBucket": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    "PutBucketNotificationConfiguration": "s3:PutBucketNotification",
    "DeleteObjects": "s3:DeleteObject",
}
_VERSIONED = {"s3:GetObject": "s3:GetObjectVersion", "s3:DeleteObject": "s3:DeleteObjectVersion"}


@dataclass(frozen=True)
class Caller:
    """Who signed a request: its account and every principal string a policy may name it by."""

    account: str
    names: frozenset[str]

    @classmethod
    def from_access_key(cls, access_key_id: str) -> Caller:
        from moto.core import DEFAULT_ACCOUNT_ID

        from trailwatch.local.cloudtrail_identity import caller_identity

        identity, account = caller_identity(access_key_id, DEFAULT_ACCOUNT_ID)
        names = {account, f"arn:aws:iam::{account}:root", str(identity.get("arn", ""))}
        issuer = identity.get("sessionContext", {}).get("sessionIssuer", {}).get("arn")
        if issuer:
            names.add(str(issuer))
        return cls(account, frozenset(n for n in names if n))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principal_matches(principal: Any, caller: Caller | None, service: str | None) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if service is not None:
        return service in _listed(principal.get("Service", []))
    if caller is None:
        return False
    return any(name == "*" or str(name) in caller.names for name in _listed(principal.get("AWS", [])))


def _matches_any(patterns: Any, value: str) -> bool:
    return any(s3_policy._wildcard(str(p)).fullmatch(value) for p in _listed(patterns))


def policy_decision(
    policy: str | dict[str, Any] | None,
    action: str,
    resource: str,
    context: dict[str, str],
    *,
    caller: Caller | None = None,
    service: str | None = None,
) -> bool | None:
    """A resource policy's answer for one request: True allowed, False explicitly denied, None silent.

    The principal is `caller` (an AWS principal) or `service` (e.g. ``events.amazonaws.com``)."""
    if not policy:
        return None
    document = json.loads(policy) if isinstance(policy, str) else policy
    allowed: bool | None = None
    for statement in _listed(document.get("Statement") or []):
        if not isinstance(statement, dict):
            continue
        if not _principal_matches(statement.get("Principal"), caller, service):
            continue
        if not _matches_any(statement.get("Action", []), action):
            continue
        if "Resource" in statement and not _matches_any(statement["Resource"], resource):
            continue
        if not s3_policy.condition_holds(statement.get("Condition") or {}, context):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


# ------------------------------------------------------------------ S3 (and KMS through S3)


def s3_action(operation: str, query: dict[str, list[str]]) -> str:
    action = _S3_ACTIONS.get(operation, f"s3:{operation}")
    if "versionId" in query:
        action = _VERSIONED.get(action, action)
    return action


def _action_by_method(environ: dict, method: str, bucket: str) -> tuple[str, str | None]:
    from urllib.parse import unquote

    path = unquote(environ.get("PATH_INFO", "")).lstrip("/")
    key = path.split("/", 1)[1] if path.startswith(f"{bucket}/") else (path if path != bucket else "")
    by_method = {"GET": ("s3:GetObject", "s3:ListBucket"), "HEAD": ("s3:GetObject", "s3:ListBucket"),
                 "PUT": ("s3:PutObject", "s3:CreateBucket"), "POST": ("s3:PutObject", "s3:PutObject"),
                 "DELETE": ("s3:DeleteObject", "s3:DeleteBucket")}  # fmt: skip
    on_object, on_bucket = by_method.get(method, ("s3:*", "s3:*"))
    return (on_object, key) if key else (on_bucket, None)


def _bucket_backend(bucket: str) -> Any:
    from moto.s3.models import s3_backends

    partition, account = s3_backends.bucket_accounts[bucket]
    return s3_backends[account][partition]


def _object_kms_key(bucket: str, key: str, version_id: str | None) -> str | None:
    """The KMS key of the object (the version asked for, else the latest), None for SSE-S3 or no object."""
    try:
        obj = _bucket_backend(bucket).get_object(bucket, key, version_id=version_id)
    except Exception:  # no such key or version: S3 answers that itself
        return None
    if obj is None or getattr(obj, "encryption", None) != "aws:kms":
        return None
    return str(obj.kms_key_id or "") or None


def kms_decrypt_allowed(key_ref: str, bucket_account: str, region: str, caller: Caller) -> bool:
    """Whether the key policy lets `caller` decrypt through S3 of `region` (a key of the caller's own
    account is left to IAM, which the local AWS does not enforce)."""
    from moto.kms.models import kms_backends

    account = key_ref.split(":")[4] if key_ref.startswith("arn:") else bucket_account
    key_region = key_ref.split(":")[3] if key_ref.startswith("arn:") else region
    if account == caller.account:
        return True
    backend = kms_backends[account][key_region]
    try:
        key = backend.keys[backend.get_key_id(key_ref)]
    except Exception:
        key = backend.describe_key(key_ref)
    context = {"kms:viaservice": f"s3.{region}.amazonaws.com", "kms:calleraccount": caller.account}
    return bool(policy_decision(key.policy, "kms:Decrypt", key.arn, context, caller=caller))


def s3_refusal(environ: dict, request: HttpRequest, caller: Caller) -> str | None:
    """Why AWS would refuse this S3 request on another account's bucket (None: allowed, or own bucket)."""
    from trailwatch.local.server import s3_bucket_owner, s3_request_bucket

    bucket = s3_request_bucket(environ)
    owner = s3_bucket_owner(bucket) if bucket else None
    if owner is None or owner == caller.account or bucket is None:
        return None
    query = request.query_params
    found = identify(request, "s3")
    if found is not None:
        action, key = s3_action(found.operation, query), found.labels.get("Key")
    else:  # the request's shape is not in the model (e.g. a bare HEAD): its action by method
        action, key = _action_by_method(environ, request.method, bucket)
    resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")
    context = {"aws:securetransport": "true", "aws:principalaccount": caller.account}
    if "prefix" in query:
        context["s3:prefix"] = query["prefix"][0]
    stored = _bucket_backend(bucket).get_bucket(bucket)
    policy = stored.policy
    text = policy.decode() if isinstance(policy, bytes) else policy
    if not policy_decision(text, action, resource, context, caller=caller):
        return f"{action} on {resource}: not allowed to account {caller.account} by the bucket policy"
    if key and action in ("s3:GetObject", "s3:GetObjectVersion"):
        kms_key = _object_kms_key(bucket, key, (query.get("versionId") or [None])[0])
        if kms_key and not kms_decrypt_allowed(kms_key, owner, stored.region_name, caller):
            return f"kms:Decrypt with {kms_key}: not allowed to account {caller.account} by the key policy"
    return None


def cross_account_guard(app: WSGIApp, log: Callable[[str], None] | None = None) -> WSGIApp:
    """WSGI middleware: S3 requests on another account's bucket as AWS decides them (module docstring)."""

    def guarded(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = HttpRequest.from_environ(environ, b"")  # S3's REST operations are told without the body
        credential = parse_credential(request.header("Authorization"), request.query)
        if credential is None or credential.service != "s3" or request.path.startswith("/moto-api"):
            return app(environ, start_response)
        why = s3_refusal(environ, request, Caller.from_access_key(credential.access_key_id))
        if why is None:
            return app(environ, start_response)
        if log is not None:
            log(f"cross-account: refused {request.method} {request.path}: {why}")
        return _access_denied(environ, start_response)

    return guarded


def _access_denied(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    from trailwatch.local.server import s3_request_bucket

    bucket = s3_request_bucket(environ)
    headers = [("Content-Type", "application/xml")]
    try:
        headers.append(("x-amz-bucket-region", _bucket_backend(str(bucket)).get_bucket(bucket).region_name))
    except Exception:  # no such bucket: no region to name
        pass
    body = b""
    if environ.get("REQUEST_METHOD") != "HEAD":  # S3 answers HEAD without a body
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            b"<Message>Access Denied</Message></Error>"
        )
    start_response("403 Forbidden", [*headers, ("Content-Length", str(len(body)))])
    return [body]


# ------------------------------------------------------------------ S3 -> EventBridge

_CREATED_REASONS = {
    "Put": "PutObject",
    "Post": "PostObject",
    "Copy": "CopyObject",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
}


def s3_eventbridge_event(account_id: str, bucket: Any, event_name: str, key: Any) -> dict[str, Any] | None:
    """The EventBridge event S3 sends for one object event (S3 User Guide, "EventBridge event message
    structure"); None for events other than Object Created / Object Deleted."""
    _, kind, how = ([*event_name.split(":"), "", ""])[:3]
    now = datetime.now(UTC)
    obj: dict[str, Any] = {"key": key.name}
    version = str(getattr(key, "version_id", None) or "null")
    if kind == "ObjectCreated":
        detail_type, reason = "Object Created", _CREATED_REASONS.get(how, "PutObject")
        obj |= {"size": key.size, "etag": key.etag.replace('"', "")}
    elif kind == "ObjectRemoved":
        detail_type, reason = "Object Deleted", "DeleteObject"
    elif kind == "LifecycleExpiration":
        detail_type, reason = "Object Deleted", "Lifecycle Expiration"
    else:
        return None
    if version != "null":
        obj["version-id"] = version
    obj["sequencer"] = s3_events.sequencer()
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket.name},
        "object": obj,
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": account_id,
        "source-ip-address": "127.0.0.1",
        "reason": reason,
    }
    if kind != "ObjectCreated":
        marker = how == "DeleteMarkerCreated"
        detail["deletion-type"] = "Delete Marker Created" if marker else "Permanently Deleted"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": bucket.account_id,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": detail,
    }


def bus_admits(account: str, region: str, bus_name: str, source_account: str) -> bool:
    """Whether an event of `source_account` may be put on this bus (its own account always may)."""
    if account == source_account:
        return True
    bus = moto_backend("events", account, region).event_buses.get(bus_name)
    if bus is None:
        return False
    caller = Caller(source_account, frozenset({source_account, f"arn:aws:iam::{source_account}:root"}))
    return bool(policy_decision(bus.policy, "events:PutEvents", bus.arn, {}, caller=caller))


def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    """Replaces moto.s3.notifications._send_event_bridge_message: the AWS-shaped event on the bucket
    owner's default bus in the bucket's region (asynchronous on AWS: a failure never fails the request)."""
    try:
        event = s3_eventbridge_event(account_id, bucket, str(getattr(event_name, "value", event_name)), key)
        if event is not None:
            eventbridge.put_on_bus(event, bucket.account_id, bucket.region_name, "default")
    except Exception:  # as moto's sender: the S3 call succeeds whatever happens here (async on AWS)
        pass


# ------------------------------------------------------------------ AWS::Events::EventBusPolicy


class EventBusPolicy(Cfn, CloudFormationModel):
    """AWS::Events::EventBusPolicy (Statement form): one statement of a bus's policy, named StatementId."""

    SERVICE: ClassVar[str] = "events"

    def __init__(self, bus: str, sid: str, account_id: str, region_name: str) -> None:
        self.bus, self.sid, self.account_id, self.region_name = bus, sid, account_id, region_name

    @classmethod
    def cloudformation_type(cls) -> str:
        return "AWS::Events::EventBusPolicy"

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return ""

    @property
    def physical_resource_id(self) -> str:
        return self.sid

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Json, account_id: str, region_name: str, **kwargs: Any
    ) -> EventBusPolicy:
        from moto.events.models import EventBusPolicyStatement

        props = cls._props(cloudformation_json)
        sid = str(cls._require(props, "StatementId"))
        bus_name = str(props.get("EventBusName") or "default").split("/")[-1]
        statement = props.get("Statement")
        if not isinstance(statement, dict):
            raise cls._fail("Properties.Statement (a policy statement) is required")
        bus = moto_backend("events", account_id, region_name).describe_event_bus(bus_name)
        bus._statements[sid] = EventBusPolicyStatement.from_dict(
            {"Sid": sid, "Effect": "Allow", "Resource": bus.arn, **statement}
        )
        return cls(bus_name, sid, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource: Any, new_resource_name: str, cloudformation_json: Json, account_id: str,
        region_name: str,
    ) -> EventBusPolicy:  # fmt: skip
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        bus = moto_backend("events", self.account_id, self.region_name).event_buses.get(self.bus)
        if bus is not None:
            bus.remove_statement(self.sid)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Json, account_id: str, region_name: str
    ) -> None:
        bus = moto_backend("events", account_id, region_name).event_buses.get("default")
        if bus is not None and resource_name:
            bus.remove_statement(resource_name)


MODELS: tuple[type[CloudFormationModel], ...] = (EventBusPolicy,)
