"""Our CloudFormation models and engine fixes for moto (registered by trailwatch.local.cfn_models), one small
template at a time, in moto's in-process mock. Each test deploys (and updates or deletes) through the
CloudFormation API and reads the result back through the service's API."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.cloudformation import parsing
from trailwatch.local import cfn_models, cfn_overrides, s3_policy

from tests.clients import cached_clients
from tests.functional.factories import dlq_depth_alarm

REGION = "us-east-1"
ACCOUNT = "123456789012"

Client = Callable[[str], BaseClient]


@pytest.fixture
def aws() -> Iterator[Client]:
    with mock_aws():
        cfn_models.register()
        yield cached_clients(boto3.session.Session(region_name=REGION))


def template(resources: dict[str, Any], **sections: Any) -> str:
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources, **sections})


def deploy(aws: Client, resources: dict[str, Any], stack: str = "s", **sections: Any) -> dict[str, str]:
    """Create the stack; logical id -> physical id (after checking the stack completed)."""
    parameters = sections.pop("parameters", {})
    cfn = aws("cloudformation")
    cfn.create_stack(
        StackName=stack,
        TemplateBody=template(resources, **sections),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    return physical_ids(aws, stack, "CREATE_COMPLETE")


def update(aws: Client, resources: dict[str, Any], stack: str = "s", **sections: Any) -> dict[str, str]:
    aws("cloudformation").update_stack(StackName=stack, TemplateBody=template(resources, **sections))
    return physical_ids(aws, stack, "UPDATE_COMPLETE")


def delete(aws: Client, stack: str = "s") -> None:
    cfn = aws("cloudformation")
    stack_id = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackId"]
    cfn.delete_stack(StackName=stack)
    assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"


def physical_ids(aws: Client, stack: str, status: str) -> dict[str, str]:
    cfn = aws("cloudformation")
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert described["StackStatus"] == status, described.get("StackStatusReason")
    summaries = cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    assert all(s["LogicalResourceId"] for s in summaries), "a resource listed without a logical id"
    return {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries}


def outputs(aws: Client, stack: str = "s") -> dict[str, str]:
    described = aws("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def creation_failure(aws: Client, resources: dict[str, Any], stack: str = "s") -> tuple[str, str]:
    """Create a stack that must fail: it ends ROLLBACK_COMPLETE with nothing left; (logical id, reason) of
    the resource that failed, from the stack's events."""
    cfn = aws("cloudformation")
    cfn.create_stack(StackName=stack, TemplateBody=template(resources), Capabilities=["CAPABILITY_IAM"])
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "ROLLBACK_COMPLETE"
    assert cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"] == []
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    (failed,) = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
    return failed["LogicalResourceId"], failed["ResourceStatusReason"]


def policy(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


ALLOW_ALL = policy(
    [{"Sid": "All", "Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "*", "Resource": "*"}]
)
# Every resource has Properties: moto adds an empty one to those without, and then sees them as modified on
# every stack update (and replaces them).
TOPIC = {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": "models"}}}
QUEUE = {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30}}}
BUCKET = {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "models-bucket"}}}


def sqs_subscription(**properties: Any) -> dict[str, Any]:
    """An AWS::SNS::Subscription of QUEUE to TOPIC, with `properties` added."""
    return {
        "Type": "AWS::SNS::Subscription",
        "Properties": {
            "TopicArn": {"Ref": "Topic"},
            "Protocol": "sqs",
            "Endpoint": {"Fn::GetAtt": ["Queue", "Arn"]},
            **properties,
        },
    }


# ---------------------------------------------------------------- registration


def test_register_is_idempotent_and_our_models_win(aws: Client) -> None:
    cfn_models.register()
    cfn_models.register()
    model_map = parsing.get_model_map()
    for model in cfn_models.models():
        assert model_map[model.cloudformation_type()] is model
    ours = [m for m in parsing.get_model_list() if m in cfn_models.models()]
    assert len(ours) == len(set(ours)) == len(cfn_models.models())


def test_find_in_map_with_a_number_parameter(aws: Client) -> None:
    """CloudFormation mapping keys are strings; moto makes Number parameters ints."""
    deploy(
        aws,
        {
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"VisibilityTimeout": {"Fn::FindInMap": ["T", "By", {"Ref": "N"}]}},
            }
        },
        Parameters={"N": {"Type": "Number", "Default": 60}},
        Mappings={"T": {"By": {"60": 360}}},
    )
    (url,) = aws("sqs").list_queues()["QueueUrls"]
    assert aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])[
        "Attributes"
    ] == {"VisibilityTimeout": "360"}


@pytest.mark.parametrize("on", ["true", "false"])
def test_no_value_in_a_list_removes_the_element(aws: Client, on: str) -> None:
    """`!If [Cond, statement, !Ref AWS::NoValue]` in a statement list: the statement is there or gone, never a
    null (moto left a null statement in the policy)."""
    extra = {**ALLOW_ALL["Statement"][0], "Sid": "Extra", "Action": "sqs:SendMessage"}
    resources = {
        "A": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "a"}},
        "Policy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": "A"}],
                "PolicyDocument": {
                    **ALLOW_ALL,
                    "Statement": [
                        *ALLOW_ALL["Statement"],
                        {"Fn::If": ["On", extra, {"Ref": "AWS::NoValue"}]},
                    ],
                },
            },
        },
    }
    ids = deploy(
        aws,
        resources,
        Parameters={"Flag": {"Type": "String", "Default": on}},
        Conditions={"On": {"Fn::Equals": [{"Ref": "Flag"}, "true"]}},
    )
    stored = aws("sqs").get_queue_attributes(QueueUrl=ids["A"], AttributeNames=["Policy"])["Attributes"]
    statements = json.loads(stored["Policy"])["Statement"]
    assert statements == [*ALLOW_ALL["Statement"], *([extra] if on == "true" else [])]


# ---------------------------------------------------------------- S3 bucket policy


