"""Request -> operation mapping (trailwatch.local.operations), checked against botocore and moto.

The coverage test derives everything: for each service, botocore's operation names, kept when moto implements
them (a method named like the snake_case operation on one of moto's response classes for the service), a
request for each synthesised by botocore's own serializer from the operation model, in every protocol the
service speaks, then mapped back to the operation.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import io
from typing import Any
from urllib.parse import urlsplit

import botocore.loaders
import botocore.serialize
import moto.backends
import pytest
from botocore import xform_name
from botocore.awsrequest import prepare_request_dict
from botocore.model import OperationModel, Shape
from moto.core.responses import BaseResponse
from trailwatch.local import operations
from trailwatch.local.operations import HttpRequest, identify, parse_credential

SERVICES = (
    "iam",
    "sts",
    "s3",
    "ec2",
    "kms",
    "cloudtrail",
    "config",
    "organizations",
    "sns",
    "sqs",
    "lambda",
    "dynamodb",
)
MOTO_MODULE = {"lambda": "awslambda"}

# Operations whose wire form (method, URI template, literal query parts, required query members and headers)
# equals another operation's: no request tells them apart, so the mapper reports the other one. The test
# `test_ambiguities_are_exactly_these` derives the ambiguous groups from botocore and fails on any not listed.
_LEGACY = "the deprecated original S3 API; CloudTrail names the event after it"
INDISTINGUISHABLE: dict[tuple[str, str], tuple[str, str]] = {
    ("s3", "GetBucketLifecycleConfiguration"): ("GetBucketLifecycle", _LEGACY),
    ("s3", "PutBucketLifecycleConfiguration"): ("PutBucketLifecycle", _LEGACY),
    ("s3", "GetBucketNotificationConfiguration"): ("GetBucketNotification", _LEGACY),
    ("s3", "PutBucketNotificationConfiguration"): ("PutBucketNotification", _LEGACY),
    ("s3", "ListDirectoryBuckets"): ("ListBuckets", "AWS serves it on the S3 Express control endpoint only"),
}


def moto_implemented(service: str) -> set[str]:
    """botocore operation names that moto implements for `service`: a snake_case method of that name on one
    of moto's response classes (the dispatch target of most services) or on the service's backend class (S3
    dispatches by method and query string to handlers named otherwise, e.g. get_bucket_tags, and its backend
    carries the operation names)."""
    package = MOTO_MODULE.get(service, service)
    module = importlib.import_module(f"moto.{package}.responses")
    methods: set[str] = set()
    base = set(dir(BaseResponse))
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, BaseResponse) and cls.__module__.startswith(f"moto.{package}"):
            methods |= {name for name in dir(cls) if not name.startswith("_")} - base
    methods |= {name for name in dir(moto.backends.get_backend(package).backend) if not name.startswith("_")}
    model = operations.service_model(service)
    return {op for op in model.operation_names if xform_name(op) in methods}


def placeholder(shape: Shape, name: str, depth: int = 0) -> Any:
    """A value of `shape` with only required members filled in (validation is off: just the right type)."""
    kind = shape.type_name
    if kind == "structure":
        if depth > 6:
            return {}
        return {
            member: placeholder(shape.members[member], member, depth + 1) for member in shape.required_members
        }
    if kind == "list":
        return [placeholder(shape.member, name, depth + 1)]
    if kind == "map":
        return {"k": placeholder(shape.value, name, depth + 1)}
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        return "dir/obj name.txt" if name == "Key" else f"{name.lower()}-1"
    if kind in ("integer", "long"):
        return max(int(shape.metadata.get("min", 1)), 1)
    if kind in ("float", "double"):
        return 1.0
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    if kind == "blob":
        return b"x"
    raise AssertionError(f"no placeholder for shape type {kind} ({name})")


def synthesise(service: str, op: OperationModel, protocol: str, *, virtual_host: bool = False) -> HttpRequest:
    """The HTTP request botocore's serializer makes for `op` with placeholder parameters."""
    params = placeholder(op.input_shape, "input") if op.input_shape is not None else {}
    serializer = botocore.serialize.create_serializer(protocol, include_validation=False)
    request_dict = serializer.serialize_to_request(params, op)
    signing = op.service_model.metadata.get("signingName") or op.service_model.metadata["endpointPrefix"]
    host = "127.0.0.1:5000"
    prepare_request_dict(request_dict, endpoint_url=f"http://{host}")
    url = urlsplit(request_dict["url"])
    path = url.path or "/"
    if virtual_host:
        bucket = params["Bucket"]
        assert path.startswith(f"/{bucket}"), path
        path = path[len(bucket) + 1 :] or "/"
        host = f"{bucket}.s3.us-east-1.amazonaws.com"
    headers = {str(k): str(v) for k, v in request_dict["headers"].items()}
    headers["Host"] = host
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/{signing}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0"
    )
    body = request_dict["body"]
    if isinstance(body, str):
        body = body.encode()
    elif isinstance(body, dict):  # query protocols: the form body as a dict
        from urllib.parse import urlencode

        body = urlencode(body).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
    return HttpRequest(request_dict["method"], path, url.query, headers, body or b"")


