"""The fast path end to end on the local AWS: `trailwatch deploy --regions us-west-2` (main.yaml
at home and as a forwarder), then real API calls by an IAM user are stored and alerted through EventBridge
within seconds; the log file brings them again and nothing is stored or alerted twice; with the rule
disabled, every detection still arrives from the files; a call in the forwarder's region arrives too.

One stack for the module. The trail's delivery interval is 120 s (the fast path is measured against log
files that slow); the log file part flushes the recorder explicitly (`recorder.flush()`) instead of waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from click.testing import CliRunner
from trailwatch import fast_path, stats
from trailwatch.local.server import LocalAWS
from trailwatch.main import cli as trailwatch_cli
from trailwatch_processor.config_load import parse_config
from trailwatch_processor.eventbridge_pattern import event_pattern

from tests.clients import cli_environment, local_client
from tests.e2e.conftest import ROOT, ClientFactory, subscribe_alert_queue, take_messages, wait_for

pytestmark = pytest.mark.e2e

BUCKET = "tw-fast-path-bucket"
STACK = "trailwatch"
FORWARDER_REGION = "us-west-2"
CALLS = 20
P95_SECONDS = 5.0
LOCAL_AWS_OPTIONS = {"cloudtrail": True, "delivery_interval": 120.0}  # every 2 minutes, as in AWS


def run_cli(local_aws: LocalAWS, *args: str) -> Any:
    """`trailwatch ARGS...` against the module's local AWS (its root test credentials)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in cli_environment(local_aws).items():
            mp.setenv(key, value)
        mp.setattr("trailwatch.stack.POLL_SECONDS", 0.1)
        mp.setattr("trailwatch.verify.POLL_SECONDS", 0.2)
        return CliRunner().invoke(trailwatch_cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def deployed(local_aws: LocalAWS, aws_client: ClientFactory) -> dict[str, Any]:
    """`trailwatch deploy --regions us-west-2 --no-verify` (the CLI sets the rules' patterns), a queue on the
    alert topic, and the deploy's output."""
    result = run_cli(
        local_aws,
        *("deploy", "--bucket", BUCKET, "--email", "e2e@example.com"),
        *("--regions", FORWARDER_REGION, "--no-verify"),
    )
    assert result.exit_code == 0, result.output
    stack = aws_client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    outputs["AlertQueueUrl"] = subscribe_alert_queue(aws_client, outputs["AlertTopicArn"], "tw-fast-alerts")
    return {"outputs": outputs, "output": result.output}


@pytest.fixture(scope="module")
def caller(local_aws: LocalAWS, aws_client: ClientFactory) -> Callable[[str], Any]:
    """`caller("iam")`: a client of an IAM user with its own keys (an ordinary IAMUser, not root)."""
    iam = aws_client("iam")
    iam.create_user(UserName="fast-engineer")
    key = iam.create_access_key(UserName="fast-engineer")["AccessKey"]

    def make(service: str, region: str | None = None) -> Any:
        return boto3.client(
            service,
            endpoint_url=local_aws.endpoint,
            region_name=region or local_aws.region,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"max_attempts": 1}),
        )

    return make


class Alerts:
    """Every alert received on the queue subscribed to the alert topic, kept across the module's tests."""

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs, self.url = sqs, url
        self.received: list[tuple[float, dict[str, Any]]] = []  # (monotonic time received, alert body)

    def poll(self) -> None:
        for message in take_messages(self.sqs, self.url, wait_seconds=0):
            self.received.append((time.monotonic(), json.loads(message["Body"])))

    def per_event(self) -> dict[str, list[tuple[float, dict[str, Any]]]]:
        self.poll()
        out: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        for when, body in self.received:
            for event_id in body.get("eventIDs", []):
                out.setdefault(event_id, []).append((when, body))
        return out


@pytest.fixture(scope="module")
def alerts(aws_client: ClientFactory, deployed: dict[str, Any]) -> Alerts:
    return Alerts(aws_client("sqs"), deployed["outputs"]["AlertQueueUrl"])


