"""Throughput of `trailwatch hunt` on the local AWS at several concurrencies, against `trailwatch scan`.

    python -m bench.hunt                  # 2,016 files (3 accounts x 2 regions x 4 days x 84), levels 1 2 4
    python -m bench.hunt --per-folder 10  # a quick run (240 files)

One run, one corpus: the local AWS starts in this process (with its Lambda runtime), the stack is deployed
from main.yaml with the real processor package, and the corpus is written into the trail bucket without
notifications (months-old files). Then, for each level, the hunt queue's event source mapping gets
``ScalingConfig.MaximumConcurrency`` = level (the runtime runs that many workers) and a fresh hunt of the
whole window runs through the CLI (`trailwatch hunt --yes --json`): wall time from the command's start
(listing, sending) to every file done. Last, `trailwatch scan` (a subprocess) reads the same files from a
local directory: the single-machine baseline. Function-seconds are the sum of the runtime's REPORT
durations of the hunt's invocations. Every level must report the same matches as the scan.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/hunt.py` as well as `python -m bench.hunt`
    sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402
from trailwatch.local.cfn_common import moto_backend  # noqa: E402
from trailwatch.local.server import LocalAWS  # noqa: E402
from trailwatch.main import cli  # noqa: E402
from trailwatch.package import build_package  # noqa: E402

from bench.hunt_corpus import ACCOUNTS, DAYS, EVIL, HOME_ACCOUNT, REGIONS, WINDOW, Corpus, make_corpus  # noqa: E402
from tests.clients import cli_environment  # noqa: E402
from tests.e2e.conftest import client_factory, deploy_main_stack  # noqa: E402

STACK = "tw-bench-hunt"
BUCKET = "tw-bench-hunt-trail"
RECORDS_PER_FILE = 20  # small files, as CloudTrail writes for a quiet account-region every 5 minutes
RULES = {
    "rules": [
        {"id": "bench-evil", "title": "Evil agent", "severity": "high", "pattern": {"userAgent": [EVIL]}}
    ]
}
REPORT = re.compile(r"\[lambda:(?P<name>[^\]]+)\] REPORT RequestId: \S+\tDuration: (?P<ms>[0-9.]+) ms")


class Durations:
    """The runtime's REPORT lines: invocation durations per function (a LocalAWS log sink)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ms: dict[str, list[float]] = {}

    def __call__(self, line: str) -> None:
        match = REPORT.search(line)
        if match:
            with self.lock:
                self.ms.setdefault(match["name"], []).append(float(match["ms"]))

    def total_s(self, name: str) -> float:
        with self.lock:
            return sum(self.ms.get(name, [])) / 1000

    def count(self, name: str) -> int:
        with self.lock:
            return len(self.ms.get(name, []))


class Sampler:
    """A sampling profiler of this process (the emulator's server threads, the pollers, the CLI): every
    `interval` the innermost frames of every busy thread are counted by ``file:function``, for the frames in
    moto, werkzeug and trailwatch (``--profile``). Idle waits (select, Condition.wait, sleep) are skipped."""

    IDLE = ("wait", "select", "sleep", "_wait_for_tstate_lock", "accept", "poll", "readinto", "recv_into")
    IDLE += ("_pump_output", "_read_replies")  # the runtime's threads blocked in a worker pipe's readline

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            for ident, frame in sys._current_frames().items():
                if ident == me or frame.f_code.co_name in self.IDLE:
                    continue
                self.samples += 1
                seen: set[str] = set()
                while frame is not None:  # count each interesting function once per stack (inclusive)
                    path = frame.f_code.co_filename
                    if any(part in path for part in ("/moto/", "/trailwatch/", "/werkzeug/")):
                        where = f"{'/'.join(Path(path).parts[-2:])}:{frame.f_code.co_name}"
                        if where not in seen:
                            seen.add(where)
                            self.counts[where] = self.counts.get(where, 0) + 1
                    frame = frame.f_back

    def report(self, top: int = 25) -> str:
        lines = [f"busy-thread samples: {self.samples} (inclusive share of samples per function)"]
        for where, n in sorted(self.counts.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"  {100 * n / max(self.samples, 1):5.1f}%  {where}")
        return "\n".join(lines)


def hunt_mapping(lam: Any, queue_arn: str) -> str:
    for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:
        if mapping["EventSourceArn"] == queue_arn:
            return mapping["UUID"]
    raise SystemExit(f"no event source mapping for {queue_arn}")


