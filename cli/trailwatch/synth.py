"""Synthetic CloudTrail records and log files, shaped like the real ones.

Shared by the tests, ``bench/run.py``, ``trailwatch verify``'s probe and the demo. Records keep
CloudTrail's field order (``eventVersion`` first) and its compact JSON, so they exercise the same
code paths as delivered logs.
"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from trailwatch.cloudtrail_keys import TrailKeys

ACCOUNT = "123456789012"
REGION = "us-east-1"
DEFAULT_TIME = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
DEFAULT_IP = "203.0.113.10"
DEFAULT_AGENT = "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2023 command/iam.create-user"

# eventName -> eventSource for names the factories know; others fall back to _guess_source.
SOURCES = {
    "ConsoleLogin": "signin.amazonaws.com",
    "GetObject": "s3.amazonaws.com",
    "PutObject": "s3.amazonaws.com",
    "HeadObject": "s3.amazonaws.com",
    "ListBuckets": "s3.amazonaws.com",
    "GetBucketAcl": "s3.amazonaws.com",
    "GetBucketLocation": "s3.amazonaws.com",
    "AssumeRole": "sts.amazonaws.com",
    "GetCallerIdentity": "sts.amazonaws.com",
    "Decrypt": "kms.amazonaws.com",
    "GenerateDataKey": "kms.amazonaws.com",
    "DescribeKey": "kms.amazonaws.com",
    "DescribeInstances": "ec2.amazonaws.com",
    "DescribeSecurityGroups": "ec2.amazonaws.com",
    "DescribeVolumes": "ec2.amazonaws.com",
    "DescribeSubnets": "ec2.amazonaws.com",
    "ListRoles": "iam.amazonaws.com",
    "GetRole": "iam.amazonaws.com",
    "ListAttachedRolePolicies": "iam.amazonaws.com",
    "GetFunction": "lambda.amazonaws.com",
    "ListFunctions20150331": "lambda.amazonaws.com",
    "PutMetricData": "monitoring.amazonaws.com",
    "DescribeAlarms": "monitoring.amazonaws.com",
    "GetMetricData": "monitoring.amazonaws.com",
    "CreateLogStream": "logs.amazonaws.com",
    "DescribeLogGroups": "logs.amazonaws.com",
    "GetParameter": "ssm.amazonaws.com",
    "GetSecretValue": "secretsmanager.amazonaws.com",
    "DescribeTable": "dynamodb.amazonaws.com",
    "SendMessage": "sqs.amazonaws.com",
    "ReceiveMessage": "sqs.amazonaws.com",
    "DescribeStacks": "cloudformation.amazonaws.com",
    "LookupEvents": "cloudtrail.amazonaws.com",
    "DescribeTrails": "cloudtrail.amazonaws.com",
}

# Background mix (name, weight): read-mostly management and data events, as in a busy account.
BACKGROUND_MIX: tuple[tuple[str, int], ...] = (
    ("GetObject", 18),
    ("PutObject", 6),
    ("HeadObject", 5),
    ("Decrypt", 10),
    ("GenerateDataKey", 4),
    ("AssumeRole", 9),
    ("DescribeInstances", 6),
    ("DescribeSecurityGroups", 3),
    ("DescribeVolumes", 2),
    ("DescribeSubnets", 2),
    ("ListBuckets", 2),
    ("GetBucketAcl", 3),
    ("GetBucketLocation", 3),
    ("GetCallerIdentity", 3),
    ("ListRoles", 1),
    ("GetRole", 2),
    ("ListAttachedRolePolicies", 1),
    ("GetFunction", 1),
    ("ListFunctions20150331", 1),
    ("PutMetricData", 4),
    ("DescribeAlarms", 2),
    ("GetMetricData", 2),
    ("CreateLogStream", 3),
    ("DescribeLogGroups", 1),
    ("GetParameter", 3),
    ("GetSecretValue", 1),
    ("DescribeTable", 1),
    ("SendMessage", 2),
    ("ReceiveMessage", 2),
    ("DescribeStacks", 1),
    ("LookupEvents", 1),
    ("DescribeTrails", 1),
    ("DescribeKey", 1),
)

# Names the default events.json alerts on (original list and a few CIS controls).
MONITORED_NAMES: tuple[str, ...] = (
    "ConsoleLogin",
    "CreateUser",
    "PutBucketPolicy",
    "AuthorizeSecurityGroupIngress",
    "StopLogging",
    "DeleteTrail",
    "AttachUserPolicy",
    "CreateAccessKey",
    "ScheduleKeyDeletion",
    "CreateVpc",
)

_READ_PREFIXES = ("Describe", "List", "Get", "Head", "Lookup")
_DATA_EVENTS = {"GetObject", "PutObject", "HeadObject"}


def _guess_source(event_name: str) -> str:
    lowered = event_name.lower()
    for needle, source in (
        ("trail", "cloudtrail.amazonaws.com"),
        ("logging", "cloudtrail.amazonaws.com"),
        ("bucket", "s3.amazonaws.com"),
        ("key", "kms.amazonaws.com"),
        ("configuration", "config.amazonaws.com"),
        ("deliverychannel", "config.amazonaws.com"),
        ("organization", "organizations.amazonaws.com"),
        ("handshake", "organizations.amazonaws.com"),
        ("account", "organizations.amazonaws.com"),
    ):
        if needle in lowered:
            return source
    iam_words = ("user", "policy", "role", "group", "accesskey", "login", "mfa")
    if any(word in lowered for word in iam_words):
        return "iam.amazonaws.com"
    return "ec2.amazonaws.com"


def event_source_for(event_name: str) -> str:
    """The usual eventSource of an API call."""
    return SOURCES.get(event_name) or _guess_source(event_name)


# ---------------------------------------------------------------------------------------------------------
# Identities


def iam_user(
    name: str = "alice", account: str = ACCOUNT, access_key_id: str = "AKIAIOSFODNN7EXAMPLE"
) -> dict:
    return {
        "type": "IAMUser",
        "principalId": "AIDA" + _stable_suffix(name, 17),
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": access_key_id,
        "userName": name,
    }


def root(account: str = ACCOUNT, invoked_by: str | None = None) -> dict:
    identity = {
        "type": "Root",
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
        "accessKeyId": "ASIA" + _stable_suffix("root" + account, 16),
    }
    if invoked_by:
        identity["invokedBy"] = invoked_by
    return identity


def assumed_role(
    role: str = "Admin",
    session: str = "alice",
    account: str = ACCOUNT,
    mfa: bool = False,
    when: datetime = DEFAULT_TIME,
) -> dict:
    role_id = "AROA" + _stable_suffix(role, 17)
    return {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIA" + _stable_suffix(role + session, 16),
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role_id,
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": _iso(when), "mfaAuthenticated": "true" if mfa else "false"},
        },
    }


def aws_service(service: str = "cloudtrail.amazonaws.com") -> dict:
    return {"type": "AWSService", "invokedBy": service}


def _stable_suffix(seed: str, length: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(length))


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------------------
# Records


def make_record(
    event_name: str,
    *,
    event_source: str | None = None,
    identity: dict | None = None,
    region: str = REGION,
    time: datetime | str = DEFAULT_TIME,
    error_code: str | None = None,
    error_message: str | None = None,
    request_parameters: dict | None = None,
    response_elements: dict | None = None,
    additional_event_data: dict | None = None,
    event_id: str | None = None,
    source_ip: str = DEFAULT_IP,
    user_agent: str = DEFAULT_AGENT,
    read_only: bool | None = None,
    event_type: str | None = None,
    account: str = ACCOUNT,
    resources: list[dict] | None = None,
    management: bool | None = None,
) -> dict:
    """One CloudTrail record in CloudTrail's field order. ``event_id`` defaults to a fresh UUID."""
    identity = identity if identity is not None else iam_user(account=account)
    if read_only is None:
        read_only = event_name.startswith(_READ_PREFIXES) or event_name in {"Decrypt", "GenerateDataKey"}
    if event_type is None:
        event_type = "AwsConsoleSignIn" if event_name == "ConsoleLogin" else "AwsApiCall"
    if management is None:
        management = event_name not in _DATA_EVENTS
    record: dict = {
        "eventVersion": "1.09" if identity.get("type") != "AWSService" else "1.08",
        "userIdentity": identity,
        "eventTime": time if isinstance(time, str) else _iso(time),
        "eventSource": event_source or event_source_for(event_name),
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip if identity.get("type") != "AWSService" else identity.get("invokedBy"),
        "userAgent": user_agent if identity.get("type") != "AWSService" else identity.get("invokedBy"),
    }
    if error_code is not None:
        record["errorCode"] = error_code
        record["errorMessage"] = error_message or f"User is not authorized to perform: {event_name}"
    record["requestParameters"] = request_parameters
    record["responseElements"] = response_elements
    if additional_event_data is not None:
        record["additionalEventData"] = additional_event_data
    record["requestID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, (event_id or "") + event_name + str(time)))
    record["eventID"] = event_id or str(uuid.uuid4())
    record["readOnly"] = read_only
    if resources is not None:
        record["resources"] = resources
    record["eventType"] = event_type
    record["managementEvent"] = management
    record["recipientAccountId"] = account
    record["eventCategory"] = "Management" if management else "Data"
    if identity.get("type") != "AWSService":
        record["tlsDetails"] = {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{record['eventSource'].split('.')[0]}.{region}.amazonaws.com",
        }
    return record


def console_login(
    user: str = "alice", *, mfa: bool = False, success: bool = True, root_login: bool = False, **kw: object
) -> dict:
    """A ConsoleLogin record (successful or failed, with or without MFA)."""
    identity = root() if root_login else iam_user(user)
    response = {"ConsoleLogin": "Success" if success else "Failure"}
    extra = {
        "LoginTo": "https://console.aws.amazon.com/console/home",
        "MobileVersion": "No",
        "MFAUsed": "Yes" if mfa else "No",
    }
    kw.setdefault("user_agent", "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0")
    kw.setdefault("region", "us-east-1")
    record = make_record(
        "ConsoleLogin",
        identity=identity,
        response_elements=response,
        additional_event_data=extra,
        error_code=None,
        **kw,  # type: ignore[arg-type]
    )
    if not success:
        record["errorMessage"] = "Failed authentication"
        # CloudTrail puts errorMessage before requestParameters.
        record = {k: record[k] for k in _reorder(record, "errorMessage", before="requestParameters")}
    return record


def _reorder(record: dict, key: str, before: str) -> list[str]:
    keys = [k for k in record if k != key]
    keys.insert(keys.index(before), key)
    return keys


def _background_params(name: str, rng: random.Random, account: str, region: str) -> tuple[dict, dict | None]:
    bucket = rng.choice(("app-assets-prod", "data-lake-raw", "ml-training", "backups-eu", "static-web"))
    folder = rng.choice(("logs", "img", "parquet", "tmp"))
    key = f"{folder}/{rng.randrange(10**6):06d}/part-{rng.randrange(999)}"
    if name in _DATA_EVENTS:
        return {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", "key": key}, None
    if name in ("Decrypt", "GenerateDataKey"):
        key_id = str(uuid.UUID(int=rng.getrandbits(128)))
        params = {
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "encryptionContext": {"aws:s3:arn": f"arn:aws:s3:::{bucket}/{key}"},
        }
        if name == "GenerateDataKey":
            params["keyId"] = f"arn:aws:kms:{region}:{account}:key/{key_id}"
            params["keySpec"] = "AES_256"
        return params, None
    if name == "AssumeRole":
        role = rng.choice(("deploy", "readonly", "lambda-exec", "ecs-task", "ci-runner"))
        session = f"session-{rng.randrange(10**9)}"
        params = {
            "roleArn": f"arn:aws:iam::{account}:role/{role}",
            "roleSessionName": session,
            "durationSeconds": 3600,
        }
        response = {
            "credentials": {
                "accessKeyId": "ASIA"
                + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
                "sessionToken": "IQoJb3JpZ2luX2VjE"
                + "".join(rng.choice("abcdefghijklmnop0123456789") for _ in range(60)),
                "expiration": "Jan 15, 2026, 1:00:00 PM",
            },
            "assumedRoleUser": {
                "assumedRoleId": f"AROA{rng.randrange(10**12)}:{session}",
                "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
            },
        }
        return params, response
    if name.startswith("Describe"):
        return {"maxResults": rng.choice((50, 100, 1000)), "filterSet": {}}, None
    if name == "PutMetricData":
        return {
            "namespace": rng.choice(("AWS/Lambda", "App/Orders", "CWAgent")),
            "metricData": "<hidden>",
        }, None
    if name == "CreateLogStream":
        stream = f"2026/01/15/[$LATEST]{rng.getrandbits(128):032x}"
        return {"logGroupName": f"/aws/lambda/fn-{rng.randrange(40)}", "logStreamName": stream}, None
    if name == "GetParameter":
        return {"name": f"/app/{rng.choice(('db', 'api', 'feature'))}/config", "withDecryption": True}, None
    if name in ("SendMessage", "ReceiveMessage"):
        return {"queueUrl": f"https://sqs.{region}.amazonaws.com/{account}/orders-{rng.randrange(5)}"}, None
    return {}, None


def background_record(
    rng: random.Random, *, when: datetime = DEFAULT_TIME, account: str = ACCOUNT, region: str = REGION
) -> dict:
    """One record of the background mix (no monitored event)."""
    names = [name for name, _ in BACKGROUND_MIX]
    weights = [weight for _, weight in BACKGROUND_MIX]
    name = rng.choices(names, weights)[0]
    params, response = _background_params(name, rng, account, region)
    roll = rng.random()
    if roll < 0.55:
        identity = assumed_role(
            rng.choice(("deploy", "readonly", "lambda-exec", "ecs-task")), f"i-{rng.randrange(10**8):08x}"
        )
    elif roll < 0.85:
        identity = aws_service(
            rng.choice(("lambda.amazonaws.com", "ec2.amazonaws.com", "cloudformation.amazonaws.com"))
        )
    else:
        identity = iam_user(rng.choice(("alice", "bob", "ci-bot", "svc-reporting")))
    agent = rng.choice(
        (
            "aws-sdk-java/2.21.0 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.9+8-LTS Java/17.0.9",
            "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.11.6",
            "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488 Linux/5.10]",
            "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2023",
        )
    )
    error = "NoSuchKey" if name == "GetObject" and rng.random() < 0.02 else None
    return make_record(
        name,
        identity=identity,
        region=region,
        time=when,
        error_code=error,
        error_message="The specified key does not exist." if error else None,
        request_parameters=params,
        response_elements=response,
        event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        source_ip=".".join(str(rng.randrange(1, 223)) for _ in range(4)),
        user_agent=agent,
        account=account,
        resources=[
            {"ARN": f"arn:aws:s3:::{params['bucketName']}", "accountId": account, "type": "AWS::S3::Bucket"}
        ]
        if name in _DATA_EVENTS
        else None,
    )


def monitored_record(name: str, rng: random.Random, *, when: datetime = DEFAULT_TIME) -> dict:
    """A record of a monitored event name."""
    if name == "ConsoleLogin":
        return console_login(rng.choice(("alice", "bob")), mfa=rng.random() < 0.5, time=when)
    return make_record(
        name,
        identity=iam_user(rng.choice(("alice", "bob"))),
        time=when,
        request_parameters={"userName": "mallory"} if name == "CreateUser" else {},
        event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    )


def background_records(
    n: int,
    rng: random.Random,
    *,
    monitored_fraction: float = 0.01,
    monitored_names: Sequence[str] = MONITORED_NAMES,
    when: datetime = DEFAULT_TIME,
) -> list[dict]:
    """``n`` records: the background mix with about ``monitored_fraction`` monitored events."""
    out = []
    for _ in range(n):
        if monitored_names and rng.random() < monitored_fraction:
            out.append(monitored_record(rng.choice(list(monitored_names)), rng, when=when))
        else:
            out.append(background_record(rng, when=when))
    return out


# ---------------------------------------------------------------------------------------------------------
# Files and keys


def log_json(records: Sequence[dict]) -> bytes:
    """The JSON text of a log file, compact like CloudTrail's."""
    return json.dumps({"Records": list(records)}, separators=(",", ":")).encode()


def gzip_log(records: Sequence[dict], *, mtime: int = 0) -> bytes:
    """A gzip-compressed log file (deterministic: fixed mtime)."""
    return gzip.compress(log_json(records), compresslevel=6, mtime=mtime)


def log_key(
    account: str = ACCOUNT,
    region: str = REGION,
    when: datetime = DEFAULT_TIME,
    *,
    prefix: str = "",
    org_id: str | None = None,
    unique: str | None = None,
) -> str:
    """A log file key in CloudTrail's layout (`TrailKeys`); `unique` defaults to a random one."""
    unique = unique or uuid.uuid4().hex[:16].upper()
    return TrailKeys(account, prefix, org_id).log_file(region, when, unique)


def digest_key(
    account: str = ACCOUNT,
    region: str = REGION,
    when: datetime = DEFAULT_TIME,
    *,
    prefix: str = "",
    org_id: str | None = None,
) -> str:
    """A digest file key in CloudTrail's layout (`TrailKeys`), of a trail named trailwatch."""
    return TrailKeys(account, prefix, org_id).digest(region, when, "trailwatch", region)


def digest_body(account: str = ACCOUNT, region: str = REGION, when: datetime = DEFAULT_TIME) -> bytes:
    """A gzip digest file body (no ``Records``): what a parser must not treat as a log."""
    doc = {
        "awsAccountId": account,
        "digestStartTime": _iso(when),
        "digestEndTime": _iso(when),
        "digestS3Bucket": "trail-bucket",
        "digestS3Object": digest_key(account, region, when),
        "digestPublicKeyFingerprint": "0123456789abcdef0123456789abcdef",
        "digestSignatureAlgorithm": "SHA256withRSA",
        "newestEventTime": _iso(when),
        "oldestEventTime": _iso(when),
        "previousDigestS3Bucket": None,
        "previousDigestS3Object": None,
        "previousDigestHashValue": None,
        "previousDigestHashAlgorithm": None,
        "previousDigestSignature": None,
        "logFiles": [],
    }
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0)