def _cases() -> list[tuple[str, str, str, bool]]:
    cases = []
    for service in SERVICES:
        model = operations.service_model(service)
        protocols = [
            p
            for p in model.metadata.get("protocols", [model.protocol])
            if p in botocore.serialize.SERIALIZERS
        ]
        for op in sorted(moto_implemented(service)):
            for protocol in protocols:
                cases.append((service, op, protocol, False))
                if service == "s3" and "Bucket" in model.operation_model(op).input_shape.required_members:
                    cases.append((service, op, protocol, True))
    return cases


@pytest.mark.parametrize(
    ("operation", "protocol"),
    [
        (op, protocol)
        for op in operations.service_model("cloudwatch").operation_names
        for protocol in operations.service_model("cloudwatch").metadata["protocols"]
    ],
)
def test_a_service_speaking_three_protocols(operation: str, protocol: str) -> None:
    """CloudWatch (signing name `monitoring`) takes CBOR, JSON and query requests: each maps back."""
    op = operations.service_model("cloudwatch").operation_model(operation)
    found = identify(synthesise("cloudwatch", op, protocol))
    assert found is not None and (found.operation, found.protocol) == (operation, protocol)
    assert found.event_source == "monitoring.amazonaws.com"


def test_moto_implements_a_plausible_number_of_operations() -> None:
    """Guards the discovery of moto's operations itself: an empty set would make the coverage test vacuous."""
    counts = {service: len(moto_implemented(service)) for service in SERVICES}
    assert all(count >= 5 for count in counts.values()), counts
    assert counts["ec2"] > 200 and counts["iam"] > 100 and counts["s3"] > 60, counts


@pytest.mark.parametrize(("service", "operation", "protocol", "virtual_host"), _cases())
def test_every_moto_operation_maps_back(
    service: str, operation: str, protocol: str, virtual_host: bool
) -> None:
    op = operations.service_model(service).operation_model(operation)
    request = synthesise(service, op, protocol, virtual_host=virtual_host)
    found = identify(request)
    assert found is not None, (
        f"{service}.{operation} ({protocol}): {request.method} {request.path}?{request.query}"
    )
    expected = INDISTINGUISHABLE.get((service, operation), (operation, ""))[0]
    assert (found.service, found.operation, found.protocol) == (service, expected, protocol), (
        f"{request.method} {request.path}?{request.query}"
    )


