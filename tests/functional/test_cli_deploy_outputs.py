"""`trailwatch deploy --slack-webhook / --webhook-url`: the URLs (and a generated signing key) go to Secrets
Manager before the stack update, only the secrets' ARNs reach the stack; nothing is echoed."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from trailwatch import resources
from trailwatch_processor.outputs import webhook

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import SMALL_TEMPLATE

SLACK_URL = "https://hooks.slack.com/services/T000/B000/secretpart"
HOOK_URL = "https://alerts.example.com/trailwatch"
# The stand-in template with the two output parameters (the real ones are checked in test_template_outputs).
OUTPUT_TEMPLATE = SMALL_TEMPLATE.replace(
    "Resources:\n",
    "  SlackSecretArn:\n    Type: String\n    Default: ''\n"
    "  WebhookSecretArn:\n    Type: String\n    Default: ''\nResources:\n",
    1,
)

pytestmark = pytest.mark.usefixtures("moto_env")


@pytest.fixture(autouse=True)
def output_template(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "template_text", lambda: OUTPUT_TEMPLATE)


def secret(name: str) -> dict[str, Any]:
    text = boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"]
    return json.loads(text)


def parameters(name: str = "trailwatch") -> dict[str, str]:
    stack = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def test_deploy_stores_both_outputs_and_passes_only_arns(cli: Any, deploy_args: list[str]) -> None:
    result = cli(
        *deploy_args,
        "--slack-webhook",
        SLACK_URL,
        "--slack-min-severity",
        "high",
        "--webhook-url",
        HOOK_URL,
        "--webhook-rule",
        "root-*",
    )
    assert result.exit_code == 0, result.output
    slack = secret("trailwatch/trailwatch/slack")
    hook = secret("trailwatch/trailwatch/webhook")
    assert slack == {"url": SLACK_URL, "min_severity": "high"}
    assert hook["url"] == HOOK_URL and hook["rules"] == ["root-*"]
    assert len(hook["signing_key"]) == 64
    params = parameters()
    assert params["SlackSecretArn"].startswith("arn:aws:secretsmanager:")
    assert ":secret:trailwatch/trailwatch/webhook" in params["WebhookSecretArn"]
    for value in (SLACK_URL, HOOK_URL, hook["signing_key"]):
        assert value not in result.output
        assert value not in json.dumps(params)
    assert "get-secret-value --secret-id trailwatch/trailwatch/webhook" in result.output


def test_redeploy_keeps_the_signing_key_and_updates_the_url(cli: Any, deploy_args: list[str]) -> None:
    assert cli(*deploy_args, "--webhook-url", HOOK_URL).exit_code == 0
    key = secret("trailwatch/trailwatch/webhook")["signing_key"]
    arn = parameters()["WebhookSecretArn"]
    assert (
        cli(*deploy_args, "--webhook-url", HOOK_URL + "/v2", "--webhook-min-severity", "medium").exit_code
        == 0
    )
    stored = secret("trailwatch/trailwatch/webhook")
    assert (stored["signing_key"], stored["url"], stored["min_severity"]) == (key, HOOK_URL + "/v2", "medium")
    assert parameters()["WebhookSecretArn"] == arn
    # what the receiver verifies with is what the function signs with
    header = webhook.signature(key, b"{}", 1700000000)
    assert webhook.verify_signature(stored["signing_key"], b"{}", header, now=1700000000)


def test_filter_change_alone_keeps_the_stored_url(cli: Any, deploy_args: list[str]) -> None:
    assert cli(*deploy_args, "--slack-webhook", SLACK_URL).exit_code == 0
    assert cli(*deploy_args, "--slack-min-severity", "critical").exit_code == 0
    assert secret("trailwatch/trailwatch/slack") == {"url": SLACK_URL, "min_severity": "critical"}


def test_filter_without_any_output_is_a_usage_error(cli: Any, deploy_args: list[str]) -> None:
    result = cli(*deploy_args, "--slack-min-severity", "high")
    assert result.exit_code == 2
    assert "--slack-webhook URL" in result.output


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--slack-webhook", "http://hooks.slack.com/services/x", "must be https"),
        ("--webhook-url", "not a url", "not a URL"),
        ("--webhook-min-severity", "urgent", "expected one of"),
    ],
)
def test_bad_output_options_change_nothing(
    cli: Any, deploy_args: list[str], flag: str, value: str, needle: str
) -> None:
    result = cli(*deploy_args, flag, value)
    assert result.exit_code == 2 and needle in result.output
    if "severity" not in flag:  # a URL is a secret: never echoed, even a wrong one
        assert value not in result.output
    assert boto3.client("secretsmanager").list_secrets()["SecretList"] == []
    assert boto3.client("cloudformation").list_stacks()["StackSummaries"] == []


def test_dry_run_writes_no_secret(cli: Any, deploy_args: list[str]) -> None:
    result = cli(*deploy_args, "--dry-run", "--slack-webhook", SLACK_URL)
    assert result.exit_code == 0, result.output
    assert "would store the slack output" in result.output
    assert boto3.client("secretsmanager").list_secrets()["SecretList"] == []
