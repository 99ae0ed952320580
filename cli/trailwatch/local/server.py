"""The local AWS: moto's server on loopback, with our CloudFormation models, the Lambda runtime for SQS event
source mappings and CloudTrail delivery of the calls it serves.

moto keeps its state in process-global backends, so one `LocalAWS` per process at a time is supported:
starting a second one while another runs raises `RuntimeError`. `start()` resets moto's state, so each
`LocalAWS` begins empty (and tests that use one after another are isolated).

The endpoint takes no credentials and its Lambda runtime runs whatever function is created, so it is for its
user alone: `LoopbackGuard` (outermost) refuses requests a web page could make (a non-loopback `Host`: DNS
rebinding; a non-loopback `Origin` or a cross-site `Sec-Fetch-Site`: CSRF and CORS) and answers CORS for
loopback origins only, never with `*`. `expected_owner_guard` enforces S3's `ExpectedBucketOwner`, which moto
ignores.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol
from urllib.parse import unquote, urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from trailwatch.local import cfn_models, moto_patches
from trailwatch.local.alarms import AlarmEvaluator
from trailwatch.local.operations import WSGIApp

Middleware = Callable[[WSGIApp], WSGIApp]
LogFn = Callable[[str], None]

LOG_PREFIX = "[trailwatch local]"


class Service(Protocol):
    """A background service that runs beside the server (Lambda runtime, trail delivery)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def default_log(message: str) -> None:
    """Write one line of the emulator's output to stderr."""
    print(f"{LOG_PREFIX} {message}", file=sys.stderr, flush=True)


def reset_moto_state() -> None:
    """Forget every resource of every moto backend (the same as POST /moto-api/reset)."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


def moto_wsgi_app() -> WSGIApp:
    """moto's server application: dispatches each request to the backend of its service."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


# ------------------------------------------------------------------ who may talk to the endpoint

WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
CORS_MAX_AGE = "600"


def _split_host(value: str) -> tuple[str, str] | None:
    """(name, port) of a `Host` header value (port may be ""), or None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return name, rest[1:]
    name, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    return name, port


def is_loopback_name(name: str) -> bool:
    """127.0.0.0/8, ::1, `localhost` and its subdomains (RFC 6761: always loopback), without a port."""
    name = name.strip().lower().strip("[]").rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback_origin(origin: str) -> bool:
    """An `Origin` header naming a page served from this machine's loopback (`null` is not one)."""
    try:
        parts = urlsplit(origin.strip())
        hostname = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and hostname is not None and is_loopback_name(hostname)


