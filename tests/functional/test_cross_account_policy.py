"""The local AWS's resource policy decisions across accounts (trailwatch.local.cross_account), as AWS makes
them: the principal, action, resource and conditions must all match; an explicit Deny wins; silence is no."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from trailwatch.local.cross_account import Caller, policy_decision, s3_action, s3_eventbridge_event

ROLE = "arn:aws:iam::123456789012:role/trailwatch-ProcessorRole-X"
ROLE_CALLER = Caller("123456789012", frozenset({"123456789012", "arn:aws:iam::123456789012:root", ROLE}))
OTHER = Caller("444444444444", frozenset({"444444444444", "arn:aws:iam::444444444444:root"}))
BUCKET_ARN = "arn:aws:s3:::org-trail"
READ = {
    "Sid": "TrailwatchReadLogs",
    "Effect": "Allow",
    "Principal": {"AWS": ROLE},
    "Action": ["s3:GetObject", "s3:GetObjectVersion"],
    "Resource": f"{BUCKET_ARN}/o-org/AWSLogs/*",
}
LIST = {
    "Effect": "Allow",
    "Principal": {"AWS": ROLE},
    "Action": "s3:ListBucketVersions",
    "Resource": BUCKET_ARN,
    "Condition": {"StringLike": {"s3:prefix": "o-org/AWSLogs/*"}},
}
TLS_ONLY = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}
CONTEXT = {"aws:securetransport": "true"}


def _decide(action: str, resource: str, caller: Caller = ROLE_CALLER, **context: str) -> bool | None:
    policy = {"Statement": [READ, LIST, TLS_ONLY]}
    return policy_decision(policy, action, resource, {**CONTEXT, **context}, caller=caller)


@pytest.mark.parametrize(
    ("action", "resource", "caller", "context", "expected"),
    [
        ("s3:GetObject", f"{BUCKET_ARN}/o-org/AWSLogs/o-org/1/CloudTrail/x", ROLE_CALLER, {}, True),
        ("s3:GetObject", f"{BUCKET_ARN}/o-org/AWSLogs/o-org/1/CloudTrail/x", OTHER, {}, None),
        ("s3:GetObject", f"{BUCKET_ARN}/elsewhere/x", ROLE_CALLER, {}, None),
        ("s3:PutObject", f"{BUCKET_ARN}/o-org/AWSLogs/x", ROLE_CALLER, {}, None),
        ("s3:ListBucketVersions", BUCKET_ARN, ROLE_CALLER, {"s3:prefix": "o-org/AWSLogs/o-org/"}, True),
        ("s3:ListBucketVersions", BUCKET_ARN, ROLE_CALLER, {"s3:prefix": "other/"}, None),
        ("s3:ListBucketVersions", BUCKET_ARN, ROLE_CALLER, {}, None),  # no prefix: the condition fails
        (
            "s3:GetObject",
            f"{BUCKET_ARN}/o-org/AWSLogs/x",
            ROLE_CALLER,
            {"aws:securetransport": "false"},
            False,
        ),
    ],
)
def test_bucket_policy_decisions(
    action: str, resource: str, caller: Caller, context: dict[str, str], expected: bool | None
) -> None:
    assert _decide(action, resource, caller, **context) is expected


def test_account_principal_admits_its_roles_and_service_principals_are_separate() -> None:
    policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "kms:Decrypt",
                             "Resource": "*"}]}  # fmt: skip
    assert policy_decision(policy, "kms:Decrypt", "arn:aws:kms:eu-west-1:1:key/k", {}, caller=ROLE_CALLER)
    assert policy_decision(policy, "kms:Decrypt", "k", {}, service="events.amazonaws.com") is None


@pytest.mark.parametrize(
    ("operation", "query", "action"),
    [
        ("GetObject", {}, "s3:GetObject"),
        ("GetObject", {"versionId": ["v"]}, "s3:GetObjectVersion"),
        ("HeadObject", {}, "s3:GetObject"),
        ("ListObjectVersions", {}, "s3:ListBucketVersions"),
        ("ListObjectsV2", {}, "s3:ListBucket"),
        ("PutBucketNotificationConfiguration", {}, "s3:PutBucketNotification"),
        ("DeleteObject", {"versionId": ["v"]}, "s3:DeleteObjectVersion"),
    ],
)
def test_s3_operation_to_iam_action(operation: str, query: dict[str, list[str]], action: str) -> None:
    assert s3_action(operation, query) == action


BUCKET = SimpleNamespace(name="org-trail", account_id="210987654321", region_name="eu-west-1",
                         arn="arn:aws:s3:::org-trail")  # fmt: skip
KEY = SimpleNamespace(name="o-org/AWSLogs/x.json.gz", size=10, etag='"abc"', version_id="v1")


@pytest.mark.parametrize(
    ("event_name", "detail_type", "reason", "deletion"),
    [
        ("s3:ObjectCreated:Put", "Object Created", "PutObject", None),
        ("s3:ObjectCreated:CompleteMultipartUpload", "Object Created", "CompleteMultipartUpload", None),
        ("s3:ObjectRemoved:DeleteMarkerCreated", "Object Deleted", "DeleteObject", "Delete Marker Created"),
        ("s3:ObjectRemoved:Delete", "Object Deleted", "DeleteObject", "Permanently Deleted"),
    ],
)
def test_s3_eventbridge_event_as_aws_sends_it(
    event_name: str, detail_type: str, reason: str, deletion: str | None
) -> None:
    event = s3_eventbridge_event("210987654321", BUCKET, event_name, KEY)
    assert event is not None
    assert (event["detail-type"], event["source"], event["account"]) == (
        detail_type,
        "aws.s3",
        "210987654321",
    )
    assert event["detail"]["reason"] == reason and event["detail"].get("deletion-type") == deletion
    assert event["detail"]["object"]["version-id"] == "v1"
    assert isinstance(event["time"], str) and event["time"].endswith("Z")
    assert ("size" in event["detail"]["object"]) is (detail_type == "Object Created")


def test_other_s3_events_are_not_object_created_or_deleted() -> None:
    assert s3_eventbridge_event("1", BUCKET, "s3:ObjectTagging:Put", KEY) is None