def recorded_ids(local_aws: LocalAWS, name: str, user_names: set[str]) -> dict[str, str]:
    """userName -> eventID of the recorded `name` calls that created these users."""
    return {
        r["requestParameters"]["userName"]: r["eventID"]
        for r in list(local_aws.recorder.recorded)
        if r.get("eventName") == name and (r.get("requestParameters") or {}).get("userName") in user_names
    }


def item(aws_client: ClientFactory, event_id: str) -> dict[str, Any] | None:
    return (
        aws_client("dynamodb")
        .get_item(TableName="SecurityEvents", Key={"EventId": {"S": event_id}}, ConsistentRead=True)
        .get("Item")
    )


def bundled_pattern() -> Any:
    return event_pattern(parse_config((ROOT / "events.json").read_bytes(), source="events.json"))


def test_deploy_sets_the_rules_pattern_home_and_forwarder(
    deployed: dict[str, Any], local_aws: LocalAWS
) -> None:
    generated = bundled_pattern()
    outputs = deployed["outputs"]
    assert outputs["FastPathRuleName"] == fast_path.rule_name(STACK)
    for region in (local_aws.region, FORWARDER_REGION):
        rule = local_client(local_aws, "events", region).describe_rule(Name=fast_path.rule_name(STACK))
        assert json.loads(rule["EventPattern"]) == generated.pattern, region
        assert rule["State"] == generated.state, region
    forwarder_events = local_client(local_aws, "events", FORWARDER_REGION)
    (target,) = forwarder_events.list_targets_by_rule(Rule=fast_path.rule_name(STACK))["Targets"]
    assert target["Arn"] == f"arn:aws:events:{local_aws.region}:123456789012:event-bus/default"
    assert target["RoleArn"]
    forwarder_cfn = local_client(local_aws, "cloudformation", FORWARDER_REGION)
    forwarder = forwarder_cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert {o["OutputKey"] for o in forwarder["Outputs"]} == {"ForwarderRuleName", "ForwarderTargetBusArn"}


@pytest.fixture(scope="module")
def fast_calls(
    local_aws: LocalAWS, aws_client: ClientFactory, caller: Callable[..., Any], alerts: Alerts
) -> dict[str, Any]:
    """CALLS `iam create-user` by the IAM user; per call: when made, its eventID, when its alert arrived."""
    iam = caller("iam")
    made: dict[str, float] = {}
    for n in range(CALLS):
        name = f"fast-user-{n:02d}"
        made[name] = time.monotonic()
        iam.create_user(UserName=name)
    ids = wait_for(
        lambda: (got := recorded_ids(local_aws, "CreateUser", set(made))) and len(got) == CALLS and got,
        "records",
    )

    def all_alerted() -> dict[str, float] | None:
        per_event = alerts.per_event()
        if all(ids[name] in per_event for name in made):
            return {name: per_event[ids[name]][0][0] - made[name] for name in made}
        return None

    latencies = wait_for(all_alerted, "an alert for every CreateUser", seconds=60)
    return {"ids": ids, "latencies": latencies}


def test_api_calls_are_stored_and_alerted_through_eventbridge_in_seconds(
    aws_client: ClientFactory, fast_calls: dict[str, Any], alerts: Alerts
) -> None:
    latencies = sorted(fast_calls["latencies"].values())
    p95 = stats.percentile(latencies, 95)
    p50 = stats.percentile(latencies, 50)
    print(f"fast path: API call -> alert received, p50 {p50:.2f}s, p95 {p95:.2f}s")
    assert p95 < P95_SECONDS, f"p95 {p95:.2f}s (all: {[round(x, 2) for x in latencies]})"
    per_event = alerts.per_event()
    for event_id in fast_calls["ids"].values():
        stored = item(aws_client, event_id)
        assert stored is not None
        assert stored["path"]["S"] == "eventbridge"
        assert stored["principal_type"]["S"] == "IAMUser"
        ((_, body),) = per_event[event_id]
        assert body["path"] == "eventbridge"


