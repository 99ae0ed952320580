"""The intrusion story of `trailwatch demo`: what happens and which rule each step must fire.

Two tellings of the same intrusion: written as CloudTrail log files with background traffic (`files_story`,
`run_files_story`), or performed as real API calls by a second IAM user (`LiveStory`, recorded by the local
AWS's CloudTrail; its console sign-ins, which are no API calls, written as a log file by
`write_console_logins`). Each step becomes an `Expected`; `demo.py` waits for them and checks the outcome.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from trailwatch import synth
from trailwatch.session import Aws
from trailwatch.ui import UI

ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
ADMIN_DOCUMENT = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
INTRUDER = "intruder"

# Rule ids of the bundled events.json.
NO_MFA = "cis-4.2-console-signin-without-mfa"
ROOT = "cis-4.3-root-account-usage"
IAM_POLICY = "cis-4.4-iam-policy-changes"
TRAIL_CHANGE = "cis-4.5-cloudtrail-config-changes"
AUTH_FAILURE = "cis-4.6-console-auth-failures"
KMS_CHANGE = "cis-4.7-cmk-disabled-or-scheduled-deletion"
BUCKET_POLICY = "cis-4.8-s3-bucket-policy-changes"
CONFIG_CHANGE = "cis-4.9-aws-config-changes"
SG_CHANGE = "cis-4.10-security-group-changes"
UNAUTHORIZED = "cis-4.1-unauthorized-api-calls"
CREATE_USER = "CreateUser"


@dataclass
class Expected:
    """One story step: the event it produces and the primary rule it must be detected by (None: no alert).

    `event_id` is known up front for written files; for live calls the record is found by `request_id`.
    """

    title: str
    event_name: str
    rule: str | None
    event_id: str | None = None
    request_id: str | None = None
    at: float = 0.0  # wall-clock time of the call / of the file write
    key: str | None = None


@dataclass
class Pipeline:
    """The deployed stack as the demo uses it."""

    aws: Aws
    outputs: dict[str, str]
    alert_queue: str
    tap_queue: str


# ------------------------------------------------------------------------------------ files story
def files_story(now: datetime) -> list[tuple[str, str | None, dict]]:
    """(title, record) of the intrusion story as CloudTrail would log it, with the rule each must fire."""
    alice = synth.iam_user("alice")
    t = [now + timedelta(seconds=i) for i in range(20)]

    def rec(name: str, **kw: Any) -> dict:
        kw.setdefault("identity", alice)
        kw.setdefault("source_ip", "198.51.100.66")
        return synth.make_record(name, time=kw.pop("time", t[0]), **kw)

    return [
        ("failed console login (1/3)", AUTH_FAILURE, synth.console_login("alice", success=False, time=t[0])),
        ("failed console login (2/3)", AUTH_FAILURE, synth.console_login("alice", success=False, time=t[1])),
        ("failed console login (3/3)", AUTH_FAILURE, synth.console_login("alice", success=False, time=t[2])),
        ("console login without MFA", NO_MFA, synth.console_login("alice", mfa=False, time=t[3])),
        ("root console login", ROOT, synth.console_login(root_login=True, time=t[4])),
        ("root lists users", ROOT, rec("ListUsers", identity=synth.root(), time=t[5])),
        ("denied secrets read", UNAUTHORIZED, rec("GetSecretValue", error_code="AccessDenied", time=t[6])),
        ("CreateUser backdoor", CREATE_USER, rec("CreateUser", request_parameters={"userName": "backdoor"})),
        (
            "CreateAccessKey for backdoor (no rule)",
            None,
            rec("CreateAccessKey", request_parameters={"userName": "backdoor"}, time=t[7]),
        ),
        (
            "AttachUserPolicy AdministratorAccess",
            IAM_POLICY,
            rec("AttachUserPolicy", request_parameters={"userName": "backdoor", "policyArn": ADMIN_POLICY}),
        ),
        (
            "PutBucketPolicy (public read)",
            BUCKET_POLICY,
            rec("PutBucketPolicy", request_parameters={"bucketName": "data-lake-raw"}, time=t[8]),
        ),
        (
            "AuthorizeSecurityGroupIngress 0.0.0.0/0:22",
            SG_CHANGE,
            rec(
                "AuthorizeSecurityGroupIngress",
                request_parameters={
                    "groupId": "sg-0123456789abcdef0",
                    "ipPermissions": {
                        "items": [
                            {
                                "ipProtocol": "tcp",
                                "fromPort": 22,
                                "toPort": 22,
                                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                            }
                        ]
                    },
                },
                time=t[9],
            ),
        ),
        ("DisableKey", KMS_CHANGE, rec("DisableKey", request_parameters={"keyId": "demo-key"}, time=t[10])),
        (
            "ScheduleKeyDeletion",
            KMS_CHANGE,
            rec("ScheduleKeyDeletion", request_parameters={"keyId": "demo-key"}, time=t[11]),
        ),
        ("StopConfigurationRecorder", CONFIG_CHANGE, rec("StopConfigurationRecorder", time=t[12])),
        (
            "StopLogging",
            TRAIL_CHANGE,
            rec("StopLogging", request_parameters={"name": "trailwatch"}, time=t[13]),
        ),
    ]


def run_files_story(p: Pipeline, ui: UI, files: int, seed: int) -> list[Expected]:
    """Write the story spread over `files` log files, each with background traffic."""
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(seed)
    story = files_story(now)
    chunks = [story[i::files] for i in range(files)]
    s3 = p.aws.client("s3")
    bucket = p.outputs["TrailBucketName"]
    expected: list[Expected] = []
    for n, chunk in enumerate(chunks, 1):
        records = synth.background_records(40, rng, monitored_fraction=0.0, when=now)
        for _title, _rule, record in chunk:
            records.insert(rng.randrange(len(records) + 1), record)
        key = synth.log_key(p.aws.account_id(), p.aws.region, now)
        s3.put_object(Bucket=bucket, Key=key, Body=synth.gzip_log(records))
        written = time.time()
        for title, rule, record in chunk:
            expected.append(Expected(title, record["eventName"], rule, record["eventID"], None, written, key))
        ui.progress(f"wrote log file {n}/{files}: {len(records)} records, {len(chunk)} from the story")
    return expected


# ------------------------------------------------------------------------------------- live story
class LiveStory:
    """The intrusion performed as API calls: root sets up `intruder` (its keys, AdministratorAccess), then
    `intruder` acts with its own keys. Each call remembers its request id to find its CloudTrail record."""

    def __init__(self, p: Pipeline, ui: UI) -> None:
        self.p, self.ui = p, ui
        self.expected: list[Expected] = []
        self.suffix = uuid.uuid4().hex[:8]
        self.admin_arn = ADMIN_POLICY

    def call(self, client: Any, op: str, rule: str | None, title: str, **kwargs: Any) -> dict[str, Any]:
        at = time.time()
        response = getattr(client, op)(**kwargs)
        meta = response["ResponseMetadata"]
        headers = meta.get("HTTPHeaders", {})
        # The header first, as the recorder: moto's EC2 bodies all carry the same placeholder RequestId.
        request_id = headers.get("x-amzn-requestid") or headers.get("x-amz-request-id") or meta["RequestId"]
        event_name = client.meta.method_to_api_mapping[op]
        self.expected.append(Expected(title, event_name, rule, None, request_id, at))
        self.ui.progress(f"{title}: {event_name} (request {request_id[:8]})")
        return response

    def run(self) -> list[Expected]:
        root_iam = self.p.aws.client("iam")
        # The emulator does not load AWS managed policies: root makes an account policy of the same name and
        # document (said in the output).
        admin = self.call(
            root_iam,
            "create_policy",
            ROOT,
            "root creates AdministratorAccess (AWS's document; the emulator has no managed policies)",
            PolicyName="AdministratorAccess",
            PolicyDocument=json.dumps(ADMIN_DOCUMENT),
        )
        self.admin_arn = admin["Policy"]["Arn"]
        self.call(root_iam, "create_user", ROOT, "root creates user intruder", UserName=INTRUDER)
        self.call(
            root_iam,
            "attach_user_policy",
            ROOT,
            "root gives intruder AdministratorAccess",
            UserName=INTRUDER,
            PolicyArn=self.admin_arn,
        )
        key = self.call(
            root_iam, "create_access_key", ROOT, "root creates intruder's keys", UserName=INTRUDER
        )
        creds = key["AccessKey"]
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            region_name=self.p.aws.region,
        )
        config = BotoConfig(s3={"addressing_style": "path"})
        self._as_intruder(lambda s: session.client(s, endpoint_url=self.p.aws.endpoint_url, config=config))
        return self.expected

    def _as_intruder(self, client: Callable[[str], Any]) -> None:
        iam, s3, ec2, kms, trail = (client(s) for s in ("iam", "s3", "ec2", "kms", "cloudtrail"))
        backdoor = f"backdoor-{self.suffix}"
        self.call(iam, "create_user", CREATE_USER, "intruder creates a backdoor user", UserName=backdoor)
        self.call(iam, "create_access_key", None, "backdoor keys (no rule)", UserName=backdoor)
        self.call(
            iam,
            "attach_user_policy",
            IAM_POLICY,
            "backdoor gets AdministratorAccess",
            UserName=backdoor,
            PolicyArn=self.admin_arn,
        )
        bucket = f"exfil-{self.suffix}"
        self.call(s3, "create_bucket", None, "exfiltration bucket (no rule)", Bucket=bucket)
        public = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
        self.call(
            s3,
            "put_bucket_policy",
            BUCKET_POLICY,
            "public bucket policy",
            Bucket=bucket,
            Policy=json.dumps(public),
        )
        group = self.call(
            ec2,
            "create_security_group",
            SG_CHANGE,
            "security group",
            GroupName=f"open-{self.suffix}",
            Description="x",
        )["GroupId"]
        self.call(
            ec2,
            "authorize_security_group_ingress",
            SG_CHANGE,
            "SSH open to 0.0.0.0/0",
            GroupId=group,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
            ],
        )
        key_id = self.call(kms, "create_key", None, "KMS key (no rule)")["KeyMetadata"]["KeyId"]
        self.call(kms, "disable_key", KMS_CHANGE, "disable the key", KeyId=key_id)
        self.call(
            kms,
            "schedule_key_deletion",
            KMS_CHANGE,
            "schedule key deletion",
            KeyId=key_id,
            PendingWindowInDays=7,
        )
        trail_name = self.p.outputs["TrailArn"].rsplit("/", 1)[-1]  # moto's StopLogging takes no ARN
        # Last: StopLogging is recorded, then the trail stops delivering.
        self.call(trail, "stop_logging", TRAIL_CHANGE, "intruder stops the trail", Name=trail_name)


def write_console_logins(p: Pipeline, ui: UI) -> list[Expected]:
    """ConsoleLogin is no API call: the intruder's sign-ins are written as a log file (said in the output)."""
    now = datetime.now(UTC).replace(microsecond=0)
    story = [
        ("failed console login", AUTH_FAILURE, synth.console_login(INTRUDER, success=False, time=now)),
        ("console login without MFA", NO_MFA, synth.console_login(INTRUDER, mfa=False, time=now)),
    ]
    key = synth.log_key(p.aws.account_id(), p.aws.region, now)
    p.aws.client("s3").put_object(
        Bucket=p.outputs["TrailBucketName"], Key=key, Body=synth.gzip_log([r for _, _, r in story])
    )
    written = time.time()
    ui.progress("ConsoleLogin is not an API call: wrote the intruder's 2 console sign-ins as a log file")
    return [Expected(t, r["eventName"], rule, r["eventID"], None, written, key) for t, rule, r in story]