@pytest.mark.parametrize("as_text", [False, True], ids=["mapping", "json-text"])
def test_bucket_policy_is_stored_as_json_and_removed_with_the_stack(aws: Client, as_text: bool) -> None:
    document = policy(
        [
            {
                "Sid": "Read",
                "Effect": "Allow",
                "Principal": {"AWS": ACCOUNT},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::models-bucket/*",
            }
        ]
    )
    aws("s3").create_bucket(Bucket="models-bucket")
    deploy(
        aws,
        {
            "Policy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": "models-bucket",
                    "PolicyDocument": json.dumps(document) if as_text else document,
                },
            }
        },
    )
    assert json.loads(aws("s3").get_bucket_policy(Bucket="models-bucket")["Policy"]) == document
    delete(aws)
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        aws("s3").get_bucket_policy(Bucket="models-bucket")


TLS_ONLY = {
    "Sid": "TlsOnly",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": "arn:aws:s3:::models-bucket/*",
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}
DENY_PUT = {
    "Sid": "NoPut",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:PutObject",
    "Resource": "arn:aws:s3:::models-bucket/*",
}


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [
        (TLS_ONLY, True),
        (DENY_PUT, False),
        ({**DENY_PUT, "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}}, True),
    ],
    ids=["deny-insecure-transport", "unconditional-deny", "condition-not-met"],
)
def test_bucket_policy_conditions_are_honoured(aws: Client, statement: dict[str, Any], allowed: bool) -> None:
    """The local endpoint stands in for HTTPS: a TLS-only policy lets requests in, a plain Deny does not."""
    deploy(
        aws,
        {
            **BUCKET,
            "Policy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {"Bucket": {"Ref": "Bucket"}, "PolicyDocument": policy([statement])},
            },
        },
    )
    if allowed:
        aws("s3").put_object(Bucket="models-bucket", Key="k", Body=b"x")
        assert aws("s3").get_object(Bucket="models-bucket", Key="k")["Body"].read() == b"x"
    else:
        with pytest.raises(ClientError, match=r"403|AccessDenied|Forbidden"):
            aws("s3").put_object(Bucket="models-bucket", Key="k", Body=b"x")


MATCHING_DENY = {**DENY_PUT, "Sid": "DenyOverTls", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}


def assert_object_access(s3: BaseClient, bucket: str, allowed: bool) -> None:
    """PutObject and GetObject both succeed, or both answer 403 (the Get on an object put before)."""
    if allowed:
        s3.put_object(Bucket=bucket, Key="k", Body=b"new")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"new"
        return
    for call in (
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"new"),
        lambda: s3.get_object(Bucket=bucket, Key="k"),
    ):
        with pytest.raises(ClientError, match=r"403|AccessDenied|Forbidden"):
            call()


def api_bucket_statement(statement: dict[str, Any], bucket: str) -> dict[str, Any]:
    """`statement` on every action of `bucket` (as the TLS-only policy of trailwatch's artifacts bucket)."""
    arn = f"arn:aws:s3:::{bucket}"
    return {**statement, "Action": "s3:*", "Resource": [arn, f"{arn}/*"]}


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [(TLS_ONLY, True), (MATCHING_DENY, False), (DENY_PUT, False)],
    ids=["deny-insecure-transport", "deny-when-secure-transport", "unconditional-deny"],
)
def test_bucket_policy_put_through_the_api_is_honoured(
    aws: Client, statement: dict[str, Any], allowed: bool
) -> None:
    """Not only CloudFormation's buckets: put_bucket_policy on a bucket created by the API."""
    s3 = aws("s3")
    s3.create_bucket(Bucket="api-bucket")
    s3.put_object(Bucket="api-bucket", Key="k", Body=b"old")
    s3.put_bucket_policy(
        Bucket="api-bucket", Policy=json.dumps(policy([api_bucket_statement(statement, "api-bucket")]))
    )
    assert_object_access(s3, "api-bucket", allowed)


def test_bucket_policy_conditions_on_the_local_aws_server() -> None:
    """Over the local endpoint (moto's server, plain HTTP standing in for HTTPS): a TLS-only policy lets
    reads and writes in; a Deny whose condition holds for the request still denies them."""
    from trailwatch.local.server import LocalAWS

    from tests.e2e.conftest import client_factory

    local = LocalAWS(port=0, lambda_runtime=False, cloudtrail=False).start()
    try:
        s3 = client_factory(local)("s3")
        s3.create_bucket(Bucket="served-bucket")
        s3.put_object(Bucket="served-bucket", Key="k", Body=b"old")
        for statement, allowed in ((TLS_ONLY, True), (MATCHING_DENY, False)):
            document = policy([api_bucket_statement(statement, "served-bucket")])
            s3.put_bucket_policy(Bucket="served-bucket", Policy=json.dumps(document))
            assert_object_access(s3, "served-bucket", allowed)
    finally:
        local.stop()


@pytest.mark.parametrize(
    ("conditions", "holds"),
    [
        ({"Bool": {"aws:SecureTransport": "false"}}, False),
        ({"Bool": {"aws:SecureTransport": ["false", "true"]}}, True),
        ({"Bool": {"aws:SecureTransport": True}}, True),
        ({"StringEquals": {"aws:SourceArn": "arn:aws:cloudtrail:us-east-1:1:trail/t"}}, False),
        ({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}, True),
        ({"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}}, True),
        ({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::*"}}, False),
        ({"StringLike": {"aws:SecureTransport": "t*"}}, True),
        ({"StringNotLike": {"aws:SecureTransport": "t?ue"}}, False),
        ({"Null": {"aws:SourceArn": "true"}}, True),
        ({"Null": {"aws:SecureTransport": "true"}}, False),
        ({"Bool": {"aws:SecureTransport": "true"}, "StringEquals": {"aws:SourceAccount": "1"}}, False),
        ({"NumericLessThan": {"aws:SecureTransport": "1"}}, False),
    ],
)
def test_condition_evaluation(conditions: dict[str, Any], holds: bool) -> None:
    """IAM's rules for a request that came over TLS and carries no source ARN/account/VPC endpoint: a key
    absent from the request fails a test, except under ...IfExists, a negated operator or Null."""
    assert s3_policy.condition_holds(conditions) is holds


# ---------------------------------------------------------------- SQS queue policy, queue updates


def test_queue_policy_on_each_queue_updated_and_cleared(aws: Client) -> None:
    resources = {
        "A": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "a"}},
        "B": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "b"}},
        "Policy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {"Queues": [{"Ref": "A"}, {"Ref": "B"}], "PolicyDocument": ALLOW_ALL},
        },
    }
    ids = deploy(aws, resources)
    sqs = aws("sqs")

    def policies() -> list[Any]:
        return [
            sqs.get_queue_attributes(QueueUrl=ids[q], AttributeNames=["Policy"])
            .get("Attributes", {})
            .get("Policy")
            for q in ("A", "B")
        ]

    assert [json.loads(p) for p in policies()] == [ALLOW_ALL, ALLOW_ALL]
    narrowed = policy([{**ALLOW_ALL["Statement"][0], "Action": "sqs:SendMessage"}])
    resources["Policy"]["Properties"] = {"Queues": [{"Ref": "A"}], "PolicyDocument": narrowed}
    update(aws, resources)
    assert [json.loads(p) if p else None for p in policies()] == [narrowed, None]
    del resources["Policy"]
    update(aws, resources)
    assert policies() == [None, None]


def test_queue_update_applies_redrive_and_keeps_the_queue_policy(aws: Client) -> None:
    resources = {
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "dlq"}},
        "Queue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]},
                    "maxReceiveCount": 5,
                },
                "MessageRetentionPeriod": 345600,
            },
        },
        "Policy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {"Queues": [{"Ref": "Queue"}], "PolicyDocument": ALLOW_ALL},
        },
    }
    ids = deploy(aws, resources)
    resources["Queue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] = 2
    resources["Queue"]["Properties"]["MessageRetentionPeriod"] = 60
    update(aws, resources)
    attributes = aws("sqs").get_queue_attributes(QueueUrl=ids["Queue"], AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 2
    assert attributes["MessageRetentionPeriod"] == "60"
    assert json.loads(attributes["Policy"]) == ALLOW_ALL


# ---------------------------------------------------------------- SNS topic policy, subscriptions


def test_topic_policy_set_and_default_restored_on_delete(aws: Client) -> None:
    sns = aws("sns")
    topic_arn = sns.create_topic(Name="kept")["TopicArn"]
    default = json.loads(sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]["Policy"])
    deploy(
        aws,
        {
            "Policy": {
                "Type": "AWS::SNS::TopicPolicy",
                "Properties": {"Topics": [topic_arn], "PolicyDocument": ALLOW_ALL},
            }
        },
    )
    assert json.loads(sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]["Policy"]) == ALLOW_ALL
    delete(aws)
    assert json.loads(sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]["Policy"]) == default


@pytest.mark.parametrize(
    ("raw", "expected"), [(True, "true"), ("true", "true"), (False, "false"), (None, "false")]
)
def test_sqs_subscription_raw_delivery(aws: Client, raw: Any, expected: str) -> None:
    subscription = sqs_subscription() if raw is None else sqs_subscription(RawMessageDelivery=raw)
    ids = deploy(aws, {**TOPIC, **QUEUE, "Sub": subscription})
    sns = aws("sns")
    (listed,) = sns.list_subscriptions_by_topic(TopicArn=ids["Topic"])["Subscriptions"]
    assert listed["SubscriptionArn"] == ids["Sub"]
    assert listed["Protocol"] == "sqs" and listed["Endpoint"].endswith(ids["Queue"].rsplit("/", 1)[1])
    attributes = sns.get_subscription_attributes(SubscriptionArn=ids["Sub"])["Attributes"]
    assert attributes["RawMessageDelivery"] == expected
    sns.publish(TopicArn=ids["Topic"], Message="hello")
    (message,) = aws("sqs").receive_message(QueueUrl=ids["Queue"])["Messages"]
    body = message["Body"] if expected == "true" else json.loads(message["Body"])["Message"]
    assert body == "hello"


def test_subscription_filter_policy_and_email_pending_confirmation(aws: Client) -> None:
    filter_policy = {"severity": ["high", "critical"]}
    ids = deploy(
        aws,
        {
            **TOPIC,
            **QUEUE,
            "Filtered": sqs_subscription(FilterPolicy=filter_policy, RawMessageDelivery=True),
            "Mail": {
                "Type": "AWS::SNS::Subscription",
                "Properties": {
                    "TopicArn": {"Ref": "Topic"},
                    "Protocol": "email",
                    "Endpoint": "soc@example.com",
                },
            },
        },
    )
    sns = aws("sns")
    filtered = sns.get_subscription_attributes(SubscriptionArn=ids["Filtered"])["Attributes"]
    assert json.loads(filtered["FilterPolicy"]) == filter_policy
    mail = sns.get_subscription_attributes(SubscriptionArn=ids["Mail"])["Attributes"]
    assert (mail["PendingConfirmation"], filtered["PendingConfirmation"]) == ("true", "false")
    for severity in ("low", "high"):
        sns.publish(
            TopicArn=ids["Topic"],
            Message=severity,
            MessageAttributes={"severity": {"DataType": "String", "StringValue": severity}},
        )
    bodies = [
        m["Body"]
        for m in aws("sqs").receive_message(QueueUrl=ids["Queue"], MaxNumberOfMessages=10)["Messages"]
    ]
    assert bodies == ["high"]


def test_subscription_endpoint_change_replaces_it_and_delete_unsubscribes(aws: Client) -> None:
    resources = {
        **TOPIC,
        "Sub": {
            "Type": "AWS::SNS::Subscription",
            "Properties": {"TopicArn": {"Ref": "Topic"}, "Protocol": "email", "Endpoint": "a@example.com"},
        },
    }
    first = deploy(aws, resources)
    resources["Sub"]["Properties"]["Endpoint"] = "b@example.com"
    second = update(aws, resources)
    sns = aws("sns")
    listed = sns.list_subscriptions_by_topic(TopicArn=first["Topic"])["Subscriptions"]
    assert [(s["SubscriptionArn"], s["Endpoint"]) for s in listed] == [(second["Sub"], "b@example.com")]
    assert second["Sub"] != first["Sub"]
    del resources["Sub"]
    update(aws, resources)
    assert sns.list_subscriptions_by_topic(TopicArn=first["Topic"])["Subscriptions"] == []


def test_subscription_bad_boolean_is_named(aws: Client) -> None:
    failed, reason = creation_failure(
        aws,
        {
            **TOPIC,
            **QUEUE,
            "Sub": sqs_subscription(RawMessageDelivery="yes"),
        },
    )
    assert failed == "Sub"
    assert "AWS::SNS::Subscription: Properties.RawMessageDelivery must be true or false" in reason


# ---------------------------------------------------------------- CloudTrail


DEFAULT_SELECTORS = [
    {
        "ReadWriteType": "All",
        "IncludeManagementEvents": True,
        "DataResources": [],
        "ExcludeManagementEventSources": [],
    }
]
BASIC_SELECTORS = [
    {
        "ReadWriteType": "WriteOnly",
        "IncludeManagementEvents": True,
        "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::other/"]}],
    }
]
ADVANCED_SELECTORS = [
    {"Name": "mgmt", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}
]


def trail_resources(**properties: Any) -> dict[str, Any]:
    return {
        **BUCKET,
        "Trail": {
            "Type": "AWS::CloudTrail::Trail",
            "Properties": {"TrailName": "models-trail", "S3BucketName": {"Ref": "Bucket"}, **properties},
        },
    }


@pytest.mark.parametrize(
    ("selectors", "expected_basic", "expected_advanced", "custom"),
    [
        ({}, DEFAULT_SELECTORS, [], False),
        ({"EventSelectors": BASIC_SELECTORS}, BASIC_SELECTORS, [], True),
        ({"AdvancedEventSelectors": ADVANCED_SELECTORS}, [], ADVANCED_SELECTORS, True),
    ],
    ids=["default", "basic", "advanced"],
)
def test_trail_selectors(
    aws: Client,
    selectors: dict[str, Any],
    expected_basic: list[Any],
    expected_advanced: list[Any],
    custom: bool,
) -> None:
    deploy(
        aws,
        trail_resources(IsLogging=True, **selectors),
        Outputs={"Arn": {"Value": {"Fn::GetAtt": ["Trail", "Arn"]}}},
    )
    cloudtrail = aws("cloudtrail")
    got = cloudtrail.get_event_selectors(TrailName="models-trail")
    assert (got.get("EventSelectors") or [], got.get("AdvancedEventSelectors") or []) == (
        expected_basic,
        expected_advanced,
    )
    (trail,) = cloudtrail.describe_trails()["trailList"]
    assert trail["HasCustomEventSelectors"] is custom
    assert (
        trail["IncludeGlobalServiceEvents"],
        trail["IsMultiRegionTrail"],
        trail["LogFileValidationEnabled"],
    ) == (True, False, False)  # CloudTrail's defaults
    assert outputs(aws) == {"Arn": f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/models-trail"}


def test_trail_update_switches_logging_and_settings(aws: Client) -> None:
    resources = trail_resources(IsLogging=True, IsMultiRegionTrail=True)
    deploy(aws, resources)
    cloudtrail = aws("cloudtrail")
    assert cloudtrail.get_trail_status(Name="models-trail")["IsLogging"] is True
    resources["Trail"]["Properties"].update(
        IsLogging=False, EnableLogFileValidation=True, AdvancedEventSelectors=ADVANCED_SELECTORS
    )
    del resources["Trail"]["Properties"]["IsMultiRegionTrail"]  # back to CloudTrail's default
    update(aws, resources)
    assert cloudtrail.get_trail_status(Name="models-trail")["IsLogging"] is False
    (trail,) = cloudtrail.describe_trails()["trailList"]
    assert (trail["IsMultiRegionTrail"], trail["LogFileValidationEnabled"]) == (False, True)
    assert (
        cloudtrail.get_event_selectors(TrailName="models-trail")["AdvancedEventSelectors"]
        == ADVANCED_SELECTORS
    )
    delete(aws)
    assert cloudtrail.describe_trails()["trailList"] == []


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({}, "Properties.IsLogging is required"),
        ({"IsLogging": "maybe"}, "Properties.IsLogging must be true or false"),
        (
            {
                "IsLogging": True,
                "EventSelectors": BASIC_SELECTORS,
                "AdvancedEventSelectors": ADVANCED_SELECTORS,
            },
            "EventSelectors and AdvancedEventSelectors cannot both be set",
        ),
    ],
    ids=["no-is-logging", "bad-is-logging", "both-selector-kinds"],
)
def test_trail_bad_properties_are_named(aws: Client, properties: dict[str, Any], message: str) -> None:
    failed, reason = creation_failure(aws, trail_resources(**properties))
    assert (failed, f"AWS::CloudTrail::Trail: {message}" in reason) == ("Trail", True), reason


# ---------------------------------------------------------------- CloudWatch alarms


ALARM = {
    "Type": "AWS::CloudWatch::Alarm",
    "Properties": dlq_depth_alarm("models-dlq", "dlq", [{"Ref": "Topic"}]),
}


def test_alarm_created_updated_renamed_deleted(aws: Client) -> None:
    resources = {**TOPIC, "Alarm": json.loads(json.dumps(ALARM))}
    ids = deploy(aws, resources, Outputs={"Arn": {"Value": {"Fn::GetAtt": ["Alarm", "Arn"]}}})
    cloudwatch = aws("cloudwatch")
    (alarm,) = cloudwatch.describe_alarms()["MetricAlarms"]
    declared = ALARM["Properties"]
    same = ("AlarmName", "Namespace", "MetricName", "Dimensions", "Statistic", "ComparisonOperator")
    same += ("TreatMissingData",)
    assert {k: alarm[k] for k in same} == {k: declared[k] for k in same}
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["Threshold"]) == (300, 1, 0.0)
    assert alarm["AlarmActions"] == [ids["Topic"]]
    assert outputs(aws) == {"Arn": alarm["AlarmArn"]}
    resources["Alarm"]["Properties"].update(Threshold=3, AlarmName="models-dlq-renamed")
    update(aws, resources, Outputs={"Arn": {"Value": {"Fn::GetAtt": ["Alarm", "Arn"]}}})
    (renamed,) = cloudwatch.describe_alarms()["MetricAlarms"]
    assert (renamed["AlarmName"], renamed["Threshold"]) == ("models-dlq-renamed", 3.0)
    delete(aws)
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []


# ---------------------------------------------------------------- S3 bucket properties


def notifying_bucket(*configurations: dict[str, Any]) -> dict[str, Any]:
    return {
        **TOPIC,
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "BucketName": "models-bucket",
                "NotificationConfiguration": {"TopicConfigurations": list(configurations)},
            },
        },
    }


def topic_config(
    event: str = "s3:ObjectCreated:*", prefix: str | None = None, suffix: str | None = None
) -> dict:
    rules = [{"Name": n, "Value": v} for n, v in (("prefix", prefix), ("suffix", suffix)) if v is not None]
    config: dict[str, Any] = {"Event": event, "Topic": {"Ref": "Topic"}}
    if rules:
        config["Filter"] = {"S3Key": {"Rules": rules}}
    return config


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        (topic_config(prefix="AWSLogs/"), topic_config(prefix="AWSLogs/123/"), True),
        (topic_config(suffix=".gz"), topic_config(suffix=".json.gz"), True),
        (topic_config("s3:ObjectCreated:Put"), topic_config("s3:ObjectCreated:*"), True),
        (topic_config(prefix="AWSLogs/"), topic_config(prefix="config/"), False),
        (topic_config(suffix=".json.gz"), topic_config(suffix=".json"), False),
        (topic_config("s3:ObjectCreated:*"), topic_config("s3:ObjectRemoved:*"), False),
    ],
    ids=[
        "nested-prefix",
        "nested-suffix",
        "wildcard-event",
        "disjoint-prefix",
        "disjoint-suffix",
        "other-event",
    ],
)
def test_notification_configurations_must_not_overlap(
    aws: Client, first: dict[str, Any], second: dict[str, Any], overlap: bool
) -> None:
    if overlap:
        failed, reason = creation_failure(aws, notifying_bucket(first, second))
        assert (failed, "Configurations overlap" in reason) == ("Bucket", True), reason
    else:
        deploy(aws, notifying_bucket(first, second))
        configured = aws("s3").get_bucket_notification_configuration(Bucket="models-bucket")
        assert len(configured["TopicConfigurations"]) == 2


def test_notification_filter_reaches_the_topic_for_matching_keys_only(aws: Client) -> None:
    resources = {
        **notifying_bucket(topic_config(prefix="AWSLogs/", suffix=".json.gz")),
        **QUEUE,
        "Sub": sqs_subscription(RawMessageDelivery=True),
    }
    ids = deploy(aws, resources)
    sqs = aws("sqs")
    sqs.purge_queue(QueueUrl=ids["Queue"])
    for key in ("config/monitored_events.json", "AWSLogs/1/x.json", "AWSLogs/1/x.json.gz"):
        aws("s3").put_object(Bucket="models-bucket", Key=key, Body=b"x")
    messages = sqs.receive_message(QueueUrl=ids["Queue"], MaxNumberOfMessages=10)["Messages"]
    keys = [r["s3"]["object"]["key"] for m in messages for r in json.loads(m["Body"])["Records"]]
    assert [k.replace("%2F", "/") for k in keys] == ["AWSLogs/1/x.json.gz"]


@pytest.mark.parametrize(
    ("configuration", "message"),
    [
        ({**topic_config(), "Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:missing"}, "Unable to validate"),
        ({**topic_config(), "Event": "s3:ObjectCreated:Teleport"}, "unknown event"),
        (
            {**topic_config(), "Filter": {"S3Key": {"Rules": [{"Name": "middle", "Value": "x"}]}}},
            "filter rule name must be prefix or suffix",
        ),
    ],
    ids=["missing-topic", "bad-event", "bad-filter-rule"],
)
def test_bad_notification_is_named(aws: Client, configuration: dict[str, Any], message: str) -> None:
    failed, reason = creation_failure(aws, notifying_bucket(configuration))
    assert failed == "Bucket"
    assert re.search(rf"NotificationConfiguration\.TopicConfigurations\[0\].*{message}", reason), reason


def test_bucket_settings_applied_and_removed_on_update(aws: Client) -> None:
    properties = {
        "BucketName": "models-bucket",
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {
                    "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/x"},
                    "BucketKeyEnabled": True,
                }
            ]
        },
        "VersioningConfiguration": {"Status": "Enabled"},
        "LifecycleConfiguration": {
            "Rules": [
                {
                    "Id": "tagged",
                    "Status": "Enabled",
                    "Prefix": "logs/",
                    "TagFilters": [{"Key": "k", "Value": "v"}],
                    "ExpirationInDays": 9,
                },
                {
                    "Id": "versions",
                    "Status": "Enabled",
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 3},
                    "ExpiredObjectDeleteMarker": True,
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
                },
            ]
        },
    }
    resources = {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": properties}}
    deploy(aws, resources)
    s3 = aws("s3")
    assert all(s3.get_public_access_block(Bucket="models-bucket")["PublicAccessBlockConfiguration"].values())
    assert s3.get_bucket_ownership_controls(Bucket="models-bucket")["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}
    ]
    (rule,) = s3.get_bucket_encryption(Bucket="models-bucket")["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule == {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/x"},
        "BucketKeyEnabled": True,
    }
    assert s3.get_bucket_versioning(Bucket="models-bucket")["Status"] == "Enabled"
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket="models-bucket")["Rules"]}
    assert rules["tagged"]["Filter"] == {"And": {"Prefix": "logs/", "Tags": [{"Key": "k", "Value": "v"}]}}
    assert rules["tagged"]["Expiration"] == {"Days": 9}
    assert rules["versions"]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert rules["versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 3
    assert rules["versions"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}

    resources["Bucket"]["Properties"] = {"BucketName": "models-bucket"}
    update(aws, resources)
    for call, error in (
        (s3.get_public_access_block, "NoSuchPublicAccessBlockConfiguration"),
        (s3.get_bucket_ownership_controls, "OwnershipControlsNotFoundError"),
        (s3.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration"),
    ):
        with pytest.raises(ClientError, match=error):
            call(Bucket="models-bucket")
    assert (
        s3.get_bucket_versioning(Bucket="models-bucket")["Status"] == "Suspended"
    )  # never back to unversioned
    (rule,) = s3.get_bucket_encryption(Bucket="models-bucket")["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}  # S3's default encryption


def test_bucket_without_encryption_has_s3_default(aws: Client) -> None:
    deploy(aws, BUCKET)
    (rule,) = aws("s3").get_bucket_encryption(Bucket="models-bucket")["ServerSideEncryptionConfiguration"][
        "Rules"
    ]
    assert rule == {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        "BucketKeyEnabled": False,
    }


# ---------------------------------------------------------------- KMS key, log group, role, table, function


def test_key_policy_is_json_text_and_updates(aws: Client) -> None:
    resources = {
        "Key": {
            "Type": "AWS::KMS::Key",
            "Properties": {"Description": "first", "EnableKeyRotation": True, "KeyPolicy": ALLOW_ALL},
        }
    }
    ids = deploy(aws, resources)
    kms = aws("kms")
    text = kms.get_key_policy(KeyId=ids["Key"], PolicyName="default")["Policy"]
    assert isinstance(text, str) and json.loads(text) == ALLOW_ALL
    assert kms.describe_key(KeyId=ids["Key"])["KeyMetadata"]["Description"] == "first"
    assert kms.get_key_rotation_status(KeyId=ids["Key"])["KeyRotationEnabled"] is True
    narrowed = policy([{**ALLOW_ALL["Statement"][0], "Action": "kms:*"}])
    resources["Key"]["Properties"] = {"Description": "second", "KeyPolicy": narrowed}
    update(aws, resources)
    assert json.loads(kms.get_key_policy(KeyId=ids["Key"], PolicyName="default")["Policy"]) == narrowed
    assert kms.describe_key(KeyId=ids["Key"])["KeyMetadata"]["Description"] == "second"
    assert kms.get_key_rotation_status(KeyId=ids["Key"])["KeyRotationEnabled"] is False


def test_log_group_retention_and_key(aws: Client) -> None:
    resources = {
        "Group": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": "/aws/lambda/models",
                "RetentionInDays": 30,
                "KmsKeyId": "arn:aws:kms:us-east-1:1:key/k",
            },
        }
    }
    deploy(aws, resources)
    logs = aws("logs")

    def group() -> dict[str, Any]:
        (found,) = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/models")["logGroups"]
        return found

    assert (group()["retentionInDays"], group()["kmsKeyId"]) == (30, "arn:aws:kms:us-east-1:1:key/k")
    resources["Group"]["Properties"] = {"LogGroupName": "/aws/lambda/models", "RetentionInDays": 7}
    update(aws, resources)
    assert (group()["retentionInDays"], group().get("kmsKeyId")) == (7, None)
    resources["Group"]["Properties"] = {"LogGroupName": "/aws/lambda/models"}
    update(aws, resources)
    assert "retentionInDays" not in group()


TRUST = policy(
    [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
)


def test_role_inline_policies_are_json_and_follow_updates(aws: Client) -> None:
    read = policy([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}])
    write = policy([{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}])
    managed = aws("iam").create_policy(PolicyName="m", PolicyDocument=json.dumps(read))["Policy"]["Arn"]
    resources = {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": TRUST,
                "ManagedPolicyArns": [managed],
                "Policies": [
                    {"PolicyName": "read", "PolicyDocument": read},
                    {"PolicyName": "write", "PolicyDocument": write},
                ],
            },
        }
    }
    ids = deploy(aws, resources)
    iam = aws("iam")
    assert iam.get_role_policy(RoleName=ids["Role"], PolicyName="read")["PolicyDocument"] == read
    attached = iam.list_attached_role_policies(RoleName=ids["Role"])["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [managed]
    resources["Role"]["Properties"].update(
        Policies=[{"PolicyName": "read", "PolicyDocument": write}], ManagedPolicyArns=[]
    )
    update(aws, resources)
    assert iam.list_role_policies(RoleName=ids["Role"])["PolicyNames"] == ["read"]
    assert iam.get_role_policy(RoleName=ids["Role"], PolicyName="read")["PolicyDocument"] == write
    assert iam.list_attached_role_policies(RoleName=ids["Role"])["AttachedPolicies"] == []


def test_table_ttl_pitr_and_sse(aws: Client) -> None:
    properties = {
        "TableName": "models-table",
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "Id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "Id", "KeyType": "HASH"}],
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"},
    }
    resources = {"Table": {"Type": "AWS::DynamoDB::Table", "Properties": properties}}
    deploy(aws, resources)
    dynamodb = aws("dynamodb")

    def state() -> tuple[Any, ...]:
        ttl = dynamodb.describe_time_to_live(TableName="models-table")["TimeToLiveDescription"]
        backups = dynamodb.describe_continuous_backups(TableName="models-table")[
            "ContinuousBackupsDescription"
        ]
        sse = dynamodb.describe_table(TableName="models-table")["Table"].get("SSEDescription", {})
        return (
            ttl["TimeToLiveStatus"],
            ttl.get("AttributeName"),
            backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"],
            sse.get("Status"),
            sse.get("SSEType"),
        )

    assert state() == ("ENABLED", "expires_at", "ENABLED", "ENABLED", "KMS")
    for name in ("TimeToLiveSpecification", "PointInTimeRecoverySpecification", "SSESpecification"):
        del properties[name]
    update(aws, resources)
    assert state() == ("DISABLED", None, "DISABLED", None, None)


def function_resources(**properties: Any) -> dict[str, Any]:
    return {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": TRUST}},
        "Function": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "models-fn",
                "Handler": "index.handler",
                "Runtime": "python3.12",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"ZipFile": "def handler(e, c):\n    return 1\n"},
                **properties,
            },
        },
    }


def test_function_architecture_environment_and_concurrency(aws: Client) -> None:
    deploy(
        aws,
        function_resources(
            Architectures=["arm64"],
            ReservedConcurrentExecutions=3,
            Environment={"Variables": {"DAYS": {"Ref": "Days"}, "DEBUG": False, "NAME": "x"}},
        ),
        Parameters={"Days": {"Type": "Number", "Default": 90}},
    )
    lambda_ = aws("lambda")
    config = lambda_.get_function_configuration(FunctionName="models-fn")
    assert config["Architectures"] == ["arm64"]
    assert config["Environment"]["Variables"] == {"DAYS": "90", "DEBUG": "false", "NAME": "x"}
    assert lambda_.get_function_concurrency(FunctionName="models-fn")["ReservedConcurrentExecutions"] == 3


def test_function_bad_architecture_is_named(aws: Client) -> None:
    failed, reason = creation_failure(aws, function_resources(Architectures=["sparc"]))
    assert (failed, "Properties.Architectures must be [x86_64] or [arm64]" in reason) == ("Function", True), (
        reason
    )


# ---------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        (("", ""), ("AWSLogs/", ".gz"), True),
        (("AWSLogs/", ""), ("AWSLogs/1/", ""), True),
        (("AWSLogs/", ".json.gz"), ("config/", ".json.gz"), False),
        (("", ".json.gz"), ("", ".gz"), True),
        (("", ".json.gz"), ("", ".json"), False),
    ],
)
def test_filters_overlap(a: tuple[str, str], b: tuple[str, str], overlap: bool) -> None:
    assert cfn_overrides._filters_overlap(a, b) is overlap
    assert cfn_overrides._filters_overlap(b, a) is overlap


# ---------------------------------------------------------------- change sets (how `trailwatch deploy` works)


def test_change_sets_leave_the_stack_with_its_outputs_and_parameters(aws: Client) -> None:
    body = template(
        {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "Name"}}}},
        Description="change sets",
        Parameters={"Name": {"Type": "String"}},
        Outputs={"Url": {"Value": {"Ref": "Queue"}}, "Arn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}}},
    )
    cfn = aws("cloudformation")

    def run(kind: str, name: str) -> dict[str, Any]:
        created = cfn.create_change_set(
            StackName="cs",
            ChangeSetName=f"c-{name}",
            ChangeSetType=kind,
            TemplateBody=body,
            Parameters=[{"ParameterKey": "Name", "ParameterValue": name}],
        )
        cfn.execute_change_set(ChangeSetName=created["Id"])
        return cfn.describe_stacks(StackName="cs")["Stacks"][0]

    stack = run("CREATE", "first")
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert stack["Description"] == "change sets"
    assert {
        o["OutputKey"]: o["OutputValue"].rsplit("/", 1)[-1].rsplit(":", 1)[-1] for o in stack["Outputs"]
    } == {"Url": "first", "Arn": "first"}
    stack = run("UPDATE", "second")
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert stack["Parameters"] == [{"ParameterKey": "Name", "ParameterValue": "second"}]
    assert {
        o["OutputKey"]: o["OutputValue"].rsplit("/", 1)[-1].rsplit(":", 1)[-1] for o in stack["Outputs"]
    } == {"Url": "second", "Arn": "second"}


NO_CHANGES = (
    "The submitted information didn't contain changes. Submit different information to create a change set."
)


@pytest.mark.parametrize(
    ("second", "status"),
    [
        ({"Name": None, "Size": None}, "FAILED"),  # what `trailwatch deploy` sends: every previous value
        ({"Name": "first", "Size": None}, "FAILED"),
        ({"Name": None, "Size": "7"}, "FAILED"),  # the default, now named
        ({"Name": "other", "Size": None}, "CREATE_COMPLETE"),
        ({"Name": None, "Size": "8"}, "CREATE_COMPLETE"),
    ],
)
def test_change_set_from_a_template_url_without_changes_fails(
    aws: Client, second: dict[str, str | None], status: str
) -> None:
    """AWS reads a TemplateURL's template and compares it and the effective parameter values with the
    stack's: equal, the change set FAILS with "no changes" (how `trailwatch deploy` says "No changes" once
    main.yaml is sent by URL). moto compared the given values with those the stack was created with."""
    body = template(
        {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "Name"}}}},
        Parameters={"Name": {"Type": "String"}, "Size": {"Type": "Number", "Default": 7}},
    )
    aws("s3").create_bucket(Bucket="templates-bucket")
    aws("s3").put_object(Bucket="templates-bucket", Key="main.yaml", Body=body.encode())
    url = f"https://s3.{REGION}.amazonaws.com/templates-bucket/main.yaml"
    cfn = aws("cloudformation")

    def change_set(kind: str, values: dict[str, str | None]) -> str:
        return cfn.create_change_set(
            StackName="cs",
            ChangeSetName=f"c-{kind.lower()}",
            ChangeSetType=kind,
            TemplateURL=url,
            Parameters=[
                {"ParameterKey": k, "UsePreviousValue": True}
                if v is None
                else {"ParameterKey": k, "ParameterValue": v}
                for k, v in values.items()
            ],
        )["Id"]

    cfn.execute_change_set(ChangeSetName=change_set("CREATE", {"Name": "first"}))
    described = cfn.describe_change_set(ChangeSetName=change_set("UPDATE", second))
    assert described["Status"] == status
    assert (described.get("StatusReason") == NO_CHANGES) is (status == "FAILED")


# ---------------------------------------------------------------- stack updates with changed parameters


def test_update_follows_conditions_and_parameters_used_through_sub(aws: Client) -> None:
    body = template(
        {
            "Optional": {
                "Type": "AWS::SQS::Queue",
                "Condition": "On",
                "Properties": {"QueueName": "optional"},
            },
            "Named": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": {"Fn::Sub": "named-${Suffix}"},
                    "DelaySeconds": {"Fn::If": ["On", 5, 0]},
                },
            },
        },
        Parameters={
            "Flag": {"Type": "String", "Default": "off"},
            "Suffix": {"Type": "String", "Default": "a"},
        },
        Conditions={"On": {"Fn::Equals": [{"Ref": "Flag"}, "on"]}},
    )
    cfn = aws("cloudformation")
    sqs = aws("sqs")
    cfn.create_stack(StackName="s", TemplateBody=body)

    def state() -> tuple[list[str], str]:
        urls = sorted(u.rsplit("/", 1)[-1] for u in sqs.list_queues().get("QueueUrls", []))
        named = next(u for u in sqs.list_queues()["QueueUrls"] if "named" in u)
        return urls, sqs.get_queue_attributes(QueueUrl=named, AttributeNames=["DelaySeconds"])["Attributes"][
            "DelaySeconds"
        ]

    assert state() == (["named-a"], "0")
    for flag, suffix, expected in (
        ("on", "b", (["named-b", "optional"], "5")),
        ("off", "b", (["named-b"], "0")),
    ):
        cfn.update_stack(
            StackName="s",
            TemplateBody=body,
            Parameters=[
                {"ParameterKey": "Flag", "ParameterValue": flag},
                {"ParameterKey": "Suffix", "ParameterValue": suffix},
            ],
        )
        assert state() == expected
        listed = {
            s["LogicalResourceId"] for s in cfn.list_stack_resources(StackName="s")["StackResourceSummaries"]
        }
        assert listed == ({"Named", "Optional"} if flag == "on" else {"Named"})


# ---------------------------------------------------------------- events, failures


def resource_events(aws: Client, stack: str = "s") -> list[tuple[str, str]]:
    events = aws("cloudformation").describe_stack_events(StackName=stack)["StackEvents"]
    return [
        (e["LogicalResourceId"], e["ResourceStatus"])
        for e in reversed(events)
        if e["LogicalResourceId"] != stack
    ]


def test_each_resource_has_create_and_delete_events(aws: Client) -> None:
    ids = deploy(aws, {**QUEUE, **TOPIC})
    events = resource_events(aws)
    for name in ("Queue", "Topic"):
        assert [status for logical, status in events if logical == name] == [
            "CREATE_IN_PROGRESS",
            "CREATE_COMPLETE",
        ]
    complete = {
        e["LogicalResourceId"]: e["PhysicalResourceId"]
        for e in aws("cloudformation").describe_stack_events(StackName="s")["StackEvents"]
        if e["ResourceStatus"] == "CREATE_COMPLETE" and e["LogicalResourceId"] != "s"
    }
    assert complete == ids
    cfn = aws("cloudformation")
    stack_id = cfn.describe_stacks(StackName="s")["Stacks"][0]["StackId"]
    delete(aws)
    deleted = [
        (e["LogicalResourceId"], e["ResourceStatus"])
        for e in cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    ]
    assert ("Queue", "DELETE_COMPLETE") in deleted and ("Topic", "DELETE_COMPLETE") in deleted


@pytest.mark.filterwarnings("ignore:Tried to parse AWS")  # moto's own notice, expected here
def test_unsupported_type_fails_the_stack_and_rolls_back(aws: Client) -> None:
    failed, reason = creation_failure(
        aws, {**QUEUE, "Odd": {"Type": "AWS::Foo::Bar", "DependsOn": "Queue", "Properties": {"X": 1}}}
    )
    assert failed == "Odd" and "AWS::Foo::Bar is not supported by the local AWS" in reason
    assert (
        aws("sqs").list_queues().get("QueueUrls", []) == []
    )  # the queue created before went with the rollback


def test_failed_change_set_creation_rolls_back(aws: Client) -> None:
    cfn = aws("cloudformation")
    body = template(trail_resources(IsLogging="maybe"))
    change_set = cfn.create_change_set(
        StackName="s", ChangeSetName="c", ChangeSetType="CREATE", TemplateBody=body
    )
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    assert cfn.describe_stacks(StackName="s")["Stacks"][0]["StackStatus"] == "ROLLBACK_COMPLETE"
    assert cfn.describe_change_set(ChangeSetName=change_set["Id"])["ExecutionStatus"] == "EXECUTE_FAILED"
    assert ("Trail", "CREATE_FAILED") in resource_events(aws)
    assert aws("s3").list_buckets()["Buckets"] == []


def test_failed_update_is_reported_not_raised(aws: Client) -> None:
    resources = trail_resources(IsLogging=True)
    deploy(aws, resources)
    resources["Trail"]["Properties"]["IsLogging"] = "maybe"
    aws("cloudformation").update_stack(StackName="s", TemplateBody=template(resources))
    events = aws("cloudformation").describe_stack_events(StackName="s")["StackEvents"]
    assert (
        aws("cloudformation").describe_stacks(StackName="s")["Stacks"][0]["StackStatus"]
        == "UPDATE_ROLLBACK_FAILED"
    )
    (failed,) = [e for e in events if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert failed["LogicalResourceId"] == "Trail"
    assert "IsLogging must be true or false" in failed["ResourceStatusReason"]
