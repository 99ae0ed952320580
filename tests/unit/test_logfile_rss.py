"""Peak RSS of the reader in a fresh process (before the record cap, a 200 KB .json.gz holding one record
with a 200 MB string reached 742 MB RSS; a 1 MB one 2.4 GB and 22 s). RSS counts what tracemalloc does not
(zlib's buffers, the interpreter): the whole process must stay far below the function's 512 MB."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.huge_gzip import gzip_chunks

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status is Linux's")

# VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across execve, so a child forked from a large
# pytest process would report the parent's size; the peak of the new address space starts afresh.
CHILD = """
import json, sys
from trailwatch_processor.config_load import load_default_config
from trailwatch_processor.logfile import FileStats, iter_matches
from trailwatch_processor.patterns import compile_config

matcher = compile_config(load_default_config())
stats = FileStats()
with open(sys.argv[1], "rb") as raw:
    found = [record.get("eventID") for record, _ in iter_matches(raw, matcher, stats)]
print(json.dumps({
    "found": found,
    "issues": [issue.as_dict() for issue in stats.issues],
    "rss_kib": next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")),
}))
"""


def write_log(path: Path, mib: int) -> None:
    """Matching records around one whose string holds ``mib`` MiB, gzip-streamed to ``path``."""
    login = {"eventVersion": "1.08", "eventName": "StopLogging", "eventSource": "cloudtrail.amazonaws.com"}
    before, after = ({**login, "eventID": name} for name in ("before", "after"))
    head = b'{"Records":[' + json.dumps(before).encode() + b","
    head += json.dumps({**login, "eventID": "huge"}).encode()[:-1] + b',"x":"'
    tail = b'"},' + json.dumps(after).encode() + b"]}"
    with path.open("wb") as out:
        out.writelines(gzip_chunks([(head, 1), (b"z" * (1 << 20), mib), (tail, 1)]))


@pytest.mark.parametrize(("mib", "gzip_kb"), [(200, 250), (1000, 1100)], ids=["200MB-in-200KB", "1GB-in-1MB"])
def test_peak_rss_of_a_huge_record_stays_under_256_mb(tmp_path: Path, mib: int, gzip_kb: int) -> None:
    path = tmp_path / "huge.json.gz"
    write_log(path, mib)
    assert path.stat().st_size < gzip_kb * 1000
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=300, check=True
    )
    elapsed = time.perf_counter() - started
    result = json.loads(done.stdout)
    assert result["rss_kib"] < 256 * 1024, f"peak RSS {result['rss_kib'] // 1024} MiB"
    assert result["found"] == ["before", "huge", "after"]
    assert [issue["kind"] for issue in result["issues"]] == ["oversized"]
    assert elapsed < 180  # ~3 s and ~15 s alone; 22 s and 2.4 GB for the 1 MB file before the cap