def test_the_log_file_stores_and_alerts_nothing_twice(
    local_aws: LocalAWS, aws_client: ClientFactory, fast_calls: dict[str, Any], alerts: Alerts
) -> None:
    ids = set(fast_calls["ids"].values())
    written = local_aws.recorder.flush()
    assert written, "no log file delivered"

    def file_seen() -> bool:  # the file names itself on each item it found already stored
        return all("log_key" in (item(aws_client, event_id) or {}) for event_id in ids)

    wait_for(file_seen, "the log file processed")
    time.sleep(2.0)  # a duplicate alert would be published right after the file's store
    per_event = alerts.per_event()
    for event_id in ids:
        assert len(per_event[event_id]) == 1, f"{event_id} alerted {len(per_event[event_id])} times"
        assert item(aws_client, event_id)["path"]["S"] == "eventbridge"  # the item is not rewritten
    twice = {event_id: len(got) for event_id, got in per_event.items() if len(got) > 1}
    assert not twice, f"alerted more than once: {twice}"


def test_forwarder_region_calls_arrive_at_home(
    local_aws: LocalAWS, aws_client: ClientFactory, caller: Callable[..., Any], alerts: Alerts
) -> None:
    """A security group change in us-west-2 (cis-4.10) reaches the home bus through the forwarder."""
    caller("ec2", FORWARDER_REGION).create_security_group(GroupName="fast-web", Description="d")

    def record() -> dict[str, Any] | None:
        return next(
            (
                r
                for r in list(local_aws.recorder.recorded)
                if r.get("eventName") == "CreateSecurityGroup" and r.get("awsRegion") == FORWARDER_REGION
            ),
            None,
        )

    found = wait_for(record, "the CreateSecurityGroup record")
    stored = wait_for(lambda: item(aws_client, found["eventID"]), "the forwarded event stored", seconds=15)
    assert stored["path"]["S"] == "eventbridge"
    assert stored["aws_region"]["S"] == FORWARDER_REGION


def test_rule_disabled_detections_still_arrive_from_the_files(
    local_aws: LocalAWS,
    aws_client: ClientFactory,
    caller: Callable[..., Any],
    alerts: Alerts,
    fast_calls: dict[str, Any],
) -> None:
    events = aws_client("events")
    events.disable_rule(Name=fast_path.rule_name(STACK))
    try:
        iam = caller("iam")
        names = {f"slow-user-{n}" for n in range(3)}
        for name in sorted(names):
            iam.create_user(UserName=name)
        ids = wait_for(
            lambda: (got := recorded_ids(local_aws, "CreateUser", names)) and len(got) == 3 and got, "records"
        )
        time.sleep(2.0)
        assert not any(item(aws_client, event_id) for event_id in ids.values()), (
            "stored while the rule is disabled"
        )
        local_aws.recorder.flush()
        for event_id in ids.values():
            stored = wait_for(
                lambda event_id=event_id: item(aws_client, event_id), "stored from the log file"
            )
            assert stored["path"]["S"] == "s3"
        per_event = wait_for(
            lambda: (got := alerts.per_event()) and all(i in got for i in ids.values()) and got,
            "alerts from files",
        )
        for event_id in ids.values():
            ((_, body),) = per_event[event_id]
            assert body["path"] == "s3"
    finally:
        events.enable_rule(Name=fast_path.rule_name(STACK))


def test_verify_checks_the_fast_path_and_probes_it(local_aws: LocalAWS, deployed: dict[str, Any]) -> None:
    """The test above re-enabled the rule with EnableRule, which sets plain ENABLED: verify finds the state
    the config needs missing; `upload-config` restores it; then every fast path row passes."""
    stale = run_cli(local_aws, "verify", "--no-probe")
    assert stale.exit_code == 1
    assert "FAIL  fast path rule:" in stale.output and "run `trailwatch upload-config`" in stale.output
    fixed = run_cli(local_aws, "upload-config", "--yes")
    assert fixed.exit_code == 0, fixed.output
    result = run_cli(local_aws, "verify", "--timeout", "60")
    assert result.exit_code == 0, result.output
    for check in (
        "fast path rule",
        "fast path queue -> function mapping",
        "fast path dead-letter queue",
        "fast path forwarders",
        "fast path probe",
    ):
        assert f"PASS  {check}:" in result.output, result.output
    assert f"forwarders in {FORWARDER_REGION}" in result.output
    assert "queue -> alerted" in result.output
