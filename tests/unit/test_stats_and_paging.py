"""The one shared percentile, and paging done by botocore's paginators."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from trailwatch import stack
from trailwatch.stats import percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([3.0], 95, 3.0),
        ([1.0, 2.0], 50, 1.5),
        ([5.0, 1.0, 3.0, 2.0, 4.0], 50, 3.0),  # unsorted input
        (list(range(101)), 95, 95.0),
        ([1.0, 2.0, 3.0, 4.0], 99, 3.97),
    ],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0, 2.0], 0), ([1.0, 2.0], 100)])
def test_percentile_rejects(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


def test_demo_and_bench_use_the_one_percentile() -> None:
    from trailwatch.local import demo

    assert demo.percentile is percentile


def test_change_set_changes_of_every_page_are_collected() -> None:
    cfn = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    stubber = Stubber(cfn)
    change = {"Type": "Resource", "ResourceChange": {"Action": "Add", "LogicalResourceId": "A"}}
    other = {"Type": "Resource", "ResourceChange": {"Action": "Remove", "LogicalResourceId": "B"}}
    stubber.add_response(
        "describe_change_set",
        {"Status": "CREATE_COMPLETE", "Changes": [change], "NextToken": "t1"},
        {"ChangeSetName": "cs"},
    )
    stubber.add_response(
        "describe_change_set", {"Changes": [other]}, {"ChangeSetName": "cs", "NextToken": "t1"}
    )
    with stubber:
        described = stack._describe_change_set_all(cfn, "cs")
    stubber.assert_no_pending_responses()
    assert described["Status"] == "CREATE_COMPLETE" and described["Changes"] == [change, other]
    assert "StatusReason" not in described  # absent fields stay absent (build_full_result would set None)
