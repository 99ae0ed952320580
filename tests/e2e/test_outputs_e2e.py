"""Outputs end to end on the local AWS: main.yaml deployed with a Slack and a webhook output whose secrets
(Secrets Manager on the emulator) point at loopback receivers; a log file with a detection reaches both,
through AlertTopic -> per-output queue -> the real processor zip in the local Lambda runtime -> HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from trailwatch import synth
from trailwatch.package import build_package
from trailwatch_processor.outputs import webhook

from tests.e2e.conftest import ROOT, ClientFactory, Receiver, create_output_secrets

pytestmark = pytest.mark.e2e

STACK = "tw-outputs"
BUCKET = "tw-outputs-trail-bucket"
WAIT_SECONDS = 60.0


@pytest.fixture(scope="module")
def stack(
    aws_client: ClientFactory, deploy_stack: Callable[..., dict[str, str]], receivers: dict[str, Receiver]
) -> dict[str, str]:
    output_secrets = create_output_secrets(aws_client, STACK, receivers)
    # As `trailwatch deploy --slack-webhook` on an existing stack: created without outputs, then updated
    # through a change set that adds them.
    base = {"TrailBucketName": BUCKET, "AlertEmail": "e2e@example.com", "FunctionTimeout": "30"}
    deploy_stack(STACK, base, code=build_package().data)
    cfn = aws_client("cloudformation")
    previous = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]
    values = {p["ParameterKey"]: p["ParameterValue"] for p in previous}
    values.update(output_secrets)
    change_set = cfn.create_change_set(
        StackName=STACK,
        ChangeSetName="add-outputs",
        ChangeSetType="UPDATE",
        TemplateBody=(ROOT / "main.yaml").read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    changes = cfn.describe_change_set(ChangeSetName=change_set["Id"])["Changes"]
    added = {
        c["ResourceChange"]["LogicalResourceId"] for c in changes if c["ResourceChange"]["Action"] == "Add"
    }
    assert {"OutputsPolicy", "SlackOutputQueue", "WebhookOutputEventSourceMapping"} <= added, added
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    failed = [
        (e["LogicalResourceId"], e.get("ResourceStatusReason"))
        for e in cfn.describe_stack_events(StackName=STACK)["StackEvents"]
        if e.get("ResourceStatus", "").endswith("FAILED")
    ]
    assert stack["StackStatus"] == "UPDATE_COMPLETE", failed
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert "SlackOutputDeadLetterQueueUrl" in outputs and "WebhookOutputDeadLetterQueueUrl" in outputs
    aws_client("s3").put_object(
        Bucket=BUCKET, Key="config/monitored_events.json", Body=(ROOT / "events.json").read_bytes()
    )
    return outputs


def test_a_detection_reaches_slack_and_the_signed_webhook(
    aws_client: ClientFactory, stack: dict[str, str], receivers: dict[str, Receiver]
) -> None:
    record = synth.make_record(
        "CreateUser",
        identity=synth.iam_user("mallory"),
        region="eu-west-1",
        source_ip="198.51.100.9",
        event_id="0e2e0000-1111-2222-3333-444444444444",
        request_parameters={"userName": "backdoor"},
    )
    key = synth.log_key("123456789012", "eu-west-1", unique="OUTPUTS1")
    aws_client("s3").put_object(Bucket=BUCKET, Key=key, Body=synth.gzip_log([record]))
    # The first config load also announces itself (a trailwatch-operational alert): it goes out too.
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and not all(_about(r, record["eventID"]) for r in receivers.values()):
        time.sleep(0.5)
    time.sleep(2)  # a duplicate would show now

    hook_posts = _about(receivers["webhook"], record["eventID"])
    assert len(hook_posts) == 1, f"{len(hook_posts)} webhook posts for the detection"
    for headers, body in receivers["webhook"].posts:  # every post is signed
        assert webhook.verify_signature(
            receivers["webhook"].signing_key, body, headers[webhook.SIGNATURE_HEADER]
        )
    alert = json.loads(hook_posts[0][1])
    assert alert["source"] == "trailwatch" and alert["eventIDs"] == [record["eventID"]]

    slack_posts = _about(receivers["slack"], record["eventID"])
    assert len(slack_posts) == 1, f"{len(slack_posts)} Slack posts for the detection"
    text = json.dumps(json.loads(slack_posts[0][1])["blocks"])
    for value in (
        alert["rule"],
        "mallory",
        "CreateUser",
        "123456789012",
        "eu-west-1",
        "198.51.100.9",
        record["eventTime"],
        f"#/events/{record['eventID']}",
    ):
        assert value in text, value


def _about(receiver: Receiver, event_id: str) -> list[tuple[dict[str, str], bytes]]:
    """The posts that concern ``event_id`` (the webhook body lists it; the Slack blocks link to it)."""
    return [(headers, body) for headers, body in receiver.posts if event_id.encode() in body]