@pytest.mark.parametrize(
    ("service", "source"),
    [
        ("s3", "s3.amazonaws.com"),
        ("iam", "iam.amazonaws.com"),
        ("sts", "sts.amazonaws.com"),
        ("ec2", "ec2.amazonaws.com"),
        ("lambda", "lambda.amazonaws.com"),
        ("cloudwatch", "monitoring.amazonaws.com"),
        ("dynamodbstreams", "dynamodb.amazonaws.com"),
        ("s3control", "s3.amazonaws.com"),
    ],
)
def test_event_source_is_the_signing_name(service: str, source: str) -> None:
    assert operations.event_source(service) == source


@pytest.mark.parametrize(
    "service",
    # several protocols; signing names shared with another service; sdk-extras merged into the model
    ["cloudwatch", "s3", "s3control", "dynamodbstreams", "eks", "secretsmanager", "sqs", "iam"],
)
def test_the_signing_index_reads_the_metadata_botocore_reads(service: str) -> None:
    """The signing-name index reads each model only up to its `metadata`: the same metadata as botocore's
    own loader gives from the whole model, its sdk-extras merged."""
    expected = botocore.loaders.Loader().load_service_model(service, "service-2")["metadata"]
    loader = botocore.loaders.Loader(file_loader=operations._MetadataFileLoader())
    assert loader.load_service_model(service, "service-2")["metadata"] == expected


@pytest.mark.parametrize("chunk", [1, 3, 1 << 16])
@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (' {"metadata": {"a": "\u00e9\u20ac"}, "operations": {}} ', {"a": "\u00e9\u20ac"}),
        ('{"version": "2.0", "shapes": {"metadata": 1}, "metadata" : [2] }', [2]),
        ('{"version": "2.0"}', KeyError),
        ('{"version": "2.0", "metadata": {"a": ', ValueError),
    ],
)
def test_a_top_level_member_is_read_from_a_stream(document: str, expected: Any, chunk: int) -> None:
    """Whatever the read size (a multi-byte character split between two reads); a nested `metadata` is not
    the top-level one; a missing member or a truncated document raise."""
    stream = io.BytesIO(document.encode())
    if isinstance(expected, type):
        with pytest.raises(expected):
            operations._top_level_value(stream, "metadata", chunk=chunk)
    else:
        assert operations._top_level_value(stream, "metadata", chunk=chunk) == expected


def test_event_sources_agree_with_real_records(shared_records: list[dict]) -> None:
    """Every eventSource of the real records whose service botocore knows is what the mapping would write."""
    checked = 0
    for record in shared_records:
        source = record.get("eventSource", "")
        signing = source.removesuffix(".amazonaws.com")
        candidates = operations.candidate_services(signing)
        if not candidates or record.get("eventType") != "AwsApiCall":
            continue
        assert any(operations.event_source(name) == source for name in candidates), source
        checked += 1
    assert checked > 500


@pytest.mark.parametrize(
    ("header", "query", "expected"),
    [
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-1/iam/aws4_request, "
            "SignedHeaders=host, Signature=abc",
            "",
            ("AKIDEXAMPLE", "20260101", "eu-west-1", "iam"),
        ),
        (
            None,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID2%2F20260102%2Fus-east-1%2Fs3%2Faws4_request",
            ("AKID2", "20260102", "us-east-1", "s3"),
        ),
        ("AWS AKIDEXAMPLE:signature", "", None),
        (None, "", None),
    ],
)
def test_parse_credential(header: str | None, query: str, expected: tuple | None) -> None:
    credential = parse_credential(header, query)
    assert (credential and tuple(vars(credential).values())) == expected


def _s3(method: str, path: str, query: str = "", host: str = "127.0.0.1:5000", **headers: str) -> HttpRequest:
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
    )
    return HttpRequest(method, path, query, {"Host": host, "Authorization": auth, **headers})


