"""The local AWS: moto's server on loopback, with our CloudFormation models, the Lambda runtime for SQS event
source mappings and CloudTrail delivery of the calls it serves.

moto keeps its state in process-global backends, so one `LocalAWS` per process at a time is supported:
starting a second one while another runs raises `RuntimeError`. `start()` resets moto's state, so each
`LocalAWS` begins empty (and tests that use one after another are isolated).
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from trailwatch.local import cfn_models, parameters, sns_filter
from trailwatch.local.alarms import AlarmEvaluator

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]
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


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request: the emulator's output is for the function logs and our messages."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LocalAWS:
    """An AWS-compatible endpoint on loopback, served from a thread of this process.

    `middlewares` wrap moto's WSGI app in list order (the first is innermost); `services` are started after
    the server listens and stopped, in reverse order, before it shuts down. Both may be extended before
    `start()`. With `cloudtrail=True` the CloudTrail recorder is the innermost middleware and a service;
    with `lambda_runtime=True` the Lambda runtime is a service and moto's Docker path is disabled.
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
        delivery_interval: float = 5.0,
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
        cfn_models.register(log=self.log)
        sns_filter.install()  # H3: AWS's filter policy semantics
        parameters.install()  # H3: parameter constraints checked as CloudFormation does
        builtin_middlewares: list[Middleware] = []
        if self.lambda_runtime:
            from trailwatch.local.lambda_runtime import disable_moto_lambda_docker

            disable_moto_lambda_docker()
        if self.cloudtrail:
            from trailwatch.local.recorder import CloudTrailRecorder

            self.recorder = CloudTrailRecorder(
                self.region, self.account_id, interval=self.delivery_interval, log=self.log
            )
            builtin_middlewares.append(self.recorder.wrap)
        app = moto_wsgi_app()
        for middleware in builtin_middlewares + self.middlewares:
            app = middleware(app)
        self._serve(app)
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
