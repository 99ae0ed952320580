"""Attach mode across accounts on the local AWS: trailwatch in a "security" account attached to an
organization trail's bucket in a "log-archive" account, through the README's commands.

The log-archive account (an assumed role into another account id) has an organization-layout bucket
(``o-<org>/AWSLogs/o-<org>/<member>/CloudTrail/<region>/...``) in eu-west-1, versioned, encrypted with its
own KMS key, with a bucket policy of its own and an EXISTING notification (its indexer queue). trailwatch
is deployed in the security account (us-east-1) with ``trailwatch deploy --use-bucket ... --bucket-account
...`` (same main.yaml, same zip); the owner applies what ``trailwatch owner-grants`` generates with its own
credentials (``--owner-profile log-archive --apply``: bucket and key policy statements merged, S3's
EventBridge destination added, the forwarding rule to the security account's bus). Log files of three
member accounts arrive; every detection is stored once and alerted once with its member account, the
existing notification stays in place (and keeps working), and a deleted log object is a tamper alert.

The local AWS refuses across accounts what AWS refuses (trailwatch.local.cross_account): reading the
bucket, decrypting with the owner's key and forwarding to the security account's bus each need the
owner's or the bus's grant; those refusals are tested here too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from click.testing import CliRunner
from trailwatch.cloudtrail_keys import TrailKeys
from trailwatch.local.server import LocalAWS
from trailwatch.main import cli
from trailwatch_processor import records
from trailwatch_processor.config_load import load_default_config
from trailwatch_processor.patterns import compile_config

from tests.clients import assumed_role_session, cached_clients, cli_environment
from tests.e2e.conftest import (
    ACCOUNT,
    ClientFactory,
    client_factory,
    drain_until,
    scan_table,
    subscribe_alert_queue,
    take_messages,
)
from tests.functional import factories as f
from tests.functional.test_owner_grants import cloudtrail_write_statement

pytestmark = pytest.mark.e2e

LOG_ARCHIVE = "210987654321"
OWNER_ROLE = f"arn:aws:iam::{LOG_ARCHIVE}:role/AWSControlTowerExecution"
OWNER_REGION = "eu-west-1"
ORG = "o-exampleorg1"
BUCKET = f"aws-controltower-logs-{LOG_ARCHIVE}-{OWNER_REGION}"
CONFIG_BUCKET = f"tw-config-{ACCOUNT}"
MEMBERS = ("111111111111", "222222222222", "333333333333")
WAIT_SECONDS = 60.0
DELETED = "CloudTrail log object deleted"
OWNER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        cloudtrail_write_statement(f"arn:aws:s3:::{BUCKET}/{ORG}/AWSLogs/*"),
        {
            "Sid": "AllowSSLRequestsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ],
}


@dataclass
class Org:
    """The two accounts' clients and what the module set up."""

    security: ClientFactory
    owner: ClientFactory  # the log-archive account, in the bucket's region
    key_arn: str
    indexer_queue: str
    existing_notifications: dict[str, Any]
    cli_env: dict[str, str] = field(default_factory=dict)  # the `trailwatch` CLI as the security account
    outputs: dict[str, str] = field(default_factory=dict)
    alert_queue: str = ""
    alerts: list[dict[str, Any]] = field(default_factory=list)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploaded: list[str] = field(default_factory=list)
    expected: dict[str, tuple[str, frozenset[str]]] = field(
        default_factory=dict
    )  # event id -> account, rules

    def drain(self) -> None:
        for m in take_messages(self.security("sqs"), self.alert_queue, MessageAttributeNames=["All"]):
            attributes = {k: v.get("StringValue") for k, v in m.get("MessageAttributes", {}).items()}
            self.alerts.append({**json.loads(m["Body"]), "_attributes": attributes})
        for item in scan_table(self.security, self.outputs["EventsTableName"]):
            self.items[item["EventId"]["S"]] = item

    def wait_until(self, done: Any, what: str) -> None:
        drain_until(self.drain, done, what, self.progress, WAIT_SECONDS)

    def progress(self) -> str:
        return f"{len(self.items)} items, {self.alerts}"

    def detections(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a.get("rule") != "trailwatch-operational"]


