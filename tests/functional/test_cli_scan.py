"""`trailwatch scan`: offline matching over local CloudTrail files with the processor's own code."""

from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from trailwatch import synth

from tests.conftest import shared_cloudtrail_files
from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import write_config


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _chosen_names(records: list[dict]) -> list[str]:
    """Some eventNames that occur in the data (common, rare), and one that never does."""
    counts = Counter(r.get("eventName") for r in records if isinstance(r.get("eventName"), str))
    ranked = [name for name, _ in counts.most_common()]
    return [*ranked[:3], ranked[len(ranked) // 2], ranked[-1], "NoSuchEventNameAnywhere"]


def test_scan_shared_data_reports_exactly_the_monitored_records(cli, tmp_path, shared_records):
    names = _chosen_names(shared_records)
    config = write_config(tmp_path / "c.json", names)
    data_dir = shared_cloudtrail_files()[0].parent
    result = cli("scan", str(data_dir), "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    rows = _json_lines(result.stdout)

    wanted = [r for r in shared_records if r.get("eventName") in names]
    expected_ids = {r["eventID"] for r in wanted if "eventID" in r}
    without_id = {json.dumps(r, sort_keys=True) for r in wanted if "eventID" not in r}
    got_ids = [row["eventID"] for row in rows]
    assert len(got_ids) == len(set(got_ids)), "an eventID reported twice"
    assert {i for i in got_ids if not i.startswith("tw-")} == expected_ids
    assert sum(1 for i in got_ids if i.startswith("tw-")) == len(without_id)
    assert all(row["eventName"] in names for row in rows)
    assert all(row["rules"] == [row["eventName"]] for row in rows)
    assert expected_ids, "the chosen names must match something for this test to mean anything"


def test_scan_reads_gzip_and_directories_recursively_and_dedups(cli, tmp_path):
    config = write_config(tmp_path / "c.json", ["CreateUser"])
    hit = synth.make_record("CreateUser", event_id="id-hit")
    miss = synth.make_record("DescribeInstances", event_id="id-miss")
    nested = tmp_path / "logs" / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "one.json.gz").write_bytes(synth.gzip_log([hit, miss]))
    (tmp_path / "logs" / "two.json").write_bytes(synth.log_json([hit]))  # same event delivered twice
    (tmp_path / "logs" / "notes.txt").write_text("not a log")
    result = cli("scan", str(tmp_path / "logs"), "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    rows = _json_lines(result.stdout)
    assert [(r["eventID"], r["eventName"], r["rules"]) for r in rows] == [
        ("id-hit", "CreateUser", ["CreateUser"])
    ]


def test_scan_table_output_and_no_match_is_success(cli, tmp_path):
    config = write_config(tmp_path / "c.json", ["StopLogging"])
    path = tmp_path / "x.json.gz"
    path.write_bytes(synth.gzip_log([synth.make_record("StopLogging", event_id="stop-1")]))
    table = cli("scan", str(path), "--config", str(config))
    assert table.exit_code == 0
    assert "stop-1" in table.output and "StopLogging" in table.output and "EVENT ID" in table.output
    empty = write_config(tmp_path / "d.json", ["CreateUser"])
    none = cli("scan", str(path), "--config", str(empty), "--json")
    assert none.exit_code == 0
    assert _json_lines(none.stdout) == []


def test_scan_reports_unreadable_input_after_the_rest(cli, tmp_path):
    config = write_config(tmp_path / "c.json", ["CreateUser"])
    good = tmp_path / "good.json.gz"
    good.write_bytes(synth.gzip_log([synth.make_record("CreateUser", event_id="ok-1")]))
    truncated = tmp_path / "bad.json.gz"
    truncated.write_bytes(gzip.compress(b'{"Records": [{"eventName": "CreateUser"')[:-8])
    missing = tmp_path / "nope.json"
    result = cli("scan", str(truncated), str(good), str(missing), "--json", "--config", str(config))
    assert result.exit_code == 2
    assert [r["eventID"] for r in _json_lines(result.stdout)] == ["ok-1"]
    assert "bad.json.gz" in result.stderr and "nope.json" in result.stderr


def test_scan_invalid_config_is_a_usage_error(cli, tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"monitored_events": [42]}')
    result = cli("scan", str(tmp_path), "--config", str(config))
    assert result.exit_code == 2
    assert "c.json" in result.output and "invalid" in result.output


@pytest.fixture
def scan_dir(tmp_path):
    """A folder with one matching record in good.json; tests add hostile inputs beside it."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "good.json").write_bytes(
        synth.log_json([synth.make_record("CreateUser", event_id="ok-1")])
    )
    return tmp_path / "logs"


def _scan(cli, tmp_path, *paths):
    config = write_config(tmp_path / "c.json", ["CreateUser"])
    return cli("scan", *map(str, paths), "--json", "--config", str(config))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("inside", [True, False], ids=["in-folder", "given"])
def test_scan_skips_a_fifo_instead_of_hanging(cli, tmp_path, scan_dir, inside):
    fifo = scan_dir / "pipe.json"
    os.mkfifo(fifo)  # opening it for reading would block forever: nobody writes
    result = run_with_deadline(
        lambda: _scan(cli, tmp_path, scan_dir if inside else fifo, scan_dir / "good.json"), fifo
    )
    assert result.exit_code == 2
    assert [r["eventID"] for r in _json_lines(result.stdout)] == ["ok-1"]
    assert "pipe.json: not a regular file (a FIFO), skipped" in result.stderr


def run_with_deadline(call, fifo: Path, seconds: float = 20):
    """``call()`` in a thread; fail (instead of hanging the suite) if it does not return in time."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(call)
        try:
            return future.result(timeout=seconds)
        except concurrent.futures.TimeoutError:
            # unblock the reader so the worker thread can end: open the FIFO for writing
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail(f"scan still running after {seconds}s")


def test_scan_reports_a_folder_it_cannot_list(cli, tmp_path, scan_dir, monkeypatch):
    locked = scan_dir / "locked"
    locked.mkdir()
    (locked / "hidden.json").write_bytes(synth.log_json([synth.make_record("CreateUser", event_id="x")]))
    real_scandir = os.scandir

    def scandir(path="."):  # what a folder without read permission does (root would read it anyway)
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = _scan(cli, tmp_path, scan_dir)
    assert result.exit_code == 2, result.output
    assert [r["eventID"] for r in _json_lines(result.stdout)] == ["ok-1"]
    assert f"{locked}: cannot list the folder (Permission denied)" in result.stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any folder")
def test_scan_reports_a_folder_without_permission(cli, tmp_path, scan_dir):
    locked = scan_dir / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        result = _scan(cli, tmp_path, scan_dir)
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 2 and "cannot list the folder" in result.stderr


@pytest.mark.parametrize(
    ("name", "content"),
    [
        # A huge integer, a depth bomb or invalid UTF-8 inside a whole record no longer spoil the file (the
        # record is isolated: test_logfile_hostile.py); these still do.
        ("truncated.json", b'{"Records": [{"eventName": "CreateUser", "n": ' + b"9" * 5_000),
        ("deep.json", b'{"Records": [' + b'{"a":' * 100_000),
        ("not-utf8.json", b'{"Records": [{"eventName": "x"}\xff\xfe]}'),
    ],
)
def test_one_bad_file_does_not_stop_the_scan(cli, tmp_path, scan_dir, name, content):
    (scan_dir / name).write_bytes(content)
    (scan_dir / "z-after.json").write_bytes(
        synth.log_json([synth.make_record("CreateUser", event_id="ok-2")])
    )
    result = _scan(cli, tmp_path, scan_dir)  # catch_exceptions=False: a traceback fails here
    assert result.exit_code == 2, result.output
    assert sorted(r["eventID"] for r in _json_lines(result.stdout)) == ["ok-1", "ok-2"]
    assert f"{name}:" in result.stderr and "Traceback" not in result.output
