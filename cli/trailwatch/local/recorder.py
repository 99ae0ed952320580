"""CloudTrail for the local AWS: a record for each request moto serves, delivered per trail into S3.

`CloudTrailRecorder.wrap(app)` is a WSGI middleware around moto's app. For every signed request it serves it
builds a CloudTrail record (operation found through botocore's models, see `operations`), decides which of
the emulator's trails take it (logging on, region, global service events, basic or advanced event selectors)
and queues it per trail. Every `interval` seconds (and on `flush()`) the queued records are written as gzip
log files in CloudTrail's key layout into each trail's bucket through moto's S3 backend, whose `put_object`
fires the bucket's event notifications (S3 -> SNS/SQS/Lambda) as a real delivery does. These writes do not
pass through the middleware, so they are not recorded, like CloudTrail's own deliveries.

Identity: an access key of an IAM user created in the emulator gives an `IAMUser` identity, a key from
`sts:AssumeRole` an `AssumedRole` identity; any other key (moto's default/test credentials such as `test`
or `testing`) is taken as the account's root user: `Root`, arn `arn:aws:iam::<account>:root`.

Log file validation: trails with it on get a digest file per region that had log files in the delivery period
(AWS: one per region and hour, also when empty; the emulator writes none for an idle period) in the
`CloudTrail-Digest/` layout. Its signature is an HMAC with a key local to this process, not AWS's RSA
signature: no AWS tool will validate it (the digest says so in `localEmulatorNote`).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.parsers
from botocore.model import Shape

from trailwatch.local import operations
from trailwatch.local.operations import HttpRequest, Identified, read_wsgi_body

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]
LogFn = Callable[[str], None]

# Requests carrying this header are the emulator's own service machinery (the Lambda runtime polling event
# source mappings and SQS as the Lambda service does), which AWS does not log in the account's trail. The
# calls of the function code are recorded: only the runtime's own clients carry it (see `mark_internal`).
INTERNAL_HEADER = "X-Trailwatch-Internal"
EVENT_VERSION = "1.09"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Events of these services are global: delivered to trails that include global service events.
GLOBAL_EVENT_SOURCES = frozenset(
    {"iam.amazonaws.com", "sts.amazonaws.com", "cloudfront.amazonaws.com", "route53.amazonaws.com"}
)
READ_ONLY_PREFIXES = (
    "Get",
    "List",
    "Describe",
    "Head",
    "Lookup",
    "BatchGet",
    "Query",
    "Scan",
    "Search",
    "Select",
    "Simulate",
    "Test",
    "Validate",
    "Decrypt",
    "Verify",
)
LAMBDA_DATA_OPERATIONS = frozenset({"Invoke", "InvokeAsync", "InvokeWithResponseStream"})
# Data-plane calls CloudTrail logs as data events (off by default), with their resource type. Besides keeping
# the records true, this keeps the emulator's own pipeline (the Lambda runtime polling SQS, the processor
# writing DynamoDB and publishing to SNS) out of a default trail, as in AWS.
SQS_DATA_OPERATIONS = frozenset(
    {
        "SendMessage",
        "SendMessageBatch",
        "ReceiveMessage",
        "DeleteMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
    }
)
DYNAMODB_DATA_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
    }
)
SNS_DATA_OPERATIONS = frozenset({"Publish", "PublishBatch"})
MAX_PARAMETER_CHARS = 10_240
# Where CloudTrail's eventName is not the operation's name: S3 logs ListObjectsV2 calls as ListObjects with
# requestParameters "list-type": "2" (as in the real records of tests/data/cloudtrail).
EVENT_NAME_OVERRIDES = {("s3", "ListObjectsV2"): "ListObjects"}
_RANDOM_ALPHABET = string.ascii_letters + string.digits
_XML_CODE = re.compile(rb"<Code>([^<]+)</Code>")
_XML_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")
_XML_REQUEST_ID = re.compile(rb"<RequestId>([^<]+)</RequestId>")
_XML_KEY = re.compile(rb"<Key>([^<]+)</Key>")


def _now() -> datetime:
    return datetime.now(UTC)


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


# ---------------------------------------------------------------------------------------------- identity


def caller_identity(access_key_id: str, default_account: str) -> tuple[dict[str, Any], str]:
    """The `userIdentity` of a caller and its account id, from moto's IAM and STS state."""
    from moto.iam.models import iam_backends

    for account_id, by_partition in list(dict.items(iam_backends)):
        for backend in list(dict.values(by_partition)):
            key = backend.access_keys.get(access_key_id)
            if key is None:
                continue
            if key.role_arn:
                return _assumed_role_identity(access_key_id, account_id, key.role_arn), account_id
            if key.user_name:
                try:
                    user = backend.get_user(key.user_name)
                except Exception:  # the user was deleted; its key is orphaned
                    continue
                identity = {
                    "type": "IAMUser",
                    "principalId": user.id,
                    "arn": user.arn,
                    "accountId": account_id,
                    "accessKeyId": access_key_id,
                    "userName": user.name,
                }
                return identity, account_id
    identity = {
        "type": "Root",
        "principalId": default_account,
        "arn": f"arn:aws:iam::{default_account}:root",
        "accountId": default_account,
        "accessKeyId": access_key_id,
    }
    return identity, default_account