@pytest.mark.parametrize(
    ("request_", "operation", "labels"),
    [
        (_s3("GET", "/"), "ListBuckets", {}),
        (_s3("GET", "/b"), "ListObjects", {"Bucket": "b"}),
        (_s3("GET", "/b", "list-type=2&prefix=AWSLogs%2F"), "ListObjectsV2", {"Bucket": "b"}),
        (_s3("GET", "/b", "acl"), "GetBucketAcl", {"Bucket": "b"}),
        (_s3("PUT", "/b", "policy"), "PutBucketPolicy", {"Bucket": "b"}),
        (_s3("PUT", "/b", "notification"), "PutBucketNotification", {"Bucket": "b"}),
        (_s3("GET", "/b/a/b%20c.json.gz"), "GetObject", {"Bucket": "b", "Key": "a/b c.json.gz"}),
        (_s3("GET", "/b/k", "acl"), "GetObjectAcl", {"Bucket": "b", "Key": "k"}),
        (_s3("PUT", "/b/k"), "PutObject", {"Bucket": "b", "Key": "k"}),
        (_s3("PUT", "/b/k", **{"x-amz-copy-source": "o/k"}), "CopyObject", {"Bucket": "b", "Key": "k"}),
        (_s3("PUT", "/b/k", "partNumber=1&uploadId=u"), "UploadPart", {"Bucket": "b", "Key": "k"}),
        (_s3("HEAD", "/b/k"), "HeadObject", {"Bucket": "b", "Key": "k"}),
        (_s3("HEAD", "/b"), "HeadBucket", {"Bucket": "b"}),
        (
            _s3("GET", "/k/x", host="vb.s3.us-east-1.amazonaws.com"),
            "GetObject",
            {"Bucket": "vb", "Key": "k/x"},
        ),
        (_s3("GET", "/", "acl", host="vb.s3.amazonaws.com"), "GetBucketAcl", {"Bucket": "vb"}),
        (_s3("GET", "/", host="vb.localhost.localdomain:5000"), "ListObjects", {"Bucket": "vb"}),
        (_s3("GET", "/", host="localhost:5000"), "ListBuckets", {}),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_s3_requests(request_: HttpRequest, operation: str, labels: dict[str, str]) -> None:
    found = identify(request_)
    assert found is not None
    assert (found.operation, dict(found.labels)) == (operation, labels)


@pytest.mark.parametrize(
    ("host", "bucket"),
    [
        ("b1.s3.amazonaws.com", "b1"),
        ("my.dotted.bucket.s3.us-west-2.amazonaws.com", "my.dotted.bucket"),
        ("b2.s3-us-west-2.amazonaws.com", "b2"),
        ("s3.amazonaws.com", None),
        ("s3.us-east-1.amazonaws.com", None),
        ("iam.amazonaws.com", None),
        ("b3.localhost:4566", "b3"),
        ("localhost:4566", None),
        ("127.0.0.1:5000", None),
        ("[::1]:5000", None),
        ("moto", None),
        (None, None),
    ],
)
def test_s3_virtual_host_bucket(host: str | None, bucket: str | None) -> None:
    assert operations.s3_virtual_host_bucket(host) == bucket


def test_unsigned_or_unknown_requests_map_to_nothing() -> None:
    assert identify(HttpRequest("GET", "/", "Action=ListUsers")) is None
    auth = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Sig=0"
    assert identify(HttpRequest("POST", "/", "Action=NoSuchThing", {"Authorization": auth})) is None
    assert (
        identify(HttpRequest("POST", "/", "", {"Authorization": auth.replace("/iam/", "/nosuch/")})) is None
    )


def test_from_environ_uses_the_raw_uri() -> None:
    target = {"RAW_URI": "/b/a%2Fb?acl", "PATH_INFO": "/b/a/b", "QUERY_STRING": "acl"}  # raw and decoded
    headers = {"HTTP_X_AMZ_TARGET": "T.Op", "CONTENT_TYPE": "application/json"}  # as WSGI names them
    request = HttpRequest.from_environ({"REQUEST_METHOD": "get", **target, **headers}, b"{}")
    assert (request.method, request.path, request.query) == ("GET", "/b/a%2Fb", "acl")
    assert request.header("x-amz-target") == "T.Op" and request.header("content-type") == "application/json"