def run_level(
    level: int, rules_path: Path, outputs: dict[str, str], client: Any, durations: Durations
) -> dict:
    lam = client("lambda")
    queue_arn = client("sqs").get_queue_attributes(
        QueueUrl=outputs["HuntQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    function = outputs["ProcessorFunctionName"]
    # MaximumConcurrency's minimum is 2 (the API refuses 1): level 1 is reserved concurrency 1 instead (the
    # live queue is idle during the bench, so the function's whole concurrency is the hunt's)
    lam.update_event_source_mapping(
        UUID=hunt_mapping(lam, queue_arn), ScalingConfig={"MaximumConcurrency": max(2, level)}
    )
    if level == 1:
        lam.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=1)
    else:
        lam.delete_function_concurrency(FunctionName=function)
    time.sleep(2.5)  # the runtime re-reads mappings every second
    before_s, before_n = durations.total_s(function), durations.count(function)
    started = time.monotonic()
    result = CliRunner().invoke(
        cli, ["--stack-name", STACK, "hunt", *WINDOW, "--config", str(rules_path), "--yes", "--json"]
    )
    wall = time.monotonic() - started
    if result.exit_code != 0:
        raise SystemExit(f"hunt at concurrency {level} failed ({result.exit_code}):\n{result.output}")
    report = json.loads(result.stdout)
    return {
        "wall": wall,
        "files": report["files"],
        "done": report["done"],
        "failed": report["failed"],
        "matches": report["matches"],
        "function_s": durations.total_s(function) - before_s,
        "invocations": durations.count(function) - before_n,
    }


def run_scan(corpus: Corpus, rules_path: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-hunt-scan-") as tmp:
        for key, body in corpus.files.items():
            path = Path(tmp, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        command = [
            str(Path(sys.executable).with_name("trailwatch")),
            "scan",
            tmp,
            "--config",
            str(rules_path),
            "--json",
        ]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"scan failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"wall": wall, "output": done.stdout}


def scan_matches(output: str) -> int:
    """`scan --json` writes one JSON object per matched record per line."""
    return sum(1 for line in output.splitlines() if line.strip() and json.loads(line))


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-folder", type=int, default=84, help="files per account/region/day (84: 2,016)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--profile", action="store_true", help="sample this process and print the hot spots")
    args = parser.parse_args(argv)

    corpus = make_corpus(
        args.per_folder, random.Random(19), records_per_file=RECORDS_PER_FILE, monitored_fraction=0.01
    )
    size = sum(len(b) for b in corpus.files.values())
    print(f"machine: {machine()}", flush=True)
    print(
        f"corpus: {len(corpus.files)} files ({len(ACCOUNTS)} accounts x {len(REGIONS)} regions x "
        f"{DAYS} days x {args.per_folder}), {corpus.records} records, "
        f"{size / len(corpus.files):.0f} bytes/file gzip, "
        f"{len(corpus.expected)} matches",
        flush=True,
    )
    durations = Durations()
    aws = LocalAWS(port=0, lambda_runtime=True, cloudtrail=False, log=durations)
    aws.start()
    sampler = Sampler() if args.profile else None
    rows: list[tuple[str, dict]] = []
    try:
        os.environ.update(cli_environment(aws))
        client = client_factory(aws)
        outputs = deploy_main_stack(
            client,
            STACK,
            {"TrailBucketName": BUCKET, "AlertEmail": "bench@example.com"},
            code=build_package().data,
        )
        backend = moto_backend("s3", HOME_ACCOUNT, aws.region)
        for key, body in corpus.files.items():
            backend.put_object(BUCKET, key, body, disable_notification=True)
        with tempfile.TemporaryDirectory() as tmp:
            rules_path = Path(tmp, "rules.json")
            rules_path.write_text(json.dumps(RULES))
            for level in args.levels:
                if sampler is not None and not sampler._thread.is_alive():
                    sampler.start()
                row = run_level(level, rules_path, outputs, client, durations)
                print(f"  concurrency {level}: {row['wall']:.1f} s", flush=True)
                if row["matches"] != len(corpus.expected) or row["done"] != len(corpus.files):
                    raise SystemExit(f"concurrency {level}: {row} differs from the corpus")
                rows.append((f"hunt, concurrency {level}", row))
            scan = run_scan(corpus, rules_path)
            found = scan_matches(scan["output"])
            if found != len(corpus.expected):
                raise SystemExit(f"scan found {found} matches, the corpus has {len(corpus.expected)}")
            rows.append(("scan (one process, local files)", {"wall": scan["wall"], "matches": found}))
    finally:
        if sampler is not None and sampler._thread.is_alive():
            sampler.stop()
        aws.stop()

    files, records = len(corpus.files), corpus.records
    print()
    print(
        f"{'what':<34}{'files':>7}{'records':>9}{'seconds':>9}{'files/s':>9}{'records/s':>11}"
        f"{'matches':>9}{'fn-s/file':>11}"
    )
    for what, row in rows:
        per_file = f"{row['function_s'] / files:.3f}" if "function_s" in row else "-"
        print(
            f"{what:<34}{files:>7}{records:>9}{row['wall']:>9.1f}{files / row['wall']:>9.1f}"
            f"{records / row['wall']:>11,.0f}{row['matches']:>9}{per_file:>11}"
        )
    if sampler is not None:
        print()
        print(sampler.report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