class LoopbackGuard:
    """WSGI middleware: the local AWS answers its user's SDKs and CLIs, never a web page.

    - `Host` must be loopback (DNS rebinding gives an attacker's name the address 127.0.0.1, and the browser
      then sends that name); when bound to a specific other address, that address too; when bound to a
      wildcard, any IP literal (a rebinding request always carries a name).
    - A request with a non-loopback `Origin` (browsers send it on cross-origin POSTs, even "simple" ones that
      need no preflight) or with `Sec-Fetch-Site: cross-site|same-site` and no loopback `Origin` (an `<img>`
      or `<form>` GET) is refused. SDKs send neither header.
    - CORS: preflights from loopback origins are answered here with that origin (never `*`, never
      credentials); moto's own `Access-Control-*` headers (flask-cors: any origin) are dropped from every
      response.
    """

    def __init__(self, app: WSGIApp, bind_host: str = "127.0.0.1") -> None:
        self.app = app
        bind = bind_host.strip().lower().strip("[]")
        self.any_ip = bind in WILDCARD_ADDRESSES
        self.extra_names = frozenset() if self.any_ip or is_loopback_name(bind) else frozenset({bind})

    def host_allowed(self, host: str) -> bool:
        split = _split_host(host)
        if split is None:
            return False
        name = split[0]
        return is_loopback_name(name) or name in self.extra_names or (self.any_ip and _is_ip(name))

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if host is not None and not self.host_allowed(host):
            return _refuse(
                start_response,
                f"refused: Host {host!r} is not a loopback name. The trailwatch local AWS answers only "
                "127.0.0.0/8, localhost and [::1] (and the address given to --host): another name is how a "
                "web page reaches it through DNS rebinding.",
            )
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and not is_loopback_origin(origin):
            return _refuse(
                start_response,
                f"refused: Origin {origin!r} is not a loopback page. The trailwatch local AWS takes no "
                "credentials and runs the functions created on it: web pages may not call it.",
            )
        fetch_site = environ.get("HTTP_SEC_FETCH_SITE", "").lower()
        if origin is None and fetch_site in ("cross-site", "same-site"):
            return _refuse(
                start_response,
                f"refused: a {fetch_site} request from a web page (Sec-Fetch-Site). The trailwatch local AWS "
                "is for its user's SDKs and CLIs only.",
            )
        if (
            origin is not None
            and environ.get("REQUEST_METHOD") == "OPTIONS"
            and ("HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ)
        ):
            return self._preflight(environ, origin, start_response)

        def without_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            if origin is not None:
                kept += [
                    ("Access-Control-Allow-Origin", origin),
                    ("Access-Control-Expose-Headers", "*"),
                    ("Vary", "Origin"),
                ]
            return start_response(status, kept, exc_info) if exc_info else start_response(status, kept)

        return self.app(environ, without_cors)

    @staticmethod
    def _preflight(environ: dict, origin: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """A loopback page's preflight: granted for that origin, without credentials."""
        headers = [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, HEAD, PATCH"),
            ("Access-Control-Max-Age", CORS_MAX_AGE),
            ("Vary", "Origin"),
            ("Content-Length", "0"),
        ]
        requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        if requested:
            headers.append(("Access-Control-Allow-Headers", requested))
        start_response("204 No Content", headers)
        return [b""]


def _refuse(start_response: Callable[..., Any], message: str) -> Iterable[bytes]:
    body = (message + "\n").encode()
    start_response(
        "403 Forbidden",
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("X-Content-Type-Options", "nosniff"),  # the body quotes the request's Host or Origin
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


# ------------------------------------------------------------------ S3 ExpectedBucketOwner

EXPECTED_OWNER_HEADERS = {
    # header (WSGI form) -> where the bucket is named
    "HTTP_X_AMZ_EXPECTED_BUCKET_OWNER": "request",
    "HTTP_X_AMZ_SOURCE_EXPECTED_BUCKET_OWNER": "copy-source",
}


def s3_request_bucket(environ: dict) -> str | None:
    """The bucket an S3 request addresses, virtual-host style (as moto decides it) or path style."""
    from trailwatch.local.operations import s3_virtual_host_bucket

    bucket = s3_virtual_host_bucket(environ.get("HTTP_HOST"))
    if bucket:
        return bucket
    first = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)[0]
    return unquote(first) or None


def _copy_source_bucket(environ: dict) -> str | None:
    source = unquote(environ.get("HTTP_X_AMZ_COPY_SOURCE", "")).lstrip("/")
    return source.split("/", 1)[0] or None


def s3_bucket_owner(bucket: str) -> str | None:
    """The account that owns `bucket` in moto's shared bucket namespace, None when no such bucket."""
    from moto.s3.models import s3_backends

    entry = s3_backends.bucket_accounts.get(bucket)
    return entry[1] if entry else None


def expected_owner_guard(app: WSGIApp) -> WSGIApp:
    """WSGI middleware: S3's `ExpectedBucketOwner` as AWS enforces it (moto ignores the header).

    A request naming an expected owner for a bucket that another account owns gets 403 AccessDenied, as on
    AWS, before moto sees it; a missing bucket is left to moto (404). Inside the CloudTrail recorder, so the
    refused call is recorded like on AWS.
    """

    def guarded(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        for header, where in EXPECTED_OWNER_HEADERS.items():
            expected = environ.get(header)
            if not expected:
                continue
            bucket = s3_request_bucket(environ) if where == "request" else _copy_source_bucket(environ)
            owner = s3_bucket_owner(bucket) if bucket else None
            if owner is not None and owner != expected.strip():
                return _s3_access_denied(environ, start_response)
        return app(environ, start_response)

    return guarded


def _s3_access_denied(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        b"<Message>Access Denied</Message></Error>"
    )
    if environ.get("REQUEST_METHOD") == "HEAD":  # S3 answers HEAD without a body
        body = b""
    start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request: the emulator's output is for the function logs and our messages."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LocalAWS:
    """An AWS-compatible endpoint on loopback, served from a thread of this process.

    `middlewares` wrap moto's WSGI app in list order (the first is innermost); `services` are started after
    the server listens and stopped, in reverse order, before it shuts down. Both may be extended before
    `start()`. The S3 `ExpectedBucketOwner` check is innermost; with `cloudtrail=True` the CloudTrail
    recorder is next and a service; with `lambda_runtime=True` the Lambda runtime is a service. moto runs
    with every replacement of `moto_patches.PATCHES` (so its own Docker path for SQS event source mappings
    never runs). `LoopbackGuard` is always outermost.
    """

    _active: ClassVar[LocalAWS | None] = None
    _active_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        *,
        lambda_runtime: bool = True,
        cloudtrail: bool = True,
        delivery_interval: float = 300.0,
        log: LogFn | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"LocalAWS: port must be 0..65535 (0 picks a free port), got {port}")
        if delivery_interval <= 0:
            raise ValueError(f"LocalAWS: delivery_interval must be > 0 seconds, got {delivery_interval}")
        self.host = host
        self.region = region
        self.lambda_runtime = lambda_runtime
        self.cloudtrail = cloudtrail
        self.delivery_interval = delivery_interval
        self.log: LogFn = log or default_log
        self.middlewares: list[Middleware] = []
        self.services: list[Service] = []
        self.recorder: Any = None
        self.runtime: Any = None
        self.alarms: Any = None
        self._requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._started_services: list[Service] = []

    @property
    def account_id(self) -> str:
        from moto.core import DEFAULT_ACCOUNT_ID

        return DEFAULT_ACCOUNT_ID

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LocalAWS is not running: call start() first")
        return int(self._server.port)

    @property
    def endpoint(self) -> str:
        """The URL clients use (a wildcard bind address is reached through loopback)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LocalAWS:
        """Reset moto, register our models, serve, then start the background services."""
        self._claim_process()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the services (newest first), then the server. Safe to call twice."""
        while self._started_services:
            service = self._started_services.pop()
            try:
                service.stop()
            except Exception as err:  # a failing service must not keep the port bound
                self.log(f"stopping {type(service).__name__} failed: {err!r}")
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        self._release_process()

    def __enter__(self) -> LocalAWS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- internals

    def _claim_process(self) -> None:
        with LocalAWS._active_lock:
            if LocalAWS._active is not None:
                raise RuntimeError(
                    "another LocalAWS is running in this process: moto's state is process-global, "
                    "stop it before starting a new one"
                )
            LocalAWS._active = self

    def _release_process(self) -> None:
        with LocalAWS._active_lock:
            if LocalAWS._active is self:
                LocalAWS._active = None

    def _start(self) -> None:
        reset_moto_state()
        moto_patches.install()  # refuses another moto, or moto code our replacements were not written for
        cfn_models.register(log=self.log)
        from trailwatch.local.cross_account import cross_account_guard

        builtin_middlewares: list[Middleware] = [
            expected_owner_guard,
            lambda app: cross_account_guard(app, self.log),  # attach mode: another account's bucket
        ]
        if self.cloudtrail:
            from trailwatch.local.recorder import CloudTrailRecorder

            self.recorder = CloudTrailRecorder(
                self.region, self.account_id, interval=self.delivery_interval, log=self.log
            )
            builtin_middlewares.append(self.recorder.wrap)
        app = moto_wsgi_app()
        for middleware in builtin_middlewares + self.middlewares:
            app = middleware(app)
        self._serve(LoopbackGuard(app, self.host))
        services: list[Service] = []
        if self.recorder is not None:
            services.append(self.recorder)
        if self.lambda_runtime:
            from trailwatch.local.lambda_runtime import LambdaRuntime

            self.runtime = LambdaRuntime(self.endpoint, self.region, self.log)
            services.append(self.runtime)
        self.alarms = AlarmEvaluator(self.account_id, self.region, log=self.log)  # H3: CloudWatch alarms
        services.append(self.alarms)
        for service in services + self.services:
            service.start()
            self._started_services.append(service)

    def _serve(self, app: WSGIApp) -> None:
        # Bind here: werkzeug reports a port in use by printing and exiting the process (SystemExit).
        listener = socket.create_server((self.host, self._requested_port))
        try:
            server = make_server(
                self.host,
                listener.getsockname()[1],
                app,
                threaded=True,
                request_handler=_QuietHandler,
                fd=listener.fileno(),
            )
        finally:
            listener.close()  # the server holds its own duplicate of the socket
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="trailwatch-local-aws",
            daemon=True,
        )
        self._thread.start()
