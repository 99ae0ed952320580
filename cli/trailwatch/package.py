"""The Lambda deployment package: a deterministic zip of the installed `trailwatch_processor` package,
named by its sha256, uploaded once to a hardened artifacts bucket.

The artifacts bucket's name is predictable, so another account could create it first (with a policy letting
this account write) and then receive and replace the function's code. Every S3 call on a bucket trailwatch
expects to own therefore passes `ExpectedBucketOwner` (`owner_args`): S3 answers 403 when another account owns
the bucket, and the deploy stops with `BucketNotOwned` instead of uploading.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import botocore.exceptions
import trailwatch_processor

from trailwatch.errors import AwsError, error_code
from trailwatch.session import Aws
from trailwatch.ui import UI

PACKAGE_NAME = "trailwatch_processor"
DATA_FILES = ("default_events.json",)
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644
KEY_PREFIX = "trailwatch/lambda/"


@dataclass(frozen=True)
class Package:
    data: bytes
    sha256: str
    files: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}trailwatch-processor-{self.sha256[:16]}.zip"


def source_dir() -> Path:
    return Path(trailwatch_processor.__file__).parent


def package_files(root: Path | None = None) -> list[tuple[str, bytes]]:
    """(archive name, bytes) of every module and data file, sorted; symlinks followed, caches skipped."""
    root = source_dir() if root is None else root
    found: list[tuple[str, bytes]] = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or not path.is_file():
            continue
        if path.suffix == ".py" or (len(rel.parts) == 1 and rel.name in DATA_FILES):
            found.append((f"{PACKAGE_NAME}/{rel.as_posix()}", path.read_bytes()))
    missing = [name for name in DATA_FILES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: missing {', '.join(missing)} (a broken install or symlink?)")
    return sorted(found)


def build_zip(files: list[tuple[str, bytes]]) -> bytes:
    """Same files, same bytes: fixed order, timestamps, permissions and compression."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = FILE_MODE << 16
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def build_package(root: Path | None = None) -> Package:
    files = package_files(root)
    data = build_zip(files)
    return Package(data=data, sha256=hashlib.sha256(data).hexdigest(), files=tuple(n for n, _ in files))


DENIED_CODES = ("403", "AccessDenied")


class BucketNotOwned(AwsError):
    """A bucket trailwatch expects this account to own is another account's (or hidden from this identity)."""


def owner_args(aws: Aws) -> dict[str, str]:
    """Extra arguments for every S3 call on a bucket this account must own: S3 refuses (403) otherwise."""
    return {"ExpectedBucketOwner": aws.account_id()}


def is_denied(exc: botocore.exceptions.ClientError) -> bool:
    return error_code(exc) in DENIED_CODES


ARTIFACTS_HINT = (
    "Deploy with --artifacts-bucket NAME: a bucket of this account (created and hardened when missing), "
    "given on every deploy."
)


def bucket_not_owned(bucket: str, account: str, what: str, hint: str | None = None) -> BucketNotOwned:
    return BucketNotOwned(
        f"Bucket {bucket!r} exists but S3 refused it with ExpectedBucketOwner={account}: another AWS "
        f"account owns it (or this identity may not list it). Refusing to use it for {what}. This may be "
        "an attack: trailwatch's bucket names are predictable, and an account that creates one first can "
        "read and replace what is put in it.",
        hint=f"Check who owns s3://{bucket}; if no account of yours, grant it nothing and report it."
        + (f" {hint}" if hint else ""),
    )


def artifacts_bucket_name(account: str, region: str) -> str:
    return f"trailwatch-artifacts-{account}-{region}"


def tls_only_policy(bucket: str, partition: str = "aws") -> str:
    arn = f"arn:{partition}:s3:::{bucket}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def ensure_artifacts_bucket(aws: Aws, ui: UI, bucket: str | None = None) -> tuple[str, bool]:
    """(bucket, created): the artifacts bucket (`bucket`, or the default name), created and hardened when
    missing; BucketNotOwned when it exists but is not this account's."""
    s3 = aws.client("s3")
    account = aws.account_id()
    bucket = bucket or artifacts_bucket_name(account, aws.region)
    try:
        s3.head_bucket(Bucket=bucket, **owner_args(aws))
        ui.debug(f"artifacts bucket {bucket} exists and is owned by {account}")
        return bucket, False
    except botocore.exceptions.ClientError as exc:
        if is_denied(exc):
            raise bucket_not_owned(bucket, account, "the Lambda deployment package", ARTIFACTS_HINT) from exc
        if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
    ui.progress(f"Creating artifacts bucket {bucket}")
    create: dict = {"Bucket": bucket}
    if aws.region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
    s3.create_bucket(**create)  # taken meanwhile by another account: BucketAlreadyExists
    harden_bucket(aws, bucket)
    return bucket, True


def harden_bucket(aws: Aws, bucket: str) -> None:
    """As the trail bucket: no public access, default encryption, versioning, TLS-only policy -- all
    before anything is uploaded."""
    s3 = aws.client("s3")
    owner = owner_args(aws)
    s3.put_public_access_block(
        Bucket=bucket,
        **owner,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        **owner,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
            ]
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}, **owner)
    put_tls_policy(aws, bucket)


def put_tls_policy(aws: Aws, bucket: str) -> None:
    aws.client("s3").put_bucket_policy(
        Bucket=bucket, Policy=tls_only_policy(bucket, aws.partition), **owner_args(aws)
    )


def object_exists(aws: Aws, bucket: str, key: str) -> bool:
    """Via ListObjectsV2 (a bucket permission): a missing key is then a clear "no", never a 403."""
    listing = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1, **owner_args(aws))
    return any(item["Key"] == key for item in listing.get("Contents", []))


def upload_package(aws: Aws, ui: UI, package: Package, bucket: str | None = None) -> tuple[str, str, bool]:
    """(bucket, key, uploaded): the upload is skipped when the key (named by the hash) exists."""
    bucket, created = ensure_artifacts_bucket(aws, ui, bucket)
    if not created and object_exists(aws, bucket, package.key):
        ui.progress("Reusing existing deployment package.")
        return bucket, package.key, False
    aws.client("s3").put_object(
        Bucket=bucket,
        Key=package.key,
        Body=package.data,
        ContentType="application/zip",
        Metadata={"sha256": package.sha256},
        **owner_args(aws),
    )
    ui.progress(f"Uploaded deployment package s3://{bucket}/{package.key} ({len(package.data)} bytes)")
    return bucket, package.key, True
