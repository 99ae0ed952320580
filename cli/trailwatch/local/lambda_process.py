"""One warm Lambda execution environment: a ``lambda_worker.py`` subprocess and its limits.

`Worker` starts the script with the function's environment in the extracted code directory, waits for its
init phase (at most INIT_TIMEOUT, as Lambda), sends it invocations one at a time over a pipe and enforces the
function's Timeout and MemorySize: past either it kills the worker's whole process group. The worker's
stdout/stderr go to `log` as ``[lambda:NAME] ...`` lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trailwatch.local.lambda_host import FunctionConfig

LogFn = Callable[[str], None]

WORKER_SCRIPT = Path(__file__).with_name("lambda_worker.py")
INIT_TIMEOUT = 10.0  # Lambda's limit for the init phase (importing the handler)
MEMORY_POLL = 0.05  # seconds between checks of a worker's memory against the function's MemorySize


_TIMED_OUT = object()


class WorkerError(RuntimeError):
    """The invocation did not complete in the worker (init error, timeout, crash)."""


class Worker:
    """One warm execution environment: a ``lambda_worker.py`` subprocess serving invocations one by one."""

    def __init__(self, config: FunctionConfig, task_root: Path, env: dict[str, str], log: LogFn) -> None:
        self.config = config
        self.key = config.container_key()
        self.task_root = task_root
        self.env = env
        self.log = log
        self.prefix = f"[lambda:{config.name}]"
        self.process: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._requests: Any = None
        self._threads: list[threading.Thread] = []

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> float:
        """Start the process and wait for its init phase; returns the init duration in ms."""
        started = time.monotonic()
        req_read, req_write = os.pipe()
        resp_read, resp_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", str(WORKER_SCRIPT), str(req_read), str(resp_write)],
                pass_fds=(req_read, resp_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.task_root,
                start_new_session=True,
            )
        finally:
            os.close(req_read)
            os.close(resp_write)
        self._requests = os.fdopen(req_write, "w", encoding="utf-8")
        assert self.process.stdout is not None
        self._spawn(self._pump_output, self.process.stdout)
        self._spawn(self._read_replies, os.fdopen(resp_read, "rb"))
        reply = self._watched_reply(INIT_TIMEOUT)
        if reply is _TIMED_OUT:
            reply = None
        if reply is None or reply.get("type") != "ready":
            self.kill()
            raise WorkerError(_init_failure(reply))
        return (time.monotonic() - started) * 1000

    def invoke(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait for its reply; WorkerError (worker killed) on timeout or crash."""
        try:
            self._requests.write(json.dumps(request) + "\n")
            self._requests.flush()
        except (OSError, ValueError) as err:
            self.kill()
            raise WorkerError(f"worker unreachable: {err}") from err
        deadline = time.monotonic() + timeout
        while True:
            reply = self._watched_reply(max(0.0, deadline - time.monotonic()))
            if reply is _TIMED_OUT:
                self.kill()
                raise WorkerError(f"Task timed out after {timeout:.2f} seconds")
            if reply is None:
                raise WorkerError(f"worker process exited with code {self._exit_code()}")
            if reply.get("request_id") == request["request_id"]:
                return reply

    def _watched_reply(self, timeout: float) -> Any:
        """`_next_reply`, checking the worker's memory every MEMORY_POLL seconds while it waits: past the
        function's MemorySize the worker is killed and WorkerError says so, as Lambda ends an environment
        that runs out of memory (the init phase counts too)."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next_reply(min(MEMORY_POLL, max(0.0, deadline - time.monotonic())))
            used = self.memory_used_mb()
            if used is not None and used > self.config.memory_size:
                self.kill()
                raise WorkerError(
                    f"Runtime exited with error: signal: killed (Runtime.OutOfMemory: Max Memory Used "
                    f"{used:.0f} MB > MemorySize {self.config.memory_size} MB)"
                )
            if reply is not _TIMED_OUT or time.monotonic() >= deadline:
                return reply

    def memory_used_mb(self) -> float | None:
        """Peak resident memory (VmHWM) of the worker and its child processes in MB; None off Linux."""
        if self.process is None:
            return None
        total_kb, pending, seen = 0, [self.process.pid], set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
            with contextlib.suppress(OSError, ValueError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pending.extend(int(c) for c in (task / "children").read_text().split())
        return total_kb / 1024 if seen and total_kb else None

    def _next_reply(self, timeout: float) -> Any:
        """The next reply; None when the worker closed its end (died); _TIMED_OUT when none came in time."""
        try:
            return self._replies.get(timeout=timeout)
        except queue.Empty:
            return _TIMED_OUT

    def _exit_code(self) -> int | None:
        if self.process is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.process.wait(timeout=5)
        return None

    def kill(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # its own session: the function's children too
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        if self._requests is not None:
            with contextlib.suppress(OSError, ValueError):
                self._requests.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _spawn(self, target: Callable[[Any], None], stream: Any) -> None:
        thread = threading.Thread(
            target=target, args=(stream,), name=f"lambda-{self.config.name}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _pump_output(self, stream: Any) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self.log(f"{self.prefix} {raw.decode('utf-8', 'replace').rstrip()}")

    def _read_replies(self, stream: Any) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                try:
                    self._replies.put(json.loads(raw))
                except ValueError:
                    self.log(f"{self.prefix} runtime: unreadable worker reply {raw[:200]!r}")
        self._replies.put(None)


def _init_failure(reply: dict[str, Any] | None) -> str:
    if reply is None:
        return f"init failed: no ready message within {INIT_TIMEOUT:.0f} s (or the worker died)"
    error = reply.get("error") or {}
    return f"init failed: {error.get('errorType', '?')}: {error.get('errorMessage', reply)}"
