"""`trailwatch deploy` and `destroy` under moto's in-process mock with a small stand-in template."""

from __future__ import annotations

import json

import boto3
import pytest
from trailwatch import package

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import ARTIFACTS_BUCKET, TEST_BUCKET, TEST_EMAIL

pytestmark = pytest.mark.usefixtures("moto_env", "small_template")


def _outputs(name: str = "trailwatch") -> dict[str, str]:
    stack = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def _artifact_keys() -> list[str]:
    listing = boto3.client("s3").list_object_versions(Bucket=ARTIFACTS_BUCKET)
    return [v["Key"] for v in listing.get("Versions", [])]


def test_deploy_creates_stack_uploads_package_and_config(cli, deploy_args, config_file):
    result = cli(*deploy_args)
    assert result.exit_code == 0, result.output
    outputs = _outputs()
    assert outputs["TrailBucketName"] == TEST_BUCKET
    expected_key = package.build_package().key
    assert _artifact_keys() == [expected_key]
    config = (
        boto3.client("s3").get_object(Bucket=TEST_BUCKET, Key="config/monitored_events.json")["Body"].read()
    )
    assert config == config_file.read_bytes()
    for text in (
        "Create stack trailwatch",
        "CREATE_COMPLETE",
        TEST_EMAIL,
        "trailwatch verify",
        outputs["AlertTopicArn"],
    ):
        assert text in result.output


