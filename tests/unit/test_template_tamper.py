"""main.yaml for tamper alerts: removals under AWSLogs/<account>/ are announced to the processor (beside
the ObjectCreated configuration, without overlapping it), and the role may read a notified version and
list a log key's versions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.template_helpers import (
    as_list,
    load_template,
    notification_entries,
    notification_overlaps,
    props,
    sub_text,
)
from tests.unit.test_template import ACCOUNT, notification_in_account, role_statement

BUCKET_ARN = "arn:${AWS::Partition}:s3:::${TrailBucketName}"


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load_template()


def removal_entries(template: dict[str, Any]) -> list[dict[str, Any]]:
    entries = notification_entries(notification_in_account(template))
    return [entry for _, entry in entries if entry["Event"].startswith("s3:ObjectRemoved")]


def test_removals_go_to_the_log_delivery_topic(base: dict[str, Any]) -> None:
    [entry] = removal_entries(base)
    assert (entry["Event"], entry["Topic"]) == ("s3:ObjectRemoved:*", {"Ref": "LogDeliveryTopic"})


@pytest.mark.parametrize(
    ("key", "announced"),
    [
        (f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/26/{ACCOUNT}_CloudTrail_us-east-1_x.json.gz", True),
        (f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/26/partial.json", True),  # any object there
        (f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/26/x.json.gz", True),  # digests are evidence
        ("AWSLogs/210987654321/CloudTrail/us-east-1/2026/11/26/x.json.gz", False),  # not this account
        ("config/monitored_events.json", False),  # config changes are alerted by the processor itself
    ],
)
def test_removal_filter(base: dict[str, Any], key: str, announced: bool) -> None:
    [entry] = removal_entries(base)
    prefix = next(r["Value"] for r in entry["Filter"]["S3Key"]["Rules"] if r["Name"] == "prefix")
    assert key.startswith(prefix) is announced
    assert [r["Name"] for r in entry["Filter"]["S3Key"]["Rules"]] == ["prefix"]  # no suffix: every object


def test_removal_configuration_shares_the_prefix_without_overlap(base: dict[str, Any]) -> None:
    """S3 rejects configurations sharing an event type with overlapping filters; different types may share
    a prefix. The same removal entry added twice is caught (the check is live)."""
    notification = notification_in_account(base)
    assert notification_overlaps(notification) == []
    notification["TopicConfigurations"].append(dict(removal_entries(base)[0]))
    assert notification_overlaps(notification) != []


def test_role_reads_log_versions_only(base: dict[str, Any]) -> None:
    stmt = role_statement(base, "ReadNotifiedLogVersions")
    assert (stmt["Effect"], as_list(stmt["Action"])) == ("Allow", ["s3:GetObjectVersion"])
    assert [sub_text(r) for r in as_list(stmt["Resource"])] == [BUCKET_ARN + "/AWSLogs/*"]


def test_role_lists_versions_under_awslogs_only(base: dict[str, Any]) -> None:
    stmt = role_statement(base, "DetectOverwrittenLogs")
    assert (stmt["Effect"], as_list(stmt["Action"])) == ("Allow", ["s3:ListBucketVersions"])
    assert [sub_text(r) for r in as_list(stmt["Resource"])] == [BUCKET_ARN]
    assert stmt["Condition"] == {"StringLike": {"s3:prefix": "AWSLogs/*"}}


def test_trail_bucket_is_versioned(base: dict[str, Any]) -> None:
    """The notified versionId exists only on a versioned bucket."""
    assert props(base, "TrailBucket")["VersioningConfiguration"] == {"Status": "Enabled"}