def _assumed_role_identity(access_key_id: str, account_id: str, role_arn: str) -> dict[str, Any]:
    from moto.sts.models import sts_backends

    identity: dict[str, Any] = {"type": "AssumedRole", "accountId": account_id, "accessKeyId": access_key_id}
    for backend in list(dict.values(dict.get(sts_backends, account_id) or {})):
        role = backend.get_assumed_role_from_access_key(access_key_id)
        if role is not None:
            identity |= {"principalId": role.user_id, "arn": role.arn}
            break
    identity["sessionContext"] = {
        "sessionIssuer": {
            "type": "Role",
            "arn": role_arn,
            "accountId": account_id,
            "userName": role_arn.rsplit("/", 1)[-1],
        }
    }
    return identity


# ---------------------------------------------------------------------------------------------- parameters


HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"


def _clip(value: Any, shape: Shape | None = None) -> Any:
    """JSON parameters as CloudTrail writes them: structure members in lowerCamel (map keys, such as table
    names or attribute names, unchanged, as the model tells them apart), sensitive members hidden, long
    strings (code zips, large documents) cut."""
    if shape is not None and shape.metadata.get("sensitive"):
        return HIDDEN
    if isinstance(value, str):
        return f"<{len(value)} characters omitted>" if len(value) > MAX_PARAMETER_CHARS else value
    if isinstance(value, list):
        member = getattr(shape, "member", None)
        return [_clip(v, member) for v in value]
    if isinstance(value, dict):
        if shape is not None and shape.type_name == "map":
            return {str(k): _clip(v, shape.value) for k, v in value.items()}
        members = getattr(shape, "members", {}) if shape is not None else {}
        return {_lower_camel(str(k)): _clip(v, members.get(k)) for k, v in value.items()}
    return value


def _unflatten(params: Mapping[str, list[str]]) -> dict[str, Any]:
    """Query-protocol parameters (`Tags.member.1.Key=k`) as nested JSON with lowerCamel names; a parameter
    whose name does not nest (`.0`, `A.1` after `A=x`) is kept flat under its own name."""
    root: dict[str, Any] = {}
    for flat, values in sorted(params.items()):
        parts = [p for p in flat.split(".") if p and p not in ("member", "entry", "item")]
        if not parts or not values:
            continue
        try:
            _place(root, parts, values[0])
        except ValueError:
            root[flat] = values[0]
    return root


def _place(root: dict[str, Any], parts: list[str], value: str) -> None:
    node: Any = root
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        key: Any
        if part.isdigit():
            key = int(part) - 1  # the protocol counts from 1
            if not isinstance(node, list) or not 0 <= key < 1000:
                raise ValueError(f"bad list index {part!r}")
            node.extend([None] * (key + 1 - len(node)))
        else:
            if not isinstance(node, dict):
                raise ValueError(f"member {part!r} under a list")
            key = _lower_camel(part)
        if last:
            node[key] = value
            return
        child = node[key] if isinstance(node, list) else node.get(key)
        if child is None:
            child = [] if parts[i + 1].isdigit() else {}
            node[key] = child
        node = child


