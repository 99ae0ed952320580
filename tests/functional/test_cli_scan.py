"""`trailwatch scan`: offline matching over local CloudTrail files with the processor's own code."""

from __future__ import annotations

import gzip
import json
from collections import Counter

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
