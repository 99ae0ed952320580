"""Bootstrap of one warm local Lambda worker (a stand-in for a Lambda execution environment).

Run by `lambda_process.Worker` as a *script* (``python -I lambda_worker.py REQ_FD RESP_FD``), never imported
by it: the worker must not import trailwatch, and ``-I`` keeps the script's directory, PYTHONPATH and the user
site off ``sys.path``. Standard library only.

Protocol: JSON lines. Requests arrive on fd REQ_FD, replies leave on fd RESP_FD, so whatever the function
prints on stdout/stderr (inherited pipes the runtime forwards to the emulator's log) cannot corrupt them.

    <- {"type": "ready"}                       once the handler is imported (init phase done)
    <- {"type": "init_error", "error": {...}}  the handler could not be imported; the worker exits
    -> {"type": "invoke", "request_id": ..., "event": ..., "deadline_ms": ..., "invoked_function_arn": ...}
    <- {"type": "result", "request_id": ..., "ok": true, "payload": ...}
    <- {"type": "result", "request_id": ..., "ok": false,
        "error": {"errorType": ..., "errorMessage": ..., "stackTrace": [...]}}

Environment (set by the runtime): ``LAMBDA_TASK_ROOT`` (the extracted zip), ``_HANDLER``,
``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_LAMBDA_FUNCTION_VERSION``, ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``,
``AWS_LAMBDA_LOG_GROUP_NAME``, ``AWS_LAMBDA_LOG_STREAM_NAME``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any


def isolate_imports(task_root: str) -> None:
    """Make the handler importable from the extracted zip only, as in a Lambda container.

    An editable install of the host would otherwise resolve e.g. ``trailwatch_processor.x`` from the source
    tree whenever the zip lacks it, hiding packaging mistakes: setuptools' ``__editable__`` finder in
    ``sys.meta_path`` (with its path hook and ``sys.path`` placeholder), or a ``.pth`` line putting a source
    directory on ``sys.path``. So: the task root first, then only entries inside the Python installation
    (stdlib and site-packages: the Lambda runtime has boto3); ``-I`` already dropped PYTHONPATH and user site.
    """
    sys.meta_path[:] = [f for f in sys.meta_path if not _is_editable(f)]
    sys.path_hooks[:] = [h for h in sys.path_hooks if not _is_editable(h)]
    prefixes = {
        os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    }
    sys.path[:] = [task_root] + [
        p for p in sys.path if p != task_root and "__editable__" not in p and _inside(p, prefixes)
    ]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()


def _inside(path: str, prefixes: set[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == prefix or real.startswith(prefix.rstrip(os.sep) + os.sep) for prefix in prefixes)


def _is_editable(obj: object) -> bool:
    names = (
        getattr(obj, "__module__", "") or "",
        getattr(obj, "__qualname__", "") or "",
        type(obj).__module__,
    )
    return any("__editable__" in name for name in names)


class LambdaContext:
    """The attributes and method of the Python runtime's context object that functions use."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_function_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


class _RequestIdFilter(logging.Filter):
    """Adds ``aws_request_id`` to every record, as the Lambda runtime's log handler does."""

    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def setup_logging() -> _RequestIdFilter:
    """Root handler in the Lambda runtime's format; the level stays the function's business."""
    request_filter = _RequestIdFilter()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    )
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    handler.addFilter(request_filter)
    logging.getLogger().addHandler(handler)
    return request_filter


class InitError(Exception):
    """The handler cannot be loaded; ``error_type`` as the Lambda Python runtime names it."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def load_handler(spec: str) -> Callable[[Any, LambdaContext], Any]:
    """``package.module.function`` (``/`` accepted as a separator) -> the callable."""
    module_name, _, function_name = spec.replace("/", ".").rpartition(".")
    if not module_name or not function_name:
        raise InitError("Runtime.MalformedHandlerName", f"Bad handler '{spec}': expected <module>.<function>")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        raise InitError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        ) from exc
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise InitError(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    return handler


def error_info(exc: BaseException) -> dict[str, Any]:
    """The error as Lambda reports it, with the stack trace of the function's code only."""
    traced = exc.__cause__ if isinstance(exc, InitError) and exc.__cause__ else exc
    frames = [f for f in traceback.extract_tb(traced.__traceback__) if _is_user_frame(f.filename)]
    return {
        "errorType": getattr(exc, "error_type", type(exc).__name__),
        "errorMessage": str(exc),
        "stackTrace": traceback.format_list(frames),
    }


def _is_user_frame(filename: str) -> bool:
    return filename != __file__ and not filename.startswith("<frozen ")


def print_error(error: dict[str, Any]) -> None:
    """The ``[ERROR]`` block the Lambda Python runtime writes to the function's log."""
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(entry.rstrip("\n") for entry in error["stackTrace"])
    print("\n".join(lines), file=sys.stderr, flush=True)


def send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def invoke(handler: Callable[[Any, LambdaContext], Any], request: dict[str, Any]) -> dict[str, Any]:
    context = LambdaContext(
        request["request_id"], int(request["deadline_ms"]), request["invoked_function_arn"]
    )
    reply: dict[str, Any] = {"type": "result", "request_id": request["request_id"]}
    try:
        payload = handler(request["event"], context)
        json.dumps(payload)  # an unserialisable result fails the invocation, as in Lambda
    except Exception as exc:  # the function's failure is data for the runtime, not ours
        reply.update(ok=False, error=error_info(exc))
        print_error(reply["error"])
        return reply
    reply.update(ok=True, payload=payload)
    return reply


def main(argv: list[str]) -> int:
    requests_in = os.fdopen(int(argv[1]), "r", encoding="utf-8")
    replies_out = os.fdopen(int(argv[2]), "w", encoding="utf-8")
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    os.chdir(task_root)
    isolate_imports(task_root)
    request_filter = setup_logging()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except Exception as exc:
        error = error_info(exc)
        print_error(error)
        send(replies_out, {"type": "init_error", "error": error})
        return 1
    send(replies_out, {"type": "ready"})
    for line in requests_in:
        request = json.loads(line)
        request_filter.request_id = request["request_id"]
        reply = invoke(handler, request)
        sys.stdout.flush()
        send(replies_out, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