def request_parameters(request: HttpRequest, ident: Identified) -> dict[str, Any] | None:
    """requestParameters, decoded as far as the protocol allows; None when there is nothing."""
    protocol = ident.protocol or ident.model.service_model.protocol
    params: dict[str, Any] = {}
    skip = {"Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires"}
    skip |= {"X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "x-id"}
    query = {k: v for k, v in request.query_params.items() if k not in skip}
    if request.header("X-Amz-Target") or protocol in ("json", "rest-json"):
        document = operations.decode_json_body(request.body)
        if isinstance(document, dict):
            params |= _clip(document, ident.model.input_shape)
    if request.form_params:
        params |= _unflatten({k: v for k, v in request.form_params.items() if k not in skip})
    if query:
        if protocol in ("query", "ec2"):
            params |= _unflatten(query)
        else:
            params |= {k: (v[0] if len(v) == 1 else v) for k, v in query.items()}
    for label, value in ident.labels.items():
        if ident.service == "s3" and label == "Bucket":
            params["bucketName"] = value
        else:
            params[_lower_camel(label)] = value
    if ident.service == "s3" and params and request.header("Host"):
        params["Host"] = request.header("Host")
    return params or None


MAX_RESPONSE_ELEMENTS_CHARS = 102_400


def response_elements(served: Served, ident: Identified, read_only: bool) -> dict[str, Any] | None:
    """responseElements of a successful write call, parsed with botocore's parser for the protocol used
    (structure members in lowerCamel, sensitive members hidden). None for reads (CloudTrail leaves most of
    them out), failures, data events and anything that does not parse."""
    shape = ident.model.output_shape
    if read_only or served.status >= 400 or shape is None or not ident.protocol:
        return None
    try:
        parser = botocore.parsers.create_parser(ident.protocol)
        response = {
            "body": served.response_body,
            "headers": served.response_headers,
            "status_code": served.status,
        }
        parsed = parser.parse(response, shape)
    except Exception:
        return None
    parsed.pop("ResponseMetadata", None)
    elements = _clip(_jsonable(parsed), shape)
    if not elements or len(json.dumps(elements)) > MAX_RESPONSE_ELEMENTS_CHARS:
        return None
    return elements


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(TIME_FORMAT)
    if isinstance(value, (bytes, bytearray)):
        return HIDDEN
    if hasattr(value, "read"):  # a streaming body
        return None
    return value


# ---------------------------------------------------------------------------------------------- errors


def parse_error(body: bytes, headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(errorCode, errorMessage) from an AWS error response (XML or JSON body, or x-amzn-ErrorType)."""
    code = message = None
    stripped = body.lstrip()
    if stripped.startswith(b"{"):
        try:
            document = json.loads(body)
        except ValueError:
            document = {}
        if isinstance(document, dict):
            code = document.get("__type") or document.get("code") or document.get("Code")
            message = document.get("message") or document.get("Message")
    elif stripped.startswith(b"<"):
        match = _XML_CODE.search(body)
        code = match.group(1).decode("utf-8", "replace") if match else None
        match = _XML_MESSAGE.search(body)
        message = match.group(1).decode("utf-8", "replace") if match else None
    if not code:
        for name, value in headers.items():
            if name.lower() == "x-amzn-errortype":
                code = value
    code = code.split(":", 1)[0].rsplit("#", 1)[-1] if isinstance(code, str) else None
    return (code or None), (str(message) if message else None)


def _request_id(body: bytes, headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        if name.lower() in ("x-amzn-requestid", "x-amz-request-id"):
            return value
    match = _XML_REQUEST_ID.search(body[:4096])
    return match.group(1).decode("utf-8", "replace") if match else str(uuid.uuid4())


# ---------------------------------------------------------------------------------------------- records


# Read-only although their names do not say so (as CloudTrail marks them).
READ_ONLY_OPERATIONS = frozenset(
    {
        "AssumeRole",
        "AssumeRoleWithSAML",
        "AssumeRoleWithWebIdentity",
        "AssumeRoot",
        "DownloadDBLogFilePortion",
        "InvokeModel",
    }
)


def is_read_only(operation: str) -> bool:
    return operation in READ_ONLY_OPERATIONS or operation.startswith(READ_ONLY_PREFIXES)


def data_resources(
    ident: Identified, request: HttpRequest, params: Mapping[str, Any], region: str, account: str
) -> list[dict] | None:
    """`resources` of a data event, the data resource first (selectors on resources.* look at it);
    None for a management event."""
    service, operation = ident.service, ident.operation
    if service == "s3":
        return _s3_data_resources(ident, request, account)
    if service == "lambda" and operation in LAMBDA_DATA_OPERATIONS:
        name = ident.labels.get("FunctionName", "")
        arn = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{account}:function:{name}"
        return [{"type": "AWS::Lambda::Function", "ARN": arn}]
    if service == "sqs" and operation in SQS_DATA_OPERATIONS:
        url = str(params.get("queueUrl") or "")
        parts = url.rstrip("/").split("/")
        arn = f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}" if len(parts) >= 2 else ""
        return [{"type": "AWS::SQS::Queue", "ARN": arn}]
    if service == "dynamodb" and operation in DYNAMODB_DATA_OPERATIONS:
        tables = [params["tableName"]] if params.get("tableName") else list(params.get("requestItems") or {})
        for item in params.get("transactItems") or []:
            for action in item.values() if isinstance(item, dict) else []:
                if isinstance(action, dict) and action.get("tableName"):
                    tables.append(action["tableName"])
        arns = [f"arn:aws:dynamodb:{region}:{account}:table/{t}" for t in dict.fromkeys(tables)] or [""]
        return [{"type": "AWS::DynamoDB::Table", "ARN": arn} for arn in arns]
    if service == "sns" and operation in SNS_DATA_OPERATIONS:
        arn = str(params.get("topicArn") or params.get("targetArn") or "")
        return [{"type": "AWS::SNS::Topic", "ARN": arn}]
    return None


def _s3_data_resources(ident: Identified, request: HttpRequest, account: str) -> list[dict] | None:
    bucket = ident.labels.get("Bucket")
    if not bucket:
        return None
    bucket_resource = {"accountId": account, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}
    if "Key" in ident.labels:
        obj = {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{ident.labels['Key']}"}
        return [obj, bucket_resource]
    if ident.operation == "DeleteObjects":
        keys = [k.decode("utf-8", "replace") for k in _XML_KEY.findall(request.body)]
        objects = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"} for key in keys]
        return [*objects, bucket_resource]
    return None


def bucket_resources(ident: Identified, account: str) -> list[dict] | None:
    """`resources` of an S3 bucket-level management event (as CloudTrail writes them)."""
    bucket = ident.labels.get("Bucket") if ident.service == "s3" else None
    if not bucket:
        return None
    return [{"accountId": account, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]


@dataclass
class Served:
    """What the middleware saw of one request and its response."""

    request: HttpRequest
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    source_ip: str
    time: datetime = field(default_factory=_now)


def build_record(served: Served, ident: Identified, default_account: str) -> dict[str, Any]:
    """The CloudTrail record of one served request."""
    request = served.request
    credential = operations.parse_credential(request.header("Authorization"), request.query)
    access_key = credential.access_key_id if credential else ""
    region = credential.region if credential else "us-east-1"
    identity, account = caller_identity(access_key, default_account)
    params = request_parameters(request, ident)
    resources = data_resources(ident, request, params or {}, region, account)
    data_event = resources is not None
    read_only = is_read_only(ident.operation)
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": identity,
        "eventTime": served.time.strftime(TIME_FORMAT),
        "eventSource": ident.event_source,
        "eventName": EVENT_NAME_OVERRIDES.get((ident.service, ident.operation), ident.operation),
        "awsRegion": region,
        "sourceIPAddress": served.source_ip,
        "userAgent": request.header("User-Agent") or "",
        "requestParameters": params,
        "responseElements": None if data_event else response_elements(served, ident, read_only),
    }
    if served.status >= 400:
        code, message = parse_error(served.response_body, served.response_headers)
        record["errorCode"] = code or f"HTTP{served.status}"
        if message:
            record["errorMessage"] = message
    record |= {
        "requestID": _request_id(served.response_body, served.response_headers),
        "eventID": str(uuid.uuid4()),
        "readOnly": read_only,
    }
    resources = resources if data_event else bucket_resources(ident, account)
    if resources:
        record["resources"] = resources
    record |= {
        "eventType": "AwsApiCall",
        "managementEvent": not data_event,
        "recipientAccountId": account,
        "eventCategory": "Data" if data_event else "Management",
    }
    return record


# ---------------------------------------------------------------------------------------------- selectors


def _truthy(value: Any, default: bool = True) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _field_values(record: Mapping[str, Any], name: str) -> str | None:
    """The value an advanced selector field looks at; resources.* look at the data resource (first)."""
    if name.startswith("resources."):
        resources = record.get("resources") or []
        if not resources or record.get("eventCategory") != "Data":
            return None
        value = resources[0].get(name.split(".", 1)[1])
        return None if value is None else str(value)
    value = record.get(name)
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def field_selector_matches(selector: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """One advanced field selector: any of Equals/StartsWith/EndsWith (when given), none of the Not* ones."""
    value = _field_values(record, str(selector.get("Field", "")))
    positives = [
        (selector.get("Equals"), lambda v, x: v == x),
        (selector.get("StartsWith"), lambda v, x: v.startswith(x)),
        (selector.get("EndsWith"), lambda v, x: v.endswith(x)),
    ]
    negatives = [
        (selector.get("NotEquals"), lambda v, x: v == x),
        (selector.get("NotStartsWith"), lambda v, x: v.startswith(x)),
        (selector.get("NotEndsWith"), lambda v, x: v.endswith(x)),
    ]
    given = [(values, test) for values, test in positives if values]
    if given and (value is None or not any(test(value, x) for values, test in given for x in values)):
        return False
    for values, test in negatives:
        if values and value is not None and any(test(value, x) for x in values):
            return False
    return True


def advanced_selectors_match(selectors: Iterable[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    return any(
        all(field_selector_matches(fs, record) for fs in selector.get("FieldSelectors") or [])
        for selector in selectors
    )


def basic_selectors_match(selectors: Iterable[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """Basic event selectors: ReadWriteType, IncludeManagementEvents, ExcludeManagementEventSources and
    DataResources (ARN prefixes; `arn:aws:s3` / `arn:aws:lambda` mean every object / function)."""
    read_only = bool(record.get("readOnly"))
    for selector in selectors:
        rw = selector.get("ReadWriteType", "All")
        if (rw == "ReadOnly" and not read_only) or (rw == "WriteOnly" and read_only):
            continue
        if record.get("eventCategory") == "Management":
            excluded = selector.get("ExcludeManagementEventSources") or []
            if _truthy(selector.get("IncludeManagementEvents")) and record.get("eventSource") not in excluded:
                return True
            continue
        resource = (record.get("resources") or [{}])[0]
        for data in selector.get("DataResources") or []:
            if data.get("Type") != resource.get("type"):
                continue
            for value in data.get("Values") or []:
                if value in ("arn:aws:s3", "arn:aws:lambda") or str(resource.get("ARN", "")).startswith(
                    value
                ):
                    return True
    return False


def trail_selects(trail: Any, record: Mapping[str, Any]) -> bool:
    """Whether `trail`'s event selectors take the record (no selectors: all management events)."""
    basic = getattr(trail, "event_selectors", None) or []
    advanced = getattr(trail, "advanced_event_selectors", None) or []
    if advanced:
        return advanced_selectors_match(advanced, record)
    if basic:
        return basic_selectors_match(basic, record)
    return record.get("eventCategory") == "Management"


def trail_covers_region(trail: Any, record: Mapping[str, Any]) -> bool:
    """Region and global-service-event rules: a global event goes to every trail including global service
    events; any other to multi-region trails and to the trail of its own region."""
    if record.get("eventSource") in GLOBAL_EVENT_SOURCES:
        return _truthy(getattr(trail, "include_global_service_events", True))
    return (
        _truthy(getattr(trail, "is_multi_region", False), False)
        or record.get("awsRegion") == trail.region_name
    )


# ---------------------------------------------------------------------------------------------- trails


@dataclass(frozen=True)
class TrailRef:
    account_id: str
    region: str
    name: str


def iter_trails(account_id: str) -> list[tuple[TrailRef, Any]]:
    """The trails of an account in moto's CloudTrail backend (every region it has state for)."""
    from moto.cloudtrail.models import cloudtrail_backends

    by_region = dict.get(cloudtrail_backends, account_id) or {}
    out = []
    for region, backend in list(dict.items(by_region)):
        for trail in list(backend.trails.values()):
            out.append((TrailRef(account_id, region, trail.trail_name), trail))
    return out


def logging_trails(account_id: str) -> set[TrailRef]:
    return {ref for ref, trail in iter_trails(account_id) if trail.status.is_logging}


def log_file_key(
    prefix: str | None, account: str, region: str, when: datetime, org_id: str | None = None
) -> str:
    """`[prefix/]AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/
    <account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<random16>.json.gz`"""
    rand = "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(16))
    name = f"{account}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{rand}.json.gz"
    org = f"{org_id}/" if org_id else ""
    return f"{_prefix(prefix)}AWSLogs/{org}{account}/CloudTrail/{region}/{when:%Y/%m/%d}/{name}"


def organization_id(trail: Any) -> str | None:
    """The organization id an organization trail puts in its keys (None: not an org trail, or no org)."""
    if not _truthy(getattr(trail, "is_org_trail", False), False):
        return None
    from moto.organizations.models import organizations_backends

    for backend in list(dict.values(dict.get(organizations_backends, trail.account_id) or {})):
        if getattr(backend, "org", None) is not None:
            return str(backend.org.id)
    return None


def digest_key(
    prefix: str | None,
    account: str,
    region: str,
    trail: str,
    home: str,
    when: datetime,
    org_id: str | None = None,
) -> str:
    """`[prefix/]AWSLogs/[<org-id>/]<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/
    <account>_CloudTrail-Digest_<region>_<trail>_<home region>_<YYYYMMDDTHHMMSSZ>.json.gz`"""
    name = f"{account}_CloudTrail-Digest_{region}_{trail}_{home}_{when:%Y%m%dT%H%M%SZ}.json.gz"
    org = f"{org_id}/" if org_id else ""
    return f"{_prefix(prefix)}AWSLogs/{org}{account}/CloudTrail-Digest/{region}/{when:%Y/%m/%d}/{name}"


def _prefix(prefix: str | None) -> str:
    return f"{prefix.strip('/')}/" if prefix and prefix.strip("/") else ""


@dataclass
class _DigestChain:
    """Per trail and region: the previous digest (CloudTrail chains digests) and the period's log files."""

    start: datetime = field(default_factory=_now)
    previous: tuple[str, str, str, str] | None = None  # bucket, key, sha256 hex, signature
    files: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- recorder


class CloudTrailRecorder:
    """Records each served request and delivers the records to the emulator's trails every `interval` s."""

    def __init__(
        self,
        region: str,
        account_id: str,
        *,
        interval: float = 5.0,
        log: LogFn | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"CloudTrailRecorder: interval must be > 0 seconds, got {interval}")
        self.region = region
        self.account_id = account_id
        self.interval = interval
        self.log: LogFn = log or (lambda message: None)
        self._lock = threading.Lock()
        self._deliver_lock = threading.Lock()
        self._pending: dict[TrailRef, list[dict[str, Any]]] = {}
        self._digests: dict[tuple[TrailRef, str], _DigestChain] = {}
        self._signing_key = secrets.token_bytes(32)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.recorded: list[dict[str, Any]] = []  # every record built (tests, demo); bounded
        self.delivered: list[tuple[str, str]] = []  # (bucket, key) of every log and digest file written
        self.max_history = 10_000

    # ------------------------------------------------------------------ WSGI

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """A WSGI middleware around `app` that records each request it serves."""

        def middleware(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = read_wsgi_body(environ)
            request = HttpRequest.from_environ(environ, body)
            credential = operations.parse_credential(request.header("Authorization"), request.query)
            internal = request.header(INTERNAL_HEADER) is not None
            if credential is None or internal or request.path.startswith("/moto-api"):
                return app(environ, start_response)
            before = self._logging_trails_safe()
            captured: dict[str, Any] = {}

            def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                captured["status"] = int(status.split(" ", 1)[0])
                captured["headers"] = dict(headers)
                return (
                    start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
                )

            result = app(environ, capture)
            try:
                chunks = list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            served = Served(
                request,
                captured.get("status", 500),
                captured.get("headers", {}),
                b"".join(chunks),
                str(environ.get("REMOTE_ADDR", "127.0.0.1")),
            )
            try:
                self.record(served, before | self._logging_trails_safe())
            except Exception as err:  # recording must never break the call it records
                self.log(f"cloudtrail: could not record {request.method} {request.path}: {err!r}")
            return chunks

        return middleware

    def _logging_trails_safe(self) -> set[TrailRef]:
        try:
            return logging_trails(self.account_id)
        except Exception as err:
            self.log(f"cloudtrail: reading trails failed: {err!r}")
            return set()

    def record(self, served: Served, logging: set[TrailRef] | None = None) -> dict[str, Any] | None:
        """Build the record of a served request and queue it for every trail that takes it.

        `logging`: the trails logging when the call was served (before or after it: StopLogging is
        delivered, and so is the StartLogging that turns a trail on)."""
        ident = operations.identify(served.request)
        if ident is None:
            return None
        record = build_record(served, ident, self.account_id)
        account = record["recipientAccountId"]
        # the middleware snapshots the default account only
        if logging is None or account != self.account_id:
            logging = (logging or set()) | logging_trails(account)
        targets = [
            ref
            for ref, trail in iter_trails(account)
            if ref in logging and trail_covers_region(trail, record) and trail_selects(trail, record)
        ]
        with self._lock:
            self.recorded.append(record)
            del self.recorded[: -self.max_history]
            for ref in targets:
                self._pending.setdefault(ref, []).append(record)
        return record

    # ------------------------------------------------------------------ delivery

    def start(self) -> None:
        """Start periodic delivery (and build the operation index off the request path)."""
        if self._thread is not None:
            return
        self._stop.clear()
        threading.Thread(target=operations.warm_up, name="trailwatch-cloudtrail-index", daemon=True).start()
        self._thread = threading.Thread(target=self._run, name="trailwatch-cloudtrail", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop periodic delivery, delivering what is pending."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception as err:
                self.log(f"cloudtrail: delivery failed: {err!r}")

    def flush(self) -> list[tuple[str, str]]:
        """Deliver pending records now; the (bucket, key) of each file written."""
        with self._deliver_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            trails = {ref: trail for ref, trail in iter_trails(self.account_id)}
            for ref in {r for r in pending if r.account_id != self.account_id}:
                trails |= dict(iter_trails(ref.account_id))
            written: list[tuple[str, str]] = []
            when = _now()
            for ref, records in pending.items():
                trail = trails.get(ref)
                if trail is None:
                    continue  # deleted since: its records go nowhere
                written += self._deliver(ref, trail, records, when)
            with self._lock:
                self.delivered.extend(written)
                del self.delivered[: -self.max_history]
            return written

    def _deliver(
        self, ref: TrailRef, trail: Any, records: list[dict], when: datetime
    ) -> list[tuple[str, str]]:
        by_region: dict[str, list[dict]] = {}
        for record in records:
            by_region.setdefault(record["awsRegion"], []).append(record)
        written = []
        for region, items in by_region.items():
            key = log_file_key(trail.s3_key_prefix, ref.account_id, region, when, organization_id(trail))
            data = gzip.compress(json.dumps({"Records": items}, separators=(",", ":")).encode(), mtime=0)
            try:
                self._put(trail, key, data)
            except Exception as err:
                self.log(f"cloudtrail: delivery to s3://{trail.bucket_name}/{key} failed: {err!r}")
                continue
            written.append((trail.bucket_name, key))
            self.log(f"cloudtrail: {len(items)} record(s) of {region} -> s3://{trail.bucket_name}/{key}")
            if _truthy(getattr(trail, "log_validation", False), False):
                times = sorted(r["eventTime"] for r in items)
                chain = self._digests.setdefault((ref, region), _DigestChain())
                chain.files.append(
                    {
                        "s3Bucket": trail.bucket_name,
                        "s3Object": key,
                        "hashValue": hashlib.sha256(data).hexdigest(),
                        "hashAlgorithm": "SHA-256",
                        "newestEventTime": times[-1],
                        "oldestEventTime": times[0],
                    }
                )
                written.append(self._write_digest(ref, trail, region, chain, when))
        return written

    def _write_digest(
        self, ref: TrailRef, trail: Any, region: str, chain: _DigestChain, when: datetime
    ) -> tuple[str, str]:
        """A digest per the CloudTrail digest file structure, chained to the previous one."""
        # Keys carry seconds: two deliveries within a second must not overwrite the previous digest.
        when = max(when.replace(microsecond=0), chain.start.replace(microsecond=0) + timedelta(seconds=1))
        org_id = organization_id(trail)
        key = digest_key(trail.s3_key_prefix, ref.account_id, region, ref.name, ref.region, when, org_id)
        previous = chain.previous
        digest = {
            "awsAccountId": ref.account_id,
            "digestStartTime": chain.start.strftime(TIME_FORMAT),
            "digestEndTime": when.strftime(TIME_FORMAT),
            "digestS3Bucket": trail.bucket_name,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": hashlib.md5(self._signing_key, usedforsecurity=False).hexdigest(),
            "digestSignatureAlgorithm": "HMAC-SHA256 (local emulator)",
            "newestEventTime": max(f["newestEventTime"] for f in chain.files),
            "oldestEventTime": min(f["oldestEventTime"] for f in chain.files),
            "previousDigestS3Bucket": previous[0] if previous else None,
            "previousDigestS3Object": previous[1] if previous else None,
            "previousDigestHashValue": previous[2] if previous else None,
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous[3] if previous else None,
            "logFiles": chain.files,
            "localEmulatorNote": (
                "written by the trailwatch local emulator: the signature (S3 metadata 'signature') is an "
                "HMAC with a process-local key, not CloudTrail's RSA signature; AWS validation will reject it"
            ),
        }
        data = gzip.compress(json.dumps(digest, separators=(",", ":")).encode(), mtime=0)
        signature = hmac.new(self._signing_key, data, hashlib.sha256).hexdigest()
        self._put(trail, key, data, {"signature": signature, "signature-algorithm": "HMAC-SHA256"})
        chain.previous = (trail.bucket_name, key, hashlib.sha256(data).hexdigest(), signature)
        chain.files = []
        chain.start = when
        return (trail.bucket_name, key)

    def _put(self, trail: Any, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Write through moto's S3 backend: its put_object sends the bucket's ObjectCreated notifications."""
        from moto.s3.models import s3_backends
        from moto.utilities.utils import get_partition

        backend = s3_backends[trail.account_id][get_partition(trail.region_name)]
        kms_key = getattr(trail, "kms_key_id", None)
        if kms_key:  # SSE-KMS with the trail's key, as CloudTrail writes when KMSKeyId is set
            obj = backend.put_object(trail.bucket_name, key, data, encryption="aws:kms", kms_key_id=kms_key)
        else:
            obj = backend.put_object(trail.bucket_name, key, data)
        if metadata:
            obj.set_metadata({f"x-amz-meta-{k}": v for k, v in metadata.items()})


def mark_internal(client: Any) -> Any:
    """Make a boto3 client's requests the emulator's own (not recorded): for the runtime's service clients."""

    def add_header(request: Any, **_: Any) -> None:
        request.headers[INTERNAL_HEADER] = "1"

    client.meta.events.register_first("before-send.*.*", add_header)
    return client
