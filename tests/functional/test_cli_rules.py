"""`trailwatch upload-config` runs the tests beside the rules first (moto, the small stand-in stack)."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import TEST_BUCKET

pytestmark = pytest.mark.usefixtures("shared_stack")  # deployed once per module: config TEST_MONITORED
KEY = "config/monitored_events.json"
STOP = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"}
FILTER = '{ ($.eventSource = "cloudtrail.amazonaws.com") && ($.eventName = StopLogging) }'


def _remote() -> bytes:
    return boto3.client("s3").get_object(Bucket=TEST_BUCKET, Key=KEY)["Body"].read()


def _config(expect_for_stop: str) -> str:
    return json.dumps(
        {
            "monitored_events": ["CreateUser", "StopLogging", "PutBucketPolicy"],
            "rules": [
                {
                    "id": "stop-logging-fp",
                    "severity": "high",
                    "filter_pattern": FILTER,
                    "tests": [{"name": "stop", "record": STOP, "expect": expect_for_stop}],
                }
            ],
        }
    )


def test_upload_config_with_a_broken_rule_test_is_refused(cli, tmp_path):
    before = _remote()
    path = tmp_path / "broken.json"
    path.write_text(_config("no-match"))
    result = cli("upload-config", str(path), "--yes")
    assert result.exit_code == 2, result.output
    assert "1 rule test(s) failed; nothing uploaded" in result.output
    assert "stop-logging-fp  stop  no-match  match" in result.output
    assert _remote() == before


def test_upload_config_with_passing_rule_tests_uploads(cli, tmp_path):
    path = tmp_path / "good.json"
    path.write_text(_config("match"))
    result = cli("upload-config", str(path), "--yes")
    assert result.exit_code == 0, result.output
    assert _remote() == path.read_bytes()
