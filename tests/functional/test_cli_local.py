"""deploy -> verify -> break things -> verify -> destroy, with the real main.yaml on the local AWS."""

from __future__ import annotations

import boto3
import pytest

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import TEST_EMAIL, local_env

pytestmark = pytest.mark.e2e
BUCKET = "tw-cli-local-trail-bucket"


@pytest.fixture(scope="module")
def deployed(local_aws_env):
    """Deploy once for the module (the probe included); the Result of that first deploy."""
    from click.testing import CliRunner
    from trailwatch.main import cli as group

    with pytest.MonkeyPatch.context() as mp:
        local_env(mp, local_aws_env)
        mp.setattr("trailwatch.verify.POLL_SECONDS", 0.2)
        mp.setattr("trailwatch.stack.POLL_SECONDS", 0.1)
        result = CliRunner().invoke(
            group,
            ["deploy", "--bucket", BUCKET, "--email", TEST_EMAIL, "--timeout", "60"],
            catch_exceptions=False,
        )
    return result


@pytest.fixture
def env(local_aws_env, monkeypatch, fast_polls):
    local_env(monkeypatch, local_aws_env)
    return local_aws_env


def _client(aws, service):
    return boto3.client(
        service,
        endpoint_url=aws.endpoint,
        region_name=aws.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _outputs(aws) -> dict[str, str]:
    stack = _client(aws, "cloudformation").describe_stacks(StackName="trailwatch")["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def test_deploy_then_verify_passes_with_probe(deployed, env, cli):
    assert deployed.exit_code == 0, deployed.output
    assert "PASS  probe: upload -> stored" in deployed.output
    assert "verify passed" in deployed.output
    again = cli("verify", "--timeout", "60")
    assert again.exit_code == 0, again.output
    for check in ("stack status", "trail logging", "trail event selectors", "bucket notification", "config"):
        assert f"PASS  {check}:" in again.output
    table = _client(env, "dynamodb").scan(TableName=_outputs(env)["EventsTableName"])["Items"]
    assert not [i for i in table if i["EventId"]["S"].startswith("trailwatch-probe-")], (
        "probe item not removed"
    )


def test_second_deploy_has_no_changes(deployed, env, cli):
    assert deployed.exit_code == 0
    result = cli("deploy", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "No changes" in result.output and "Reusing existing deployment package." in result.output


def test_events_lists_what_the_pipeline_stored(deployed, env, cli):
    import json
    import time
    from datetime import UTC, datetime

    from trailwatch import synth

    outputs = _outputs(env)
    now = datetime.now(UTC)
    record = synth.make_record("CreateUser", time=now, event_id="cli-events-e2e-1", source_ip="203.0.113.9")
    key = synth.log_key(env.account_id, env.region, now)
    _client(env, "s3").put_object(Bucket=outputs["TrailBucketName"], Key=key, Body=synth.gzip_log([record]))
    table = outputs["EventsTableName"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = _client(env, "dynamodb").get_item(TableName=table, Key={"EventId": {"S": "cli-events-e2e-1"}})
        if "Item" in got:
            break
        time.sleep(0.2)
    result = cli("events", "--since", "1h", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    (row,) = [r for r in rows if r["EventId"] == "cli-events-e2e-1"]
    assert (row["event_name"], row["source_ip"], row["aws_region"]) == (
        "CreateUser",
        "203.0.113.9",
        env.region,
    )


def test_verify_fails_when_config_is_deleted(deployed, env, cli):
    outputs = _outputs(env)
    s3 = _client(env, "s3")
    body = s3.get_object(Bucket=outputs["TrailBucketName"], Key="config/monitored_events.json")["Body"].read()
    s3.delete_object(Bucket=outputs["TrailBucketName"], Key="config/monitored_events.json")
    try:
        result = cli("verify", "--no-probe")
        assert result.exit_code == 1
        assert "FAIL  config: s3://" in result.output and "is missing" in result.output
    finally:
        s3.put_object(Bucket=outputs["TrailBucketName"], Key="config/monitored_events.json", Body=body)
    assert cli("verify", "--no-probe").exit_code == 0


def test_verify_fails_when_queue_subscription_is_removed(deployed, env, cli):
    outputs = _outputs(env)
    sns = _client(env, "sns")
    subs = sns.list_subscriptions_by_topic(TopicArn=outputs["LogDeliveryTopicArn"])["Subscriptions"]
    (queue_sub,) = [s for s in subs if s["Protocol"] == "sqs"]
    sns.unsubscribe(SubscriptionArn=queue_sub["SubscriptionArn"])
    result = cli("verify", "--timeout", "5")
    assert result.exit_code == 1
    assert (
        "FAIL  log topic -> queue subscription: the log delivery topic has no subscription" in result.output
    )
    assert "FAIL  probe: no item" in result.output


def test_destroy_on_local_aws(deployed, env, cli):
    result = cli("destroy", "--yes")
    assert result.exit_code == 0, result.output
    assert f"trail bucket s3://{BUCKET}" in result.output
    assert f"--endpoint-url {env.endpoint}" in result.output