def _trailwatch(*args: str) -> str:
    """The command's stdout: the local AWS's background threads log to stderr meanwhile, which
    ``result.output`` interleaves (a Lambda runtime line once broke the JSON of ``owner-grants``)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _set_up_log_archive(owner: ClientFactory) -> tuple[str, str, dict[str, Any]]:
    """The log-archive account as Control Tower leaves it: key, bucket, policy, an indexer notification."""
    key_arn = owner("kms").create_key(Description="org trail log files")["KeyMetadata"]["Arn"]
    s3 = owner("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": OWNER_REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(OWNER_POLICY))
    sqs = owner("sqs")
    queue_url = sqs.create_queue(QueueName="log-archive-indexer")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    existing = {
        "QueueConfigurations": [
            {"Id": "indexer", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]},
        ]
    }
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=existing)
    return key_arn, queue_url, _notifications(owner)


def _notifications(owner: ClientFactory) -> dict[str, Any]:
    got = owner("s3").get_bucket_notification_configuration(Bucket=BUCKET)
    return {k: v for k, v in got.items() if k.endswith("Configurations")}


@pytest.fixture(scope="module")
def org(local_aws: LocalAWS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    security = client_factory(local_aws)
    credentials = security("sts").assume_role(RoleArn=OWNER_ROLE, RoleSessionName="log-archive-admin")[
        "Credentials"
    ]
    owner = cached_clients(assumed_role_session(credentials, OWNER_REGION), endpoint_url=local_aws.endpoint)
    key_arn, indexer, existing = _set_up_log_archive(owner)
    profiles = tmp_path_factory.mktemp("aws") / "credentials"
    profiles.write_text(
        "[log-archive]\n"
        f"aws_access_key_id = {credentials['AccessKeyId']}\n"
        f"aws_secret_access_key = {credentials['SecretAccessKey']}\n"
        f"aws_session_token = {credentials['SessionToken']}\n"
    )
    cli_env = {
        **cli_environment(local_aws),
        "AWS_SHARED_CREDENTIALS_FILE": str(profiles),
        "AWS_CONFIG_FILE": os.devnull,
    }
    with pytest.MonkeyPatch.context() as env:  # for the module's fixtures; tests take `security_cli`
        for name, value in cli_env.items():
            env.setenv(name, value)
        yield Org(security, owner, key_arn, indexer, existing, cli_env=cli_env)


@pytest.fixture(scope="module")
def attached(org: Org) -> Org:
    """The README's commands: deploy in attach mode (security account), then the owner applies the grants."""
    _trailwatch(
        "deploy", "--bucket", CONFIG_BUCKET, "--email", "secops@example.com", "--use-bucket", BUCKET,
        "--bucket-account", LOG_ARCHIVE, "--log-prefix", ORG, "--kms-key", org.key_arn,
        "--param", "FunctionTimeout=30",
    )  # fmt: skip
    stack = org.security("cloudformation").describe_stacks(StackName="trailwatch")["Stacks"][0]
    org.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    review = json.loads(_trailwatch("owner-grants"))
    assert review["ForwardingRule"]["Region"] == OWNER_REGION
    _trailwatch("owner-grants", "--owner-profile", "log-archive", "--apply")
    org.alert_queue = subscribe_alert_queue(org.security, org.outputs["AlertTopicArn"], "secops-alerts")
    return org


def _upload(org: Org, account: str, recs: list[dict[str, Any]], *, kms: bool = True) -> str:
    """A log file of `account` as the organization trail writes it (SSE-KMS with the trail's key)."""
    now = datetime.now(UTC)
    key = TrailKeys(account, prefix=ORG, org_id=ORG).log_file("us-east-1", now, os.urandom(8).hex().upper())
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": org.key_arn} if kms else {}
    org.owner("s3").put_object(Bucket=BUCKET, Key=key, Body=f.log_bytes(recs), **extra)
    return key


