"""The CloudTrail record of one request the local AWS served, built from the request and its response.

`build_record` takes what the recorder's middleware saw (`Served`) and the operation it was attributed to
(`operations.identify`) and writes the record as CloudTrail does: the caller (`cloudtrail_identity`),
requestParameters decoded per protocol (lowerCamel members, sensitive members hidden, long values cut),
responseElements of successful writes parsed with botocore, errorCode/errorMessage of failures, readOnly, and
the `resources` and category of data events (S3 objects, Lambda Invoke, SQS messages, DynamoDB items, SNS
publishes) as opposed to management events.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import botocore.parsers
from botocore.model import Shape

from trailwatch.local import operations
from trailwatch.local.cloudtrail_identity import caller_identity
from trailwatch.local.operations import HttpRequest, Identified

EVENT_VERSION = "1.09"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
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
# requestParameters "list-type": "2" (as real CloudTrail records show).
EVENT_NAME_OVERRIDES = {("s3", "ListObjectsV2"): "ListObjects"}
_XML_CODE = re.compile(rb"<Code>([^<]+)</Code>")
_XML_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")
_XML_REQUEST_ID = re.compile(rb"<RequestId>([^<]+)</RequestId>")
_XML_KEY = re.compile(rb"<Key>([^<]+)</Key>")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


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
    time: datetime = field(default_factory=utc_now)


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
