"""Which AWS operation an HTTP request calls, found through botocore's service models.

The service comes from the SigV4 credential scope (`Credential=AKID/date/region/SERVICE/aws4_request`, in the
Authorization header or a presigned URL's `X-Amz-Credential`). Several botocore services can share one signing
name (s3 and s3control, dynamodb and dynamodbstreams, ...): each candidate is tried, the most specific match
wins. Within a service the operation is found, whatever the protocol the client chose:

- json / awsJson: `X-Amz-Target: <targetPrefix>.<Operation>`;
- smithy-rpc-v2-cbor: path `/service/<ServiceName>/operation/<Operation>`;
- query / ec2: `Action=<Operation>` in the query string or the form body;
- rest-json / rest-xml: method + the model's `requestUri` template (labels, greedy `{Key+}` labels, literal
  query parts such as `?acl` or `?list-type=2`, required query parameters and headers); the most specific
  match wins. S3 virtual-host requests (`<bucket>.s3.amazonaws.com`) get the bucket put back into the path.

Indexes are built once per service (lru_cache); the signing-name index reads the `metadata` of every botocore
model once (about 0.1 s; `warm_up()` does it ahead of time).
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore.loaders
import botocore.session
from botocore.model import OperationModel, ServiceModel

_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")
_CBOR_PATH_RE = re.compile(r"^/service/([^/]+)/operation/([^/?]+)$")
_LABEL_RE = re.compile(r"\{([^}]+?)(\+?)\}")
# Literal query parts that SDKs may leave out (botocore adds them, older clients do not).
_SOFT_QUERY_KEYS = frozenset({"x-id"})
# Score of a request that names its operation (X-Amz-Target, Action=, CBOR path): beats any rest match.
_RPC_RANK = (1000,)


class OperationError(ValueError):
    """A request that cannot be attributed to an operation (bad input, named in the message)."""


@dataclass(frozen=True)
class Credential:
    """The SigV4 credential scope of a request."""

    access_key_id: str
    date: str
    region: str
    service: str


@dataclass(frozen=True)
class HttpRequest:
    """The parts of an HTTP request the mapping looks at. `path` is the raw (still percent-encoded) path;
    header names are matched case-insensitively."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lname:
                return value
        return None

    @property
    def query_params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    @property
    def form_params(self) -> dict[str, list[str]]:
        content_type = (self.header("Content-Type") or "").lower()
        if not self.body or not content_type.startswith("application/x-www-form-urlencoded"):
            return {}
        try:
            return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return {}

    @classmethod
    def from_environ(cls, environ: Mapping[str, object], body: bytes) -> HttpRequest:
        """From a WSGI environ; the raw path comes from RAW_URI/REQUEST_URI when the server provides it."""
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if isinstance(raw_uri, str) and raw_uri.startswith("/"):
            path, _, query = raw_uri.partition("?")
        else:
            path = str(environ.get("PATH_INFO", "") or "/")
            query = str(environ.get("QUERY_STRING", "") or "")
        headers = {
            key[5:].replace("_", "-").title(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").title()] = str(environ[key])
        return cls(str(environ.get("REQUEST_METHOD", "GET")).upper(), path, query, headers, body)


@dataclass(frozen=True)
class Identified:
    """The operation a request calls."""

    service: str  # botocore service name, e.g. "s3", "cloudwatch"
    signing_name: str  # credential-scope service, e.g. "s3", "monitoring"
    operation: str  # e.g. "CreateUser"
    labels: Mapping[str, str]  # URI labels of rest requests, decoded (e.g. Bucket, Key)
    model: OperationModel
    protocol: str = ""  # the protocol the request used (json, query, ec2, rest-xml, ...)

    @property
    def event_source(self) -> str:
        return event_source(self.service)


def parse_credential(authorization: str | None, query: str = "") -> Credential | None:
    """The credential scope from a SigV4 Authorization header or a presigned URL's X-Amz-Credential."""
    text = authorization or ""
    match = _CREDENTIAL_RE.search(text)
    if match is None and query:
        presigned = parse_qs(query).get("X-Amz-Credential")
        if presigned:
            match = _CREDENTIAL_RE.search("Credential=" + presigned[0])
    if match is None:
        return None
    return Credential(*match.groups())


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    """A session with a data loader of its own: botocore's S3 client edits the models its loader returns
    (it strips `/{Bucket}` from each `requestUri`), so models shared with a client in the same process
    (e.g. through a cached `create_loader`) would lose the bucket label and hide S3's operations."""
    session = botocore.session.get_session()
    session.register_component("data_loader", botocore.loaders.Loader())
    return session


@cache
def service_model(name: str) -> ServiceModel:
    return _session().get_service_model(name)


_INDEX_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _available_services() -> frozenset[str]:
    return frozenset(_session().get_component("data_loader").list_available_services("service-2"))


def _services_by_signing_name() -> dict[str, tuple[str, ...]]:
    with _INDEX_LOCK:  # one build, however many threads ask at once
        return _build_signing_index()


@lru_cache(maxsize=1)
def _build_signing_index() -> dict[str, tuple[str, ...]]:
    # A loader of its own whose service models hold only their `metadata`: the full models of ~450
    # services cost ~4 s to parse and stay in memory (in the loader's cache) for nothing.
    loader = botocore.loaders.Loader(file_loader=_MetadataFileLoader())
    index: dict[str, list[str]] = {}
    for name in loader.list_available_services("service-2"):
        metadata = loader.load_service_model(name, "service-2")["metadata"]
        for key in {metadata.get("signingName"), metadata.get("endpointPrefix")} - {None}:
            index.setdefault(key, []).append(name)
    return {key: tuple(names) for key, names in index.items()}


class _MetadataFileLoader(botocore.loaders.JSONFileLoader):
    """botocore's JSON file loader, except that a `service-2` model is read only up to its top-level
    `metadata` object (the first key of every model botocore ships) and returned as `{"metadata": ...}`.
    Other files (the `sdk-extras` botocore merges into a model) load whole, as botocore loads them."""

    def load_file(self, file_path: str) -> Any:
        if os.path.basename(file_path) != "service-2":
            return super().load_file(file_path)
        for extension, open_file in (".json", open), (".json.gz", gzip.open):  # botocore's order
            if os.path.isfile(file_path + extension):
                with open_file(file_path + extension, "rb") as stream:
                    return {"metadata": _top_level_value(stream, "metadata")}
        return None


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_JSON = json.JSONDecoder()


def _top_level_value(stream: Any, key: str, chunk: int = 1 << 16) -> Any:
    """The value of `key` in the JSON object `stream` holds, reading no further than its end."""
    decode = codecs.getincrementaldecoder("utf-8")().decode
    text = ""
    while True:
        data = stream.read(chunk)
        text += decode(data, final=not data)
        try:
            return _member(text, key)
        except (ValueError, IndexError):  # the text read so far ends inside the member
            if not data:
                raise


def _member(text: str, key: str) -> Any:
    def skip(at: int) -> int:
        return _JSON_SPACE.match(text, at).end()  # type: ignore[union-attr]

    at = skip(0)
    if text[at] != "{":
        raise ValueError("not a JSON object")
    at += 1
    while True:
        at = skip(at)
        if text[at] == "}":
            raise KeyError(key)
        name, at = _JSON.raw_decode(text, at)
        at = skip(at)
        if text[at] != ":":
            raise ValueError(f"expected ':' at {at}")
        value, at = _JSON.raw_decode(text, skip(at + 1))
        if name == key:
            return value
        at = skip(at)
        if text[at] == ",":
            at += 1


def warm_up() -> None:
    """Build the signing-name index now (it reads ~450 model files once)."""
    _services_by_signing_name()


def candidate_services(signing_name: str) -> tuple[str, ...]:
    """botocore services signed with `signing_name` (or with that endpoint prefix)."""
    return _services_by_signing_name().get(signing_name.lower(), ())


def event_source(service: str) -> str:
    """eventSource as CloudTrail writes it: `<signingName or endpointPrefix>.amazonaws.com`.

    Services that share their parent's signing name log under the parent (s3control -> s3.amazonaws.com,
    dynamodbstreams -> dynamodb.amazonaws.com), which is what the signing name gives."""
    metadata = service_model(service).metadata
    return f"{metadata.get('signingName') or metadata['endpointPrefix']}.amazonaws.com"


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    regex: re.Pattern[str]
    labels: tuple[str, ...]
    query_literals: tuple[tuple[str, str | None], ...]
    required_query: tuple[str, ...]
    required_headers: tuple[str, ...]
    literal_len: int
    greedy: int
    preference: tuple[int, int]  # tie-breakers, see _preference

    @property
    def wire_form(self) -> tuple:
        """What a request can show of this route; two routes with equal wire forms are indistinguishable."""
        return (
            self.method,
            self.regex.pattern,
            self.query_literals,
            self.required_query,
            tuple(sorted(self.required_headers)),
        )

    def constraints(self, query: Mapping[str, list[str]], request: HttpRequest) -> int | None:
        """How many constraints the request meets, or None when it misses one."""
        met = 0
        for key, value in self.query_literals:
            if key not in query:
                if key in _SOFT_QUERY_KEYS:
                    continue
                return None
            if value is not None and value not in query[key]:
                return None
            met += 1
        for key in self.required_query:
            if key not in query:
                return None
            met += 1
        for name in self.required_headers:
            if request.header(name) is None:
                return None
            met += 1
        return met


def _compile_route(op: OperationModel) -> _Route:
    uri = op.http.get("requestUri", "/")
    path_template, _, query_template = uri.partition("?")
    pattern, labels, literal_len, greedy, pos = "", [], 0, 0, 0
    for match in _LABEL_RE.finditer(path_template):
        literal = path_template[pos : match.start()]
        pattern += re.escape(literal)
        literal_len += len(literal)
        labels.append(match.group(1))
        if match.group(2):
            pattern += f"(?P<g{len(labels)}>.+)"
            greedy += 1
        else:
            pattern += f"(?P<g{len(labels)}>[^/]+)"
        pos = match.end()
    tail = path_template[pos:]
    literal_len += len(tail)
    pattern += re.escape(tail.rstrip("/")) if pattern or tail.rstrip("/") else ""
    regex = re.compile(f"^{pattern}/*$")
    query_literals = []
    for part in filter(None, query_template.split("&")):
        key, eq, value = part.partition("=")
        query_literals.append((key, value if eq else None))
    required_query, required_headers = [], []
    shape = op.input_shape
    if shape is not None:
        for name in shape.required_members:
            member = shape.members[name]
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "querystring":
                required_query.append(wire)
            elif location == "header":
                required_headers.append(wire)
    return _Route(
        op.name,
        op.http.get("method", "POST").upper(),
        regex,
        tuple(labels),
        tuple(query_literals),
        tuple(required_query),
        tuple(required_headers),
        literal_len,
        greedy,
        _preference(op),
    )


def _preference(op: OperationModel) -> tuple[int, int]:
    """Tie-breakers between operations with the same wire form (all in S3):
    - the deprecated original API wins over its successor (PutBucketLifecycle over
      PutBucketLifecycleConfiguration, GetBucketNotification over GetBucketNotificationConfiguration):
      CloudTrail names these S3 events after the original API, as the CIS 4.8 filter does;
    - an operation AWS serves on the S3 Express control endpoint (ListDirectoryBuckets) loses to the
      one served on the regular endpoint (ListBuckets): a local request cannot be the former."""
    express = any(p.name == "UseS3ExpressControlEndpoint" for p in op.static_context_parameters)
    return (int(bool(op.deprecated)), int(not express))


@cache
def _routes(service: str) -> tuple[_Route, ...]:
    model = service_model(service)
    return tuple(_compile_route(model.operation_model(name)) for name in model.operation_names)


@cache
def _target_prefix(service: str) -> str | None:
    return service_model(service).metadata.get("targetPrefix")


def _match_rest(service: str, request: HttpRequest, path: str) -> tuple[tuple, str, dict[str, str]] | None:
    """The best rest route for the request: (score, operation, labels)."""
    query = request.query_params
    best: tuple[tuple, str, dict[str, str]] | None = None
    for route in _routes(service):
        if route.method != request.method:
            continue
        match = route.regex.match(path)
        if match is None:
            continue
        met = route.constraints(query, request)
        if met is None:
            continue
        score = (met, route.literal_len, -route.greedy, -len(route.labels), *route.preference)
        if best is None or score > best[0]:
            labels = {name: unquote(match.group(f"g{i}")) for i, name in enumerate(route.labels, start=1)}
            best = (score, route.operation, labels)
    return best


def s3_virtual_host_bucket(host: str | None) -> str | None:
    """The bucket of an S3 virtual-host-style request (`<bucket>.s3[.region].amazonaws.com`,
    `<bucket>.localhost:port`), None for path style. Mirrors moto's own decision."""
    if not host:
        return None
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    if name.startswith("[") or re.fullmatch(r"[\d.]+", name) or "." not in name:
        return None
    if name.startswith(("localhost", "localstack", "host.docker.internal")):
        return None
    if name.endswith(".amazonaws.com"):
        match = re.match(r"^(.+)\.s3[.-](?:.*\.)?amazonaws\.com$", name)
        return match.group(1) if match else None
    return name.split(".", 1)[0]


def _s3_path(request: HttpRequest) -> str:
    bucket = s3_virtual_host_bucket(request.header("Host"))
    if bucket is None:
        return request.path
    return "/" + bucket + (request.path if request.path not in ("", "/") else "")


def _identify_in(service: str, signing_name: str, request: HttpRequest) -> tuple[tuple, Identified] | None:
    """The operation of `request` within one service, with a score ranking it against other services."""
    model = service_model(service)
    names = set(model.operation_names)

    def found(operation: str, protocol: str) -> tuple[tuple, Identified]:
        ident = Identified(service, signing_name, operation, {}, model.operation_model(operation), protocol)
        return _RPC_RANK, ident

    target = request.header("X-Amz-Target")
    if target and "." in target:
        prefix, _, operation = target.rpartition(".")
        if operation in names and prefix == _target_prefix(service):
            return found(operation, "json")
        return None
    cbor = _CBOR_PATH_RE.match(request.path)
    if cbor and cbor.group(2) in names:
        return found(cbor.group(2), "smithy-rpc-v2-cbor")
    action = (request.query_params.get("Action") or request.form_params.get("Action") or [None])[0]
    if action:
        protocol = "ec2" if model.protocol == "ec2" else "query"
        return found(action, protocol) if action in names else None
    if model.protocol not in ("rest-json", "rest-xml"):
        return None
    path = _s3_path(request) if service == "s3" else request.path
    best = _match_rest(service, request, path)
    if best is None:
        return None
    score, operation, labels = best
    op_model = model.operation_model(operation)
    return score, Identified(service, signing_name, operation, labels, op_model, model.protocol)


def identify(request: HttpRequest, signing_name: str | None = None) -> Identified | None:
    """The operation `request` calls; `signing_name` defaults to the request's credential scope.
    None when the request names no service or matches no operation of it."""
    if signing_name is None:
        credential = parse_credential(request.header("Authorization"), request.query)
        if credential is None:
            return None
        signing_name = credential.service
    direct = signing_name.lower()
    if direct in _available_services():
        # Fast path, no index needed: an RPC request naming an operation of the same-named service.
        result = _identify_in(direct, signing_name, request)
        if result is not None and result[0] == _RPC_RANK:
            return result[1]
    best: tuple[tuple, Identified] | None = None
    for service in _ordered_candidates(signing_name):
        result = _identify_in(service, signing_name, request)
        if result is not None and (best is None or result[0] > best[0]):
            best = result
    return best[1] if best else None


def _ordered_candidates(signing_name: str) -> Iterable[str]:
    candidates = candidate_services(signing_name)
    # The service named like its signing name first: ties go to it (s3 before s3control).
    return sorted(candidates, key=lambda name: (name != signing_name.lower(), name))


def decode_json_body(body: bytes) -> object | None:
    """The JSON document of a json/rest-json body, None when there is none or it is not JSON."""
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


# A WSGI application, as the middlewares (`recorder`, `faults`) wrap moto's.
WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def read_wsgi_body(environ: dict) -> bytes:
    """The request body, read once and put back for the wrapped app (shared by the WSGI middlewares)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        body = stream.read(length)
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        return b""
    environ["wsgi.input"] = io.BytesIO(body)
    if environ.get("wsgi.input_terminated") and not length:
        environ["CONTENT_LENGTH"] = str(len(body))
    return body
