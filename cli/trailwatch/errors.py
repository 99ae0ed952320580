"""Known failures of the CLI and how each becomes one line, a hint and an exit code.

Exit codes: 0 ok, 1 a check failed, 2 usage or config error, 3 AWS error.
"""

from __future__ import annotations

from dataclasses import dataclass

import botocore.exceptions

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_AWS = 3

ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthorizationError",
        "AuthorizationErrorException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)


class TrailwatchError(Exception):
    """An error the CLI explains in one line plus an optional hint."""

    exit_code = EXIT_AWS

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(TrailwatchError):
    exit_code = EXIT_USAGE


class ConfigInvalid(TrailwatchError):
    """The monitored-events config failed validation; `details` lists each `<path>: <message>`."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, details: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.details = details


class CheckFailed(TrailwatchError):
    exit_code = EXIT_CHECK_FAILED


class AwsError(TrailwatchError):
    exit_code = EXIT_AWS


class NoCredentials(TrailwatchError):
    exit_code = EXIT_USAGE


class NoRegion(TrailwatchError):
    exit_code = EXIT_USAGE


class AccessDenied(AwsError):
    pass


class BucketNameTaken(AwsError):
    pass


class StackRollbackComplete(AwsError):
    pass


class StackUpdateRollbackFailed(AwsError):
    pass


class TemplateRejected(AwsError):
    pass


class DeployFailed(AwsError):
    """The stack operation failed; `failures` holds (logical id, type, status, reason) of failed resources."""

    def __init__(
        self, message: str, failures: list[tuple[str, str, str, str]], hint: str | None = None
    ) -> None:
        super().__init__(message, hint)
        self.failures = failures


@dataclass(frozen=True)
class Explained:
    message: str
    hint: str | None
    exit_code: int


CREDENTIALS_HINT = (
    "Configure credentials as for the AWS CLI: `aws configure`, `aws sso login --profile NAME` with "
    "--profile/AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
)
REGION_HINT = "Pass --region REGION, set AWS_REGION, or set a region in your AWS profile."


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


def is_rollback_complete_message(message: str) -> bool:
    return "ROLLBACK_COMPLETE" in message and "can not be updated" in message


def stack_rollback_complete(stack_name: str) -> StackRollbackComplete:
    return StackRollbackComplete(
        f"Stack {stack_name} is in ROLLBACK_COMPLETE: its first creation failed and it cannot be updated.",
        hint="Run `trailwatch destroy` to delete it, then `trailwatch deploy` again.",
    )


def is_update_rollback_failed_message(message: str) -> bool:
    """CloudFormation's answer to a change set on a stack whose update rollback failed."""
    return "UPDATE_ROLLBACK_FAILED" in message


def continue_rollback_command(stack_name: str, flags: str = "") -> str:
    flags = f" {flags}" if flags else ""
    return f"aws cloudformation continue-update-rollback{flags} --stack-name {stack_name}"


def stack_update_rollback_failed(stack_name: str, flags: str = "") -> StackUpdateRollbackFailed:
    return StackUpdateRollbackFailed(
        f"Stack {stack_name} is in UPDATE_ROLLBACK_FAILED: an update failed and so did its rollback; "
        "it takes no change until the rollback completes (the template is not the problem).",
        hint=f"Fix what the rollback tripped over (see the stack events), then run "
        f"`{continue_rollback_command(stack_name, flags)}` (add --resources-to-skip LOGICAL_ID for a "
        "resource that cannot be rolled back), wait for UPDATE_ROLLBACK_COMPLETE, and deploy again.",
    )


def bucket_name_taken(bucket: str, detail: str = "") -> BucketNameTaken:
    return BucketNameTaken(
        f"Bucket name {bucket!r} is already taken{': ' + detail if detail else ''}.",
        hint="S3 bucket names are global: choose another name with --bucket (e.g. add your account id).",
    )


def explain(exc: BaseException) -> Explained | None:
    """The one-line explanation of a known error, or None for an unexpected one."""
    if isinstance(exc, TrailwatchError):
        return Explained(exc.message, exc.hint, exc.exit_code)
    if isinstance(exc, (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError)):
        return Explained("No AWS credentials found.", CREDENTIALS_HINT, EXIT_USAGE)
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return Explained(str(exc), "List profiles with `aws configure list-profiles`.", EXIT_USAGE)
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return Explained("No AWS region configured.", REGION_HINT, EXIT_USAGE)
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return Explained(
            f"Cannot reach AWS: {exc}.",
            "Check the network, --endpoint-url/AWS_ENDPOINT_URL, and --region.",
            EXIT_AWS,
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        return _explain_client_error(exc)
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return Explained(f"AWS SDK error: {exc}", None, EXIT_AWS)
    return None


def _explain_client_error(exc: botocore.exceptions.ClientError) -> Explained:
    code = error_code(exc)
    message = error_message(exc)
    operation = exc.operation_name
    if code in ACCESS_DENIED_CODES:
        return Explained(
            f"Access denied calling {operation}: {message}",
            "The identity in use lacks this permission (check `aws sts get-caller-identity`, --profile, "
            "and the IAM policies / SCPs that apply).",
            EXIT_AWS,
        )
    if code == "BucketAlreadyExists":
        return Explained(
            f"Bucket name already taken ({operation}): {message}",
            "S3 bucket names are global: choose another name with --bucket.",
            EXIT_AWS,
        )
    if code == "ValidationError" and is_rollback_complete_message(message):
        return Explained(
            f"The stack is in ROLLBACK_COMPLETE and cannot be updated ({message}).",
            "Run `trailwatch destroy` to delete it, then `trailwatch deploy` again.",
            EXIT_AWS,
        )
    if code == "ValidationError" and is_update_rollback_failed_message(message):
        return Explained(
            f"The stack is in UPDATE_ROLLBACK_FAILED and cannot be updated ({message}).",
            "Finish the rollback first: `aws cloudformation continue-update-rollback --stack-name NAME`, "
            "then deploy again.",
            EXIT_AWS,
        )
    if code == "ValidationError" and operation in ("CreateChangeSet", "ValidateTemplate", "CreateStack"):
        return Explained(
            f"CloudFormation rejected the template or its parameters: {message}",
            "Check --param values against the template's parameters; "
            "`cfn-lint main.yaml` finds template errors.",
            EXIT_AWS,
        )
    return Explained(f"AWS error {code} calling {operation}: {message}", None, EXIT_AWS)
