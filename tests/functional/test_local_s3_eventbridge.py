"""S3's EventBridge events on the local AWS reach the rules' targets (trailwatch.local.cross_account): an
SQS target of the bucket owner's bus, and through a forwarding rule (with a role) the bus of another
account and region that admits the owner -- attach mode's path from a log-archive bucket to trailwatch.

The sender swallows every error, as S3's asynchronous delivery does; these tests see a sender that fails
on each target (e.g. a changed helper signature) as the events that never arrive.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from trailwatch.local.server import LocalAWS

from tests.clients import assumed_role_session
from tests.functional.test_local_eventbridge import client, drain, drain_to_sentinel, sentinel_route

ACCOUNT = "123456789012"
OWNER = "210987654321"
OWNER_REGION = "eu-west-1"
BUCKET = "org-trail-logs"
LOCAL_AWS_OPTIONS = {"cloudtrail": False}
PATTERN = {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [BUCKET]}}}


@pytest.fixture
def local_aws(fresh_local_aws: LocalAWS) -> LocalAWS:
    """This module's tests share one server, forgotten between tests (conftest's `fresh_local_aws`)."""
    return fresh_local_aws


def _owner(local_aws: LocalAWS) -> Any:
    """A session of the log-archive account (an assumed role there), in the bucket's region."""
    credentials = client(local_aws, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{OWNER}:role/admin", RoleSessionName="owner"
    )["Credentials"]
    session = assumed_role_session(credentials, OWNER_REGION)
    return lambda service: session.client(service, endpoint_url=local_aws.endpoint)


def _bucket_to_eventbridge(s3: Any) -> None:
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": OWNER_REGION})
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )


def test_object_created_reaches_the_owner_bus_sqs_target(local_aws: LocalAWS) -> None:
    s3 = client(local_aws, "s3", OWNER_REGION)
    _bucket_to_eventbridge(s3)
    sqs, events = client(local_aws, "sqs", OWNER_REGION), client(local_aws, "events", OWNER_REGION)
    url = sqs.create_queue(QueueName="indexer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="logs", EventPattern=json.dumps(PATTERN))
    events.put_targets(Rule="logs", Targets=[{"Id": "q", "Arn": arn}])
    s3.put_object(Bucket=BUCKET, Key="AWSLogs/1/CloudTrail/x.json.gz", Body=b"x")
    (event,) = drain(local_aws, url, OWNER_REGION)
    assert event["detail"]["object"]["key"] == "AWSLogs/1/CloudTrail/x.json.gz"
    assert event["account"] == ACCOUNT


@pytest.mark.parametrize(("admitted", "arrives"), [(True, 1), (False, 0)])
def test_forwarded_to_another_account_bus_that_admits_the_owner(
    local_aws: LocalAWS, admitted: bool, arrives: int
) -> None:
    home_sqs, home_events = client(local_aws, "sqs"), client(local_aws, "events")
    url = home_sqs.create_queue(QueueName="log-processing")["QueueUrl"]
    arn = home_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    home_events.put_rule(Name="existing-bucket", EventPattern=json.dumps(PATTERN))
    home_events.put_targets(Rule="existing-bucket", Targets=[{"Id": "q", "Arn": arn}])
    if admitted:
        home_events.put_permission(
            EventBusName="default", Action="events:PutEvents", Principal=OWNER, StatementId="owner"
        )
    owner = _owner(local_aws)
    _bucket_to_eventbridge(owner("s3"))
    owner("events").put_rule(Name="forward", EventPattern=json.dumps(PATTERN))
    owner("events").put_targets(
        Rule="forward",
        Targets=[
            {
                "Id": "home",
                "Arn": f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default",
                "RoleArn": f"arn:aws:iam::{OWNER}:role/forward",
            }
        ],
    )
    owner("s3").put_object(Bucket=BUCKET, Key="AWSLogs/1/CloudTrail/y.json.gz", Body=b"y")
    sentinel_route(local_aws, url)  # the home account's own event, put on its bus after the S3 call
    got = drain_to_sentinel(local_aws, url)
    assert len(got) == arrives
    if got:
        assert got[0]["account"] == OWNER
        assert got[0]["region"] == OWNER_REGION
        assert got[0]["detail"]["object"]["key"] == "AWSLogs/1/CloudTrail/y.json.gz"
