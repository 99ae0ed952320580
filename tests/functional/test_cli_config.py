"""`trailwatch upload-config` on moto with the small stand-in stack."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import TEST_BUCKET, write_config

pytestmark = pytest.mark.usefixtures("moto_env", "small_template")
KEY = "config/monitored_events.json"


def _remote() -> bytes:
    return boto3.client("s3").get_object(Bucket=TEST_BUCKET, Key=KEY)["Body"].read()


def test_upload_config_shows_rule_diff_and_uploads(cli, deploy_args, tmp_path):
    assert cli(*deploy_args).exit_code == 0  # CreateUser, StopLogging, PutBucketPolicy
    from trailwatch_processor import config as rules

    old = {
        r.id: {
            "id": r.id,
            "title": r.title,
            "severity": r.severity,
            "description": r.description,
            "pattern": r.pattern,
        }
        for r in rules.parse_config(_remote()).rules
    }
    create_user = {**old["CreateUser"], "severity": "critical"}
    delete_trail = {"id": "DeleteTrail", "severity": "high", "pattern": {"eventName": ["DeleteTrail"]}}
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"rules": [create_user, old["StopLogging"], delete_trail]}))
    result = cli("upload-config", str(new))
    assert result.exit_code == 0, result.output
    assert "+ DeleteTrail (added)" in result.output
    assert "- PutBucketPolicy (removed)" in result.output
    assert "~ CreateUser (changed)" in result.output
    assert "StopLogging (" not in result.output
    assert _remote() == new.read_bytes()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('{"monitored_events": ["CreateUser",]}', "invalid JSON at line 1"),
        (
            '{"rules": [{"id": "x", "severity": "urgent", "pattern": {"eventName": ["A"]}}]}',
            "rules[0].severity",
        ),
        (
            '{"rules": [{"id": "x", "pattern": {"eventName": [{"prefx": "A"}]}}]}',
            "rules[0].pattern.eventName[0]",
        ),
    ],
)
def test_invalid_config_is_precise_and_uploads_nothing(cli, deploy_args, tmp_path, body, needle):
    assert cli(*deploy_args).exit_code == 0
    before = _remote()
    bad = tmp_path / "bad.json"
    bad.write_text(body)
    result = cli("upload-config", str(bad))
    assert result.exit_code == 2
    assert needle in result.output
    assert "nothing uploaded" in result.output
    assert _remote() == before


def test_upload_config_when_the_bucket_has_none(cli, deploy_args, tmp_path):
    assert cli(*deploy_args).exit_code == 0
    boto3.client("s3").delete_object(Bucket=TEST_BUCKET, Key=KEY)
    path = write_config(tmp_path / "c.json", ["ConsoleLogin"])
    result = cli("upload-config", str(path))
    assert result.exit_code == 0, result.output
    assert "does not exist yet" in result.output and "+ ConsoleLogin (added)" in result.output
    assert _remote() == path.read_bytes()


def test_upload_config_without_stack_names_the_stack(cli, tmp_path):
    path = write_config(tmp_path / "c.json", ["ConsoleLogin"])
    result = cli("upload-config", str(path), "--stack-name", "other")
    assert result.exit_code == 3
    assert "Stack 'other' not found" in result.output
