"""deploy --use-bucket: the attach-mode parameters, the bucket's region found (not assumed), and the
owner's grants document generated from them."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws
from trailwatch import owner_grants as og
from trailwatch.deploy import attach_parameters, bucket_region
from trailwatch.errors import UsageError

ROLE = "arn:aws:iam::123456789012:role/trailwatch-ProcessorRole-X"


@pytest.fixture
def s3() -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="in-virginia")
        client.create_bucket(
            Bucket="in-ireland", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield client


@pytest.mark.parametrize(("bucket", "region"), [("in-virginia", "us-east-1"), ("in-ireland", "eu-west-1")])
def test_bucket_region_is_found(s3: Any, bucket: str, region: str) -> None:
    assert bucket_region(s3, bucket) == region


def test_missing_bucket_is_a_usage_error(s3: Any) -> None:
    with pytest.raises(UsageError, match="no such bucket"):
        bucket_region(s3, "nobody-has-this-bucket")


def _attach(s3: Any, **kw: Any) -> dict[str, str]:
    args = {"use_bucket": "in-ireland", "bucket_account": None, "log_prefix": None, "kms_key": None,
            "notification": "s3-eventbridge", "trail_topic": None}  # fmt: skip
    return attach_parameters(s3, **{**args, **kw})


@pytest.mark.parametrize(("given", "prefix"), [(None, ""), ("org", "org/"), ("/a/b/", "a/b/")])
def test_attach_parameters(s3: Any, given: str | None, prefix: str) -> None:
    params = _attach(s3, log_prefix=given, bucket_account="210987654321")
    assert params["ExistingBucketName"] == "in-ireland"
    assert params["ExistingBucketRegion"] == "eu-west-1"
    assert params["ExistingBucketAccount"] == "210987654321"
    assert params["LogKeyPrefix"] == prefix


@pytest.mark.parametrize(
    ("kw", "named"),
    [
        ({"notification": "trail-sns"}, "--trail-topic"),
        ({"notification": "s3"}, "expected one of"),
        ({"bucket_account": "12"}, "12-digit"),
    ],
)
def test_bad_attach_options(s3: Any, kw: dict[str, Any], named: str) -> None:
    with pytest.raises(UsageError, match=named):
        _attach(s3, **kw)


def test_grants_document_from_the_stack() -> None:
    parameters = {"ExistingBucketName": "org-trail", "LogKeyPrefix": "org/",
                  "NotificationSource": "trail-sns", "TrailTopicArn": "arn:aws:sns:eu-west-1:210987654321:t",
                  "ExistingLogFileKmsKeyArn": "arn:aws:kms:eu-west-1:210987654321:key/k"}  # fmt: skip
    a = og.Attachment.from_stack(parameters, {"ProcessorRoleArn": ROLE}, "us-east-1")
    doc = og.grants_document(a, "eu-west-1")
    assert set(doc) == {"BucketPolicyStatements", "KmsKeyPolicyStatement", "TopicPolicyStatement"}
    assert doc["TopicPolicyStatement"]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert doc["KmsKeyPolicyStatement"]["Principal"] == {"AWS": ROLE}