@pytest.fixture(scope="module")
def delivered(attached: Org) -> Org:
    """Log files of three member accounts; the last one's detection names no recipientAccountId (the key's
    account is the fallback)."""
    matcher = compile_config(load_default_config())
    for account in MEMBERS:
        detections = [
            f.record("CreateUser", eventSource="iam.amazonaws.com", recipientAccountId=account),
            f.root_login(recipientAccountId=account),
        ]
        if account == MEMBERS[-1]:
            del detections[0]["recipientAccountId"]
            detections[0]["userIdentity"]["accountId"] = MEMBERS[0]  # the caller's account is another one
        recs = [f.record("DescribeInstances", recipientAccountId=account), *detections]
        for rec in detections:
            rules = frozenset(rule.id for rule in matcher.match(rec))
            assert rules, rec["eventName"]
            attached.expected[records.event_id(rec)] = (account, rules)
        attached.uploaded.append(_upload(attached, account, recs))

    def all_alerted() -> bool:
        alerted = {e for a in attached.detections() for e in a.get("eventIDs", [])}
        return set(attached.expected) <= alerted and set(attached.expected) <= set(attached.items)

    attached.wait_until(all_alerted, "every detection stored and alerted")
    return attached


def test_every_detection_stored_once_with_its_member_account(delivered: Org) -> None:
    for event_id, (account, rules) in delivered.expected.items():
        item = delivered.items[event_id]
        assert item["account_id"]["S"] == account, event_id
        assert {r["S"] for r in item["rule_ids"]["L"]} == rules
        assert item["log_bucket"]["S"] == BUCKET
    stored = {k for k, v in delivered.items.items() if "rule_ids" in v and "account_id" in v}
    assert stored >= set(delivered.expected)


def test_every_detection_alerted_once_naming_its_account(delivered: Org) -> None:
    seen: dict[str, list[str]] = {}
    for alert in delivered.detections():
        for event_id in alert["eventIDs"]:
            seen.setdefault(event_id, []).append(alert["rule"])
        accounts = {e["account"] for e in alert["events"]}
        assert len(accounts) == 1  # one log file per member account: one account per alert
        assert alert["_attributes"]["account"] == accounts.pop()  # what filter policies match on
    # Once each, under the event's primary rule (the first of its rules, as stored).
    primary = {e: delivered.items[e]["rule_id"]["S"] for e in delivered.expected}
    assert seen == {e: [rule] for e, rule in primary.items()}
    by_event = {e["eventID"]: e["account"] for a in delivered.detections() for e in a["events"]}
    assert {e: by_event[e] for e in delivered.expected} == {e: a for e, (a, _) in delivered.expected.items()}


def test_existing_notification_still_in_place_and_working(delivered: Org) -> None:
    assert _notifications(delivered.owner) == delivered.existing_notifications
    sqs = delivered.owner("sqs")
    keys: list[str] = []
    while messages := sqs.receive_message(
        QueueUrl=delivered.indexer_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
    ).get("Messages", []):
        for m in messages:
            keys += [r["s3"]["object"]["key"] for r in json.loads(m["Body"]).get("Records", [])]
            sqs.delete_message(QueueUrl=delivered.indexer_queue, ReceiptHandle=m["ReceiptHandle"])
    assert set(delivered.uploaded) <= {k.replace("%2F", "/") for k in keys}


def test_owner_grants_were_merged_into_the_owner_policies(delivered: Org) -> None:
    policy = json.loads(delivered.owner("s3").get_bucket_policy(Bucket=BUCKET)["Policy"])
    sids = [s["Sid"] for s in policy["Statement"]]
    assert sids == [
        "AWSCloudTrailWrite",
        "AllowSSLRequestsOnly",
        "TrailwatchReadLogs",
        "TrailwatchReadVersions",
    ]
    key_policy = json.loads(
        delivered.owner("kms").get_key_policy(KeyId=delivered.key_arn, PolicyName="default")["Policy"]
    )
    assert key_policy["Statement"][-1]["Principal"] == {"AWS": delivered.outputs["ProcessorRoleArn"]}
    rules = delivered.owner("events").list_rules()["Rules"]
    (rule,) = [r for r in rules if r["Name"].startswith("trailwatch-forward-")]
    (target,) = delivered.owner("events").list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default"
    # Another region: AWS needs a role on the target (the local AWS delivers nothing without one).
    role = delivered.owner("iam").get_role(RoleName=target["RoleArn"].rsplit("/", 1)[-1])["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "events.amazonaws.com"
    }


