"""The command group: help texts, global options before and after the subcommand, environment-level errors."""

from __future__ import annotations

import pytest
from trailwatch.main import cli as group

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures

COMMANDS = ["deploy", "upload-config", "verify", "events", "scan", "destroy"]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_has_summary_example_and_exit_codes(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0
    lines = [line.strip() for line in result.output.splitlines()]
    summary = lines[2]
    assert summary and summary.endswith(".")
    example = lines[lines.index("Example:") + 1]
    assert example.startswith(f"trailwatch {command}")
    for option in ("--region", "--profile", "--endpoint-url", "--stack-name", "-v"):
        assert option in result.output
    assert "3  AWS error" in result.output and "2  usage or config error" in result.output


def test_group_help_lists_commands_and_exit_codes(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f"  {command} " in result.output
    assert "1  a check failed" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--stack-name", "before", "--region", "eu-west-3", "events"],
        ["events", "--stack-name", "before", "--region", "eu-west-3"],
        [
            "--stack-name",
            "ignored",
            "--region",
            "us-east-1",
            "events",
            "--stack-name",
            "before",
            "--region",
            "eu-west-3",
        ],
    ],
)
@pytest.mark.usefixtures("moto_env")
def test_global_options_before_or_after_the_subcommand(cli, args):
    result = cli(*args)
    assert result.exit_code == 3
    assert "Stack 'before' not found in eu-west-3" in result.output


@pytest.mark.usefixtures("moto_env")
def test_environment_region_and_endpoint_are_used(cli, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    result = cli("events")
    assert "Stack 'trailwatch' not found in ap-southeast-2" in result.output
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the SDK's own retry setting is honoured; keeps this fast
    result = cli("events")
    assert result.exit_code == 3
    assert "Cannot reach AWS" in result.output and "127.0.0.1:9" in result.output


@pytest.fixture
def no_aws_config(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_aws_config")
@pytest.mark.parametrize(
    "command", [["deploy", "--bucket", "b-b-b", "--email", "a@b.co"], ["verify"], ["events"]]
)
def test_no_credentials(cli, command):
    result = cli(*command)
    assert result.exit_code == 2
    assert result.output.startswith("Error: No AWS credentials found.")
    assert "Hint: Configure credentials" in result.output


@pytest.mark.usefixtures("no_aws_config")
def test_no_region(cli, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = cli("events")
    assert result.exit_code == 2
    assert "No AWS region configured." in result.output and "--region" in result.output


@pytest.mark.usefixtures("no_aws_config")
def test_unknown_profile(cli):
    result = cli("--profile", "nobody", "events")
    assert result.exit_code == 2
    assert "nobody" in result.output


@pytest.mark.usefixtures("moto_env")
@pytest.mark.parametrize("url", ["not a url", "127.0.0.1:4566", "ftp://h/", "http://", "http://h:99999"])
@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_malformed_endpoint_url_is_a_usage_error(cli, monkeypatch, url, where):
    args = {"before": ["--endpoint-url", url, "events"], "after": ["events", "--endpoint-url", url]}
    if where == "env":
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    result = cli(*args.get(where, ["events"]))  # catch_exceptions=False: a traceback fails the test
    assert result.exit_code == 2, result.output
    assert "--endpoint-url" in result.output and "is not" in result.output


def test_usage_errors_exit_2(cli):
    assert cli("scan").exit_code == 2
    assert cli("nonsense").exit_code == 2


def test_console_script_entry_point_exists():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "trailwatch"]
    assert script.value == "trailwatch.main:main"
    assert group.name == "cli"