def test_artifacts_bucket_is_hardened(cli, deploy_args):
    assert cli(*deploy_args).exit_code == 0
    s3 = boto3.client("s3")
    block = s3.get_public_access_block(Bucket=ARTIFACTS_BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = s3.get_bucket_encryption(Bucket=ARTIFACTS_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=ARTIFACTS_BUCKET)["Status"] == "Enabled"
    policy = json.loads(s3.get_bucket_policy(Bucket=ARTIFACTS_BUCKET)["Policy"])
    deny = policy["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_artifacts_bucket_gets_its_policy_before_the_first_upload(cli, deploy_args, monkeypatch):
    """As on AWS: the bucket is fully hardened (TLS-only policy included) before any object goes in."""
    from trailwatch.session import Aws

    s3_calls: list[str] = []
    original = Aws.client

    def recording_client(self, service):
        made = original(self, service)
        if service == "s3" and not getattr(made, "_recorded", False):
            made.meta.events.register("before-call.s3.*", lambda model, **_: s3_calls.append(model.name))
            made._recorded = True
        return made

    monkeypatch.setattr(Aws, "client", recording_client)
    assert cli(*deploy_args).exit_code == 0
    assert "PutObject" in s3_calls
    assert s3_calls.index("PutBucketPolicy") < s3_calls.index("PutObject")


def test_second_deploy_reports_no_changes_and_uploads_no_new_zip(cli, deploy_args, config_file):
    assert cli(*deploy_args).exit_code == 0
    keys_before = _artifact_keys()
    second = cli("deploy", "--no-verify", "--config", str(config_file))
    assert second.exit_code == 0, second.output
    assert "Reusing existing deployment package." in second.output
    assert "No changes" in second.output
    assert "Executing" not in second.output
    assert _artifact_keys() == keys_before
    assert "config/monitored_events.json is already up to date" in second.output


def test_changed_package_is_uploaded_to_the_hardened_bucket_on_the_next_deploy(
    cli, deploy_args, config_file, monkeypatch
):
    """The artifacts bucket has its TLS-only policy from the start; a later deploy with new processor code
    still uploads (the local AWS honours the policy's condition) and points the stack at the new zip."""
    assert cli(*deploy_args).exit_code == 0
    first = package.build_package()
    changed = package.Package(data=first.data + b"changed", sha256="f" * 64, files=first.files)
    monkeypatch.setattr(package, "build_package", lambda root=None: changed)
    policy = json.loads(boto3.client("s3").get_bucket_policy(Bucket=ARTIFACTS_BUCKET)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    second = cli("deploy", "--no-verify", "--config", str(config_file))

    assert second.exit_code == 0, second.output
    assert f"Uploaded deployment package s3://{ARTIFACTS_BUCKET}/{changed.key}" in second.output
    assert sorted(_artifact_keys()) == sorted([first.key, changed.key])
    body = boto3.client("s3").get_object(Bucket=ARTIFACTS_BUCKET, Key=changed.key)["Body"].read()
    assert body == changed.data
    stack = boto3.client("cloudformation").describe_stacks(StackName="trailwatch")["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["CodeKey"] == changed.key


def test_parameter_change_updates_the_stack(cli, deploy_args, config_file):
    assert cli(*deploy_args).exit_code == 0
    result = cli("deploy", "--no-verify", "--param", "LogLevel=DEBUG", "--config", str(config_file))
    assert result.exit_code == 0, result.output
    assert "Update stack trailwatch" in result.output
    stack = boto3.client("cloudformation").describe_stacks(StackName="trailwatch")["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["LogLevel"] == "DEBUG"
    assert params["TrailBucketName"] == TEST_BUCKET  # previous value kept


def test_dry_run_prints_the_change_set_and_creates_nothing(cli, deploy_args):
    result = cli(*deploy_args, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "TrailBucket" in result.output and "AWS::DynamoDB::Table" in result.output
    assert "Dry run" in result.output
    stacks = boto3.client("cloudformation").list_stacks()["StackSummaries"]
    assert all(s["StackStatus"] in ("DELETE_COMPLETE",) for s in stacks if s["StackName"] == "trailwatch")
    assert "tw-cli-test-trail-bucket" not in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--param", "Nope=1"], "Allowed: TrailBucketName, AlertEmail, EventsTableName, LogLevel"),
        (["--param", "LogLevel"], "expected KEY=VALUE"),
        (["--param", "CodeKey=x.zip"], "set by the packaging step"),
    ],
)
def test_bad_params_are_usage_errors(cli, deploy_args, args, needle):
    result = cli(*deploy_args, *args)
    assert result.exit_code == 2
    assert needle in result.output


def test_first_deploy_needs_bucket_and_email(cli):
    result = cli("deploy", "--no-verify")
    assert result.exit_code == 2
    assert "--bucket NAME" in result.output and "--email ADDR" in result.output


def test_bucket_name_taken(cli, deploy_args):
    boto3.client("s3").create_bucket(Bucket=TEST_BUCKET)
    result = cli(*deploy_args)
    assert result.exit_code == 3
    assert f"Bucket name '{TEST_BUCKET}' is already taken" in result.output
    assert "Hint:" in result.output


def test_artifacts_bucket_name_taken_elsewhere(cli, deploy_args, failing_client):
    failing_client(
        "s3", "create_bucket", "BucketAlreadyExists", "The requested bucket name is not available."
    )
    result = cli(*deploy_args)
    assert result.exit_code == 3
    assert "Bucket name already taken" in result.output and "--bucket" in result.output


def test_rollback_complete_stack_is_refused_with_destroy_hint(cli, deploy_args):
    from moto.cloudformation.models import cloudformation_backends

    assert cli(*deploy_args).exit_code == 0
    backend = cloudformation_backends["123456789012"]["us-east-1"]
    for stack in backend.stacks.values():
        stack.status = "ROLLBACK_COMPLETE"  # moto never rolls back by itself
    result = cli("deploy", "--no-verify", "--param", "LogLevel=DEBUG")
    assert result.exit_code == 3
    assert "ROLLBACK_COMPLETE" in result.output
    assert "trailwatch destroy" in result.output


def test_template_rejected(cli, deploy_args, failing_client):
    failing_client(
        "cloudformation",
        "create_change_set",
        "ValidationError",
        "Template format error: Unresolved X",
    )
    result = cli(*deploy_args)
    assert result.exit_code == 3
    assert "CloudFormation rejected the template" in result.output
    assert "Unresolved X" in result.output


def test_access_denied(cli, deploy_args, failing_client):
    failing_client("sts", "get_caller_identity", "AccessDenied", "User alice is not authorized")
    result = cli(*deploy_args)
    assert result.exit_code == 3
    assert "Access denied calling GetCallerIdentity" in result.output
    assert "Hint:" in result.output


def test_destroy_deletes_stack_and_lists_retained(cli, deploy_args):
    assert cli(*deploy_args).exit_code == 0
    result = cli("destroy", "--yes")
    assert result.exit_code == 0, result.output
    cfn = boto3.client("cloudformation")
    assert [s for s in cfn.describe_stacks()["Stacks"] if s["StackName"] == "trailwatch"] == []
    assert f"trail bucket s3://{TEST_BUCKET}" in result.output
    assert f"aws s3api delete-bucket --region us-east-1 --bucket {TEST_BUCKET}" in result.output
    assert "aws dynamodb delete-table --region us-east-1 --table-name SecurityEvents" in result.output


def test_destroy_asks_and_aborts_without_yes(cli, deploy_args):
    assert cli(*deploy_args).exit_code == 0
    result = cli("destroy", input="n\n")
    assert result.exit_code == 2
    assert "nothing deleted" in result.output
    assert boto3.client("cloudformation").describe_stacks(StackName="trailwatch")["Stacks"]


def test_destroy_without_stack_is_a_no_op(cli):
    result = cli("destroy", "--yes")
    assert result.exit_code == 0
    assert "does not exist" in result.output


def test_deploy_uploads_the_bundled_default_config_without_config_option(cli):
    from trailwatch import resources

    result = cli("deploy", "--bucket", TEST_BUCKET, "--email", TEST_EMAIL, "--no-verify")
    assert result.exit_code == 0, result.output
    body = (
        boto3.client("s3").get_object(Bucket=TEST_BUCKET, Key="config/monitored_events.json")["Body"].read()
    )
    assert body == resources.default_config_path().read_bytes()


class _FailingStackCfn:
    """moto's CloudFormation, except that executing a change set "fails" as AWS reports it: resource
    events with CREATE_FAILED and reasons, then ROLLBACK_COMPLETE (moto never fails or rolls back)."""

    def __init__(self, inner, busy_polls: int = 0):
        self._inner = inner
        self._executed: str | None = None
        self._busy_polls = busy_polls  # describe_stacks answers CREATE_IN_PROGRESS this many times first

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def execute_change_set(self, ChangeSetName, StackName):
        self._executed = StackName

    def describe_stacks(self, StackName):
        got = self._inner.describe_stacks(StackName=StackName)
        if self._executed:
            busy = self._busy_polls > 0
            self._busy_polls -= 1
            got["Stacks"][0]["StackStatus"] = "CREATE_IN_PROGRESS" if busy else "ROLLBACK_COMPLETE"
        return got

    def get_paginator(self, name):
        if name != "describe_stack_events" or not self._executed:
            return self._inner.get_paginator(name)
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC) + timedelta(seconds=1)

        def event(n, logical, kind, status, reason=""):
            return {
                "EventId": f"e{n}",
                "Timestamp": now + timedelta(milliseconds=n),
                "LogicalResourceId": logical,
                "ResourceType": kind,
                "ResourceStatus": status,
                "ResourceStatusReason": reason,
            }

        events = [
            event(5, "trailwatch", "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE"),
            event(4, "EventsTable", "AWS::DynamoDB::Table", "CREATE_FAILED", "Resource creation cancelled"),
            event(
                3,
                "TrailBucket",
                "AWS::S3::Bucket",
                "CREATE_FAILED",
                "tw-cli-test-trail-bucket already exists",
            ),
            event(2, "trailwatch", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated"),
        ]

        class Pages:
            def paginate(self, StackName):
                return [{"StackEvents": events}]

        return Pages()


@pytest.fixture
def scripted_failure(monkeypatch):
    from trailwatch import stack
    from trailwatch.session import Aws

    monkeypatch.setattr(stack, "HEARTBEAT_SECONDS", 0.0)

    original = Aws.client

    def client(self, name):
        real = original(self, name)
        if name != "cloudformation":
            return real
        if not hasattr(self, "_scripted_cfn"):
            self._scripted_cfn = _FailingStackCfn(real, busy_polls=2)
        return self._scripted_cfn

    monkeypatch.setattr(Aws, "client", client)


@pytest.mark.usefixtures("scripted_failure")
def test_failed_stack_prints_failing_resources_with_reasons(cli, deploy_args):
    result = cli(*deploy_args)
    assert result.exit_code == 3
    assert "Stack trailwatch ended in ROLLBACK_COMPLETE." in result.output
    failed = result.output[result.output.index("Failed resources:") :]
    assert "TrailBucket" in failed and "tw-cli-test-trail-bucket already exists" in failed
    assert "EventsTable" not in failed  # cancelled, not a cause
    assert "trailwatch destroy" in result.output
    assert "choose another --bucket" in result.output
    assert "config/monitored_events.json" not in result.output  # nothing after the failure
    assert "still CREATE_IN_PROGRESS ..." in result.output  # never a silent pause


def test_deploy_json_summary(cli, deploy_args):
    result = cli(*deploy_args, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "CREATE_COMPLETE" and summary["no_changes"] is False
    assert summary["outputs"]["TrailBucketName"] == TEST_BUCKET
    assert summary["package"]["key"] == package.build_package().key
    assert {c["logical_id"] for c in summary["changes"]} >= {"TrailBucket", "EventsTable"}
    assert summary["verify"] is None
    assert "==> Planning" in result.stderr


def test_verify_on_a_stack_without_the_pipeline_fails_clearly(cli, deploy_args):
    assert cli(*deploy_args).exit_code == 0
    result = cli("verify", "--no-probe", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["stack status"]["status"] == "pass"
    assert by_name["trail logging"] == {
        "status": "fail",
        "name": "trail logging",
        "reason": "the stack has no TrailArn output (deployed from another template?)",
    }
    assert by_name["config"]["status"] == "pass"
    assert by_name["dead-letter queue"]["status"] == "pass"


def test_invalid_config_fails_deploy_before_anything_changes(cli, deploy_args, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"monitored_events": "CreateUser"}')
    args = [*deploy_args[:-1], str(bad)]
    result = cli(*args)
    assert result.exit_code == 2
    assert "bad.json" in result.output and "nothing uploaded" in result.output
    assert [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]] == []
    assert boto3.client("cloudformation").describe_stacks()["Stacks"] == []


# ---------------------------------------------------------------- names, leftovers, states


@pytest.fixture
def no_aws_calls(monkeypatch, small_template):
    """main.yaml's parameters (TrailName too), and any AWS client made by the CLI fails the test: the
    check must come first."""
    from trailwatch import resources
    from trailwatch.session import Aws

    from tests.unit.template_helpers import TEMPLATE_PATH

    monkeypatch.setattr(resources, "template_text", TEMPLATE_PATH.read_text)

    def refuse(self, service):
        raise AssertionError(f"an AWS call ({service}) before the names were checked")

    monkeypatch.setattr(Aws, "client", refuse)


@pytest.mark.usefixtures("no_aws_calls")
@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--bucket", "a..b", "two adjacent periods"),
        ("--bucket", "192.168.5.4", "IP address"),
        ("--bucket", "xn--trail-logs", "'xn--'"),
        ("--bucket", "trail-logs-s3alias", "'-s3alias'"),
        ("--bucket", "sthree-trail-logs", "'sthree-'"),
        ("--bucket", "trail-logs--ol-s3", "'--ol-s3'"),
        ("--param", "TrailName=my..trail", "side by side"),
        ("--param", "TrailName=my-_trail", "side by side"),
        ("--param", "TrailName=10.0.0.1", "IP address"),
        ("--param", "TrailName=-trail", "start and end"),
        ("--email", "me@example.com\nBcc: x@example.org", "line breaks"),
        ("--email", "me@example.com\n", "line breaks"),
    ],
)
def test_names_aws_rejects_exit_2_before_any_aws_call(cli, config_file, flag, value, needle):
    args = ["deploy", "--no-verify", "--config", str(config_file), "--bucket", TEST_BUCKET]
    args += ["--email", TEST_EMAIL, flag, value]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Nothing was changed" in result.output


def test_leftover_table_stops_a_first_deploy_before_anything_changes(cli, deploy_args):
    """A table retained by an earlier stack: say what to delete instead of failing mid-create."""
    boto3.client("dynamodb").create_table(
        TableName="SecurityEvents",
        AttributeDefinitions=[{"AttributeName": "EventId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "EventId", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    result = cli(*deploy_args)
    assert result.exit_code == 3, result.output
    assert "DynamoDB table 'SecurityEvents' already exists" in result.output
    assert "aws dynamodb delete-table --region us-east-1 --table-name SecurityEvents" in result.output
    assert boto3.client("cloudformation").describe_stacks()["Stacks"] == []
    assert ARTIFACTS_BUCKET not in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]


def test_leftover_bucket_says_what_to_delete(cli, deploy_args):
    boto3.client("s3").create_bucket(Bucket=TEST_BUCKET)
    result = cli(*deploy_args)
    assert result.exit_code == 3
    assert "already exists in this account" in result.output and "trailwatch destroy" in result.output
    assert boto3.client("cloudformation").describe_stacks()["Stacks"] == []


def test_update_rollback_failed_stack_is_named_with_its_recovery_command(cli, deploy_args):
    from moto.cloudformation.models import cloudformation_backends

    assert cli(*deploy_args).exit_code == 0
    backend = cloudformation_backends["123456789012"]["us-east-1"]
    for stack in backend.stacks.values():
        stack.status = "UPDATE_ROLLBACK_FAILED"
    result = cli("deploy", "--no-verify", "--param", "LogLevel=DEBUG")
    assert result.exit_code == 3
    assert "is in UPDATE_ROLLBACK_FAILED" in result.output
    assert "aws cloudformation continue-update-rollback --region us-east-1 --stack-name trailwatch" in (
        " ".join(result.output.split())
    )
    assert "rejected the template" not in result.output


def test_update_rollback_failed_answer_to_a_change_set_is_not_a_template_error(
    cli, deploy_args, failing_client
):
    failing_client(
        "cloudformation",
        "create_change_set",
        "ValidationError",
        "Stack:arn:aws:cloudformation:us-east-1:123456789012:stack/trailwatch/x is in UPDATE_ROLLBACK_FAILED "
        "state and can not be updated.",
    )
    result = cli(*deploy_args)
    assert result.exit_code == 3
    assert "continue-update-rollback" in result.output
    assert "rejected the template" not in result.output


@pytest.mark.parametrize("with_output", [True, False], ids=["key-output", "older-stack-without-output"])
def test_destroy_names_the_retained_log_file_key(cli, deploy_args, monkeypatch, with_output):
    from trailwatch import resources

    from tests.functional.cli_conftest import SMALL_TEMPLATE

    outputs = "Outputs:\n" + ("  LogFileKeyArn:\n    Value: !GetAtt LogFileKey.Arn\n" if with_output else "")
    with_key = SMALL_TEMPLATE.replace(
        "Outputs:\n",
        "  LogFileKey:\n    Type: AWS::KMS::Key\n    DeletionPolicy: RetainExceptOnCreate\n"
        "    Properties:\n      Description: log files\n" + outputs,
    )
    monkeypatch.setattr(resources, "template_text", lambda: with_key)
    assert cli(*deploy_args).exit_code == 0
    stack = boto3.client("cloudformation").describe_stack_resource(
        StackName="trailwatch", LogicalResourceId="LogFileKey"
    )
    key = _outputs()["LogFileKeyArn"] if with_output else stack["StackResourceDetail"]["PhysicalResourceId"]
    result = cli("destroy", "--yes")
    assert result.exit_code == 0, result.output
    assert boto3.client("kms").describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    text = " ".join(result.output.split())
    assert f"aws kms schedule-key-deletion --region us-east-1 --key-id {key}" in text
    assert "DeletionPolicy RetainExceptOnCreate" in text


@pytest.fixture
def s3_server(monkeypatch):
    """A moto server on loopback for the `aws` CLI (the in-process mock does not reach a subprocess)."""
    import shutil

    from moto.server import ThreadedMotoServer

    if shutil.which("aws") is None:
        pytest.skip("the aws CLI is not installed")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.mark.e2e  # moto's server on loopback and the real aws CLI in subprocesses
@pytest.mark.parametrize(
    ("versions", "deleted"),
    [(1150, 60), (2, 2)],
    ids=["more-than-1000-versions-and-markers", "delete-markers-only"],
)
def test_destroy_bucket_commands_empty_a_bucket_of_any_size(s3_server, versions, deleted):
    """The printed commands, run by sh with the real aws CLI: more than DeleteObjects' 1,000 keys, and a
    bucket holding only delete markers (an empty Versions list), both end with the bucket gone."""
    import subprocess

    from trailwatch.destroy import bucket_removal_commands

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = "tw-retained-trail-bucket"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put = [s3.put_object(Bucket=bucket, Key=f"AWSLogs/{i:05}.json.gz", Body=b"x") for i in range(versions)]
    for i in range(deleted):
        s3.delete_object(Bucket=bucket, Key=f"AWSLogs/{i:05}.json.gz")  # a delete marker
    if versions == deleted:  # remove the versions themselves: only delete markers are left
        for i, response in enumerate(put):
            s3.delete_object(Bucket=bucket, Key=f"AWSLogs/{i:05}.json.gz", VersionId=response["VersionId"])
        listing = s3.list_object_versions(Bucket=bucket)
        assert "Versions" not in listing and len(listing["DeleteMarkers"]) == deleted

    for command in bucket_removal_commands(bucket, f"--region us-east-1 --endpoint-url {s3_server}"):
        run = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, (command, run.stderr)
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize(
    ("alarm_subscribed", "status", "needle"),
    [
        (True, "pass", "alarm topic: secops@example.com"),  # moto confirms email subscriptions at once
        (False, "warn", "no email subscription on the alarm topic"),
        (None, "warn", "the stack has no alarm topic"),
    ],
    ids=["subscribed", "missing-subscription", "missing-topic"],
)
def test_verify_email_check_covers_the_alarm_topic(alarm_subscribed, status, needle):
    """The alarms' mail goes through AlarmTopic's own subscription: verify reports on it too."""
    from trailwatch import verify
    from trailwatch.session import Aws, Options

    sns = boto3.client("sns")
    outputs = {"AlertTopicArn": sns.create_topic(Name="alerts")["TopicArn"]}
    sns.subscribe(TopicArn=outputs["AlertTopicArn"], Protocol="email", Endpoint=TEST_EMAIL)
    if alarm_subscribed is not None:
        outputs["AlarmTopicArn"] = sns.create_topic(Name="alarms")["TopicArn"]
        if alarm_subscribed:
            sns.subscribe(TopicArn=outputs["AlarmTopicArn"], Protocol="email", Endpoint=TEST_EMAIL)
    ctx = verify.Context(aws=Aws(Options(region="us-east-1")), stack={}, outputs=outputs, template={})
    got_status, reason = verify.check_email(ctx)
    assert got_status == status and needle in reason, reason


@pytest.mark.parametrize(("policy", "left_over"), [("RetainExceptOnCreate", False), ("Retain", True)])
def test_failed_first_deploy_leaves_nothing_behind(cli, deploy_args, monkeypatch, policy, left_over):
    """destroy, fix, deploy again: with RetainExceptOnCreate (main.yaml's policy) a rolled-back creation
    deletes the bucket and the table, so the next deploy does not stop on them; with Retain it would."""
    from trailwatch import resources

    from tests.functional.cli_conftest import SMALL_TEMPLATE

    fixed = SMALL_TEMPLATE.replace("DeletionPolicy: Retain", f"DeletionPolicy: {policy}")
    broken = fixed.replace(
        "  LogDeliveryTopic:\n",
        "  Broken:\n    Type: AWS::SQS::Queue\n    DependsOn: [TrailBucket, EventsTable]\n"
        "    Properties:\n      QueueName: not a valid queue name!\n  LogDeliveryTopic:\n",
    )
    monkeypatch.setattr(resources, "template_text", lambda: broken)
    failed = cli(*deploy_args)
    assert failed.exit_code == 3 and "ROLLBACK_COMPLETE" in failed.output, failed.output
    assert cli("destroy", "--yes").exit_code == 0

    monkeypatch.setattr(resources, "template_text", lambda: fixed)
    again = cli(*deploy_args)
    if left_over:
        assert again.exit_code == 3 and "already exists in this account" in again.output
    else:
        assert again.exit_code == 0, again.output
