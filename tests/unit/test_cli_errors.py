"""Known errors -> one line, a hint, a documented exit code."""

from __future__ import annotations

import botocore.exceptions
import pytest
from trailwatch import errors


def client_error(code: str, message: str = "msg", operation: str = "CreateChangeSet"):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("exc", "exit_code", "needle", "hint_needle"),
    [
        (botocore.exceptions.NoCredentialsError(), 2, "No AWS credentials", "aws configure"),
        (botocore.exceptions.NoRegionError(), 2, "No AWS region", "--region"),
        (botocore.exceptions.ProfileNotFound(profile="ghost"), 2, "ghost", "list-profiles"),
        (client_error("AccessDenied", "nope", "PutObject"), 3, "Access denied calling PutObject", "IAM"),
        (client_error("AccessDeniedException", "nope", "Query"), 3, "Access denied calling Query", "IAM"),
        (client_error("UnauthorizedOperation", "nope", "DescribeVpcs"), 3, "Access denied", "IAM"),
        (client_error("ExpiredToken", "expired", "GetCallerIdentity"), 3, "Access denied", "IAM"),
        (client_error("BucketAlreadyExists", "taken", "CreateBucket"), 3, "already taken", "--bucket"),
        (
            client_error(
                "ValidationError", "Stack:arn:x is in ROLLBACK_COMPLETE state and can not be updated."
            ),
            3,
            "ROLLBACK_COMPLETE",
            "trailwatch destroy",
        ),
        (
            client_error("ValidationError", "Template format error: bad"),
            3,
            "rejected the template",
            "cfn-lint",
        ),
        (errors.ConfigInvalid("Config c.json is invalid", ["rules[0].id: missing"]), 2, "c.json", None),
        (errors.CheckFailed("verify failed"), 1, "verify failed", None),
        (
            client_error("Throttling", "slow down", "DescribeStacks"),
            3,
            "Throttling calling DescribeStacks",
            None,
        ),
    ],
)
def test_explain(exc, exit_code, needle, hint_needle):
    explained = errors.explain(exc)
    assert explained is not None
    assert explained.exit_code == exit_code
    assert needle in explained.message
    assert "\n" not in explained.message
    if hint_needle:
        assert hint_needle in explained.hint
    else:
        assert explained.hint is None


def test_unexpected_errors_are_not_explained():
    assert errors.explain(KeyError("x")) is None


def test_named_errors_carry_hints():
    assert "trailwatch destroy" in errors.stack_rollback_complete("tw").hint
    taken = errors.bucket_name_taken("b", "another AWS account owns it")
    assert taken.exit_code == 3 and "another AWS account owns it" in taken.message
