"""`trailwatch upload-config` on moto with the small stand-in stack."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import TEST_BUCKET, write_config

pytestmark = pytest.mark.usefixtures("shared_stack")  # deployed once per module: config TEST_MONITORED
KEY = "config/monitored_events.json"


def _remote() -> bytes:
    return boto3.client("s3").get_object(Bucket=TEST_BUCKET, Key=KEY)["Body"].read()


def test_upload_config_shows_rule_diff_and_uploads(cli, tmp_path):
    from trailwatch_processor.config_load import parse_config

    old = {
        r.id: {
            "id": r.id,
            "title": r.title,
            "severity": r.severity,
            "description": r.description,
            "pattern": r.pattern,
        }
        for r in parse_config(_remote()).rules
    }
    create_user = {**old["CreateUser"], "severity": "critical"}
    delete_trail = {"id": "DeleteTrail", "severity": "high", "pattern": {"eventName": ["DeleteTrail"]}}
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"rules": [create_user, old["StopLogging"], delete_trail]}))
    result = cli("upload-config", str(new), "--yes")  # removes a rule: --yes, no TTY here
    assert result.exit_code == 0, result.output
    assert "+ DeleteTrail (added)" in result.output
    assert "- PutBucketPolicy (removed)" in result.output
    assert f"~ CreateUser (severity {old['CreateUser']['severity']} -> critical)" in result.output
    assert "removes 1 rule(s) and weakens 0" in result.output
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
def test_invalid_config_is_precise_and_uploads_nothing(cli, tmp_path, body, needle):
    before = _remote()
    bad = tmp_path / "bad.json"
    bad.write_text(body)
    result = cli("upload-config", str(bad))
    assert result.exit_code == 2
    assert needle in result.output
    assert "nothing uploaded" in result.output
    assert _remote() == before


def test_upload_config_when_the_bucket_has_none_compares_with_the_bundled_default(cli, tmp_path):
    """No config object: the processor runs the bundled default, so dropping its rules is a removal."""
    boto3.client("s3").delete_object(Bucket=TEST_BUCKET, Key=KEY)
    path = write_config(tmp_path / "c.json", ["ConsoleLogin", "NewEvent"])
    result = cli("upload-config", str(path), "--yes")
    assert result.exit_code == 0, result.output
    assert "does not exist yet: compared with the bundled default" in result.output
    assert "+ NewEvent (added)" in result.output and "ConsoleLogin (" not in result.output
    assert "- cis-4.5-cloudtrail-config-changes (removed)" in result.output
    assert _remote() == path.read_bytes()


# --- a removal is shown and asked about -------------------------------------------------------------------


@pytest.fixture
def tty(monkeypatch):
    """Pretend a person is at the terminal (CliRunner's stdin is never a TTY)."""
    from trailwatch import configcmd

    monkeypatch.setattr(configcmd, "stdin_is_tty", lambda: True)


def _deployed_rules() -> list[dict]:
    from trailwatch_processor.config_load import parse_config

    return [{"id": r.id, "severity": r.severity, "pattern": r.pattern} for r in parse_config(_remote()).rules]


def _lowered(rules: list[dict]) -> list[dict]:
    return [{**rules[0], "severity": "info"}, *rules[1:]]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda rules: {"monitored_events": ["NoSuchEvent"]}, id="only-an-unknown-event"),
        pytest.param(lambda rules: {"rules": rules[1:]}, id="one-rule-removed"),
        pytest.param(lambda rules: {"rules": _lowered(rules)}, id="severity-lowered"),
        pytest.param(
            lambda rules: {
                "rules": [{**rules[0], "exclude": [{"sourceIPAddress": ["10.0.0.1"]}]}, *rules[1:]]
            },
            id="exclude-added",
        ),
    ],
)
def test_a_weakening_config_without_a_tty_or_yes_is_refused(cli, tmp_path, make):
    before = _remote()
    path = tmp_path / "weaker.json"
    path.write_text(json.dumps(make(_deployed_rules())))
    result = cli("upload-config", str(path))
    assert result.exit_code == 2, result.output
    assert "Not uploaded: the config removes" in result.output
    hints = [line for line in result.output.splitlines() if "--yes" in line]
    assert len(hints) == 1 and "Pass --yes to upload it anyway." in hints[0]
    assert _remote() == before
    result = cli("upload-config", str(path), "--yes")
    assert result.exit_code == 0, result.output
    assert _remote() == path.read_bytes()


@pytest.mark.usefixtures("tty")
@pytest.mark.parametrize(("answer", "uploaded"), [("y\n", True), ("n\n", False), ("\n", False)])
def test_a_removal_at_a_terminal_asks_first(cli, tmp_path, answer, uploaded):
    before = _remote()
    path = tmp_path / "weaker.json"
    path.write_text(json.dumps({"monitored_events": ["NoSuchEvent"]}))
    result = cli("upload-config", str(path), input=answer)
    assert "Upload it anyway? [y/N]" in result.output
    assert "- CreateUser (removed)" in result.output and "- StopLogging (removed)" in result.output
    assert result.exit_code == (0 if uploaded else 2), result.output
    assert _remote() == (path.read_bytes() if uploaded else before)
    if not uploaded:
        assert "Not confirmed; nothing uploaded." in result.output


def test_yes_at_a_terminal_does_not_ask(cli, tmp_path, tty):
    path = tmp_path / "weaker.json"
    path.write_text(json.dumps({"monitored_events": ["NoSuchEvent"]}))
    result = cli("upload-config", str(path), "--yes")
    assert result.exit_code == 0 and "Upload it anyway?" not in result.output
    assert _remote() == path.read_bytes()


def test_a_strengthening_config_uploads_without_asking(cli, tmp_path):
    rules = _deployed_rules()
    stronger = [
        {**rules[0], "severity": "critical"},
        *rules[1:],
        {"id": "DeleteTrail", "pattern": {"eventName": ["DeleteTrail"]}},
    ]
    path = tmp_path / "stronger.json"
    path.write_text(json.dumps({"rules": stronger}))
    result = cli("upload-config", str(path))  # no TTY, no --yes: nothing removed or weakened
    assert result.exit_code == 0, result.output
    assert "+ DeleteTrail (added)" in result.output and "Warning" not in result.output
    assert _remote() == path.read_bytes()


def test_upload_config_without_stack_names_the_stack(cli, tmp_path):
    path = write_config(tmp_path / "c.json", ["ConsoleLogin"])
    result = cli("upload-config", str(path), "--stack-name", "other")
    assert result.exit_code == 3
    assert "Stack 'other' not found" in result.output
