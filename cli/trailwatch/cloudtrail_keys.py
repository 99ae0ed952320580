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

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class TrailKeys:
    """Where one account's CloudTrail files go in a trail's bucket (`prefix`: the trail's S3KeyPrefix;
    `org_id`: set for an organization trail)."""

    account: str
    prefix: str | None = None
    org_id: str | None = None

    def log_file(self, region: str, when: datetime, unique: str) -> str:
        """The key of a log file delivered at `when` (`unique`: CloudTrail's 16-character random part)."""
        when = when.astimezone(UTC)
        name = f"{self.account}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{unique}.json.gz"
        return f"{self._folder('CloudTrail', region, when)}/{name}"

    def digest(self, region: str, when: datetime, trail: str, home_region: str) -> str:
        """The key of the digest file of `trail` (created in `home_region`) for `region`, ending at `when`."""
        when = when.astimezone(UTC)
        stamp = f"{when:%Y%m%dT%H%M%SZ}"
        name = f"{self.account}_CloudTrail-Digest_{region}_{trail}_{home_region}_{stamp}.json.gz"
        return f"{self._folder('CloudTrail-Digest', region, when)}/{name}"

    def _folder(self, kind: str, region: str, when: datetime) -> str:
        lead = f"{self.prefix.strip('/')}/" if self.prefix and self.prefix.strip("/") else ""
        org = f"{self.org_id}/" if self.org_id else ""
        return f"{lead}AWSLogs/{org}{self.account}/{kind}/{region}/{when:%Y/%m/%d}"
