"""CloudTrail's S3 key layout for log and digest files, written once.

Used by the sample data (`synth`, which the CLI's `verify` and the tests use) and by the local AWS's
delivery (`local.cloudtrail_delivery`); it imports nothing of the local AWS, so the CLI does not load it.
Layout (CloudTrail User Guide, "Finding your CloudTrail log files" and "CloudTrail digest file structure"):

- log: ``[prefix/]AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/``
  ``<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<unique>.json.gz``
- digest: ``[prefix/]AWSLogs/[<org-id>/]<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/``
  ``<account>_CloudTrail-Digest_<region>_<trail>_<home region>_<YYYYMMDDTHHMMSSZ>.json.gz``
"""

from __future__ import annotations

from datetime import UTC, datetime


def log_file_key(
    account: str,
    region: str,
    when: datetime,
    unique: str,
    *,
    prefix: str | None = None,
    org_id: str | None = None,
) -> str:
    """The key of a log file delivered at `when` (`unique`: CloudTrail's 16-character random part)."""
    when = when.astimezone(UTC)
    name = f"{account}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{unique}.json.gz"
    return f"{_account_root(prefix, org_id, account)}/CloudTrail/{region}/{when:%Y/%m/%d}/{name}"


def digest_key(
    account: str,
    region: str,
    when: datetime,
    *,
    trail: str,
    home_region: str,
    prefix: str | None = None,
    org_id: str | None = None,
) -> str:
    """The key of the digest file of `trail` (created in `home_region`) for `region`, ending at `when`."""
    when = when.astimezone(UTC)
    name = f"{account}_CloudTrail-Digest_{region}_{trail}_{home_region}_{when:%Y%m%dT%H%M%SZ}.json.gz"
    return f"{_account_root(prefix, org_id, account)}/CloudTrail-Digest/{region}/{when:%Y/%m/%d}/{name}"


def _account_root(prefix: str | None, org_id: str | None, account: str) -> str:
    lead = f"{prefix.strip('/')}/" if prefix and prefix.strip("/") else ""
    org = f"{org_id}/" if org_id else ""
    return f"{lead}AWSLogs/{org}{account}"