def test_deleted_log_object_is_one_tamper_alert(delivered: Org) -> None:
    key = delivered.uploaded[0]
    delivered.owner("s3").delete_object(Bucket=BUCKET, Key=key)

    def tampered() -> list[dict[str, Any]]:
        return [
            a for a in delivered.alerts if a.get("title") == DELETED and a.get("source", "").endswith(key)
        ]

    delivered.wait_until(tampered, "the tamper alert of the deleted log object")
    assert len(tampered()) == 1


# ---------------------------------------------------------------- what AWS refuses across accounts


def _role_client(org: Org, service: str) -> Any:
    credentials = org.security("sts").assume_role(
        RoleArn=org.outputs["ProcessorRoleArn"], RoleSessionName="as-the-processor"
    )["Credentials"]
    return assumed_role_session(credentials, "us-east-1").client(
        service, endpoint_url=org.security("s3").meta.endpoint_url
    )


def _denied(call: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def test_only_the_granted_role_reads_the_owner_bucket(delivered: Org) -> None:
    key = delivered.uploaded[1]
    processor = _role_client(delivered, "s3")
    assert processor.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    # The security account's other principals are not named by the bucket policy.
    assert _denied(lambda: delivered.security("s3").get_object(Bucket=BUCKET, Key=key)) == "AccessDenied"
    # Outside <prefix>AWSLogs/ the role has no grant either.
    delivered.owner("s3").put_object(Bucket=BUCKET, Key="elsewhere/file.txt", Body=b"x")
    assert _denied(lambda: processor.get_object(Bucket=BUCKET, Key="elsewhere/file.txt")) == "AccessDenied"


def test_a_log_file_under_a_key_not_granted_is_not_decrypted(delivered: Org) -> None:
    other_key = delivered.owner("kms").create_key(Description="not granted")["KeyMetadata"]["Arn"]
    key = TrailKeys(MEMBERS[0], prefix=ORG, org_id=ORG).log_file("us-east-1", datetime.now(UTC), "OTHERKEY")
    delivered.owner("s3").put_object(
        Bucket=BUCKET, Key=key, Body=f.log_bytes([]), ServerSideEncryption="aws:kms", SSEKMSKeyId=other_key
    )
    processor = _role_client(delivered, "s3")
    assert _denied(lambda: processor.get_object(Bucket=BUCKET, Key=key)) == "AccessDenied"


def test_the_bus_admits_only_the_bucket_account(delivered: Org) -> None:
    from trailwatch.local.cross_account import bus_admits

    assert bus_admits(ACCOUNT, "us-east-1", "default", LOG_ARCHIVE)
    assert not bus_admits(ACCOUNT, "us-east-1", "default", "444444444444")


def test_readme_names_the_commands_run_here() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "trailwatch owner-grants --owner-profile log-archive --apply" in readme
    assert "--use-bucket" in readme and "--bucket-account" in readme


@pytest.fixture
def security_cli(delivered: Org, monkeypatch: pytest.MonkeyPatch) -> Org:
    for name, value in delivered.cli_env.items():
        monkeypatch.setenv(name, value)
    return delivered


def test_verify_in_attach_mode_checks_without_writing_into_the_owner_bucket(security_cli: Org) -> None:
    delivered = security_cli
    before = {v["Key"] for v in delivered.owner("s3").list_object_versions(Bucket=BUCKET).get("Versions", [])}
    result = CliRunner().invoke(cli, ["verify", "--no-probe", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["notification path"]["status"] == "pass"
    assert LOG_ARCHIVE in checks["notification path"]["reason"]
    # Only the processor's role is granted: the security account's own read is refused, and says why.
    assert checks["recent log object"]["status"] == "warn"
    assert "processor's role only" in checks["recent log object"]["reason"]
    assert checks["last processed file"]["status"] == "pass"
    assert ORG in checks["last processed file"]["reason"]
    assert "trail logging" not in checks  # no trail of ours in attach mode
    after = {v["Key"] for v in delivered.owner("s3").list_object_versions(Bucket=BUCKET).get("Versions", [])}
    assert after == before
