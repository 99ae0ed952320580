"""The local AWS deploys the real stack: the unchanged main.yaml deploys through CloudFormation on a
LocalAWS, and every resource it declares exists with its declared settings, read back through the AWS
APIs only.

The expected values come from the template itself, resolved with the stack's parameters and the physical
ids CloudFormation reports (trailwatch.cfn_template's evaluator, with the ARNs Fn::GetAtt gives), so the
test follows main.yaml as it changes; a resource type without a check here fails the test.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from botocore.exceptions import ClientError
from trailwatch.cfn_template import Evaluator
from trailwatch.local.commands import export_lines
from trailwatch.local.server import LocalAWS

from tests.e2e.conftest import TEMPLATE as TEMPLATE_PATH
from tests.e2e.conftest import ClientFactory, client_factory, deploy_main_stack
from tests.local_up import local_up
from tests.unit.template_helpers import load_template

pytestmark = pytest.mark.e2e

LOCAL_AWS_OPTIONS = {"lambda_runtime": False}

ACCOUNT = "123456789012"
REGION = "us-east-1"
TEMPLATE = load_template()

# Two deployments cover both sides of every condition of main.yaml.
VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {
        "TrailBucketName": "tw-accept-default-trail",
        "AlertEmail": "security@example.com",
    },
    "options": {
        "TrailName": "tw-accept-options",
        "TrailBucketName": "tw-accept-options-trail",
        "AlertEmail": "soc@example.org",
        "EventsTableName": "SecurityEventsOptions",
        "EnableDataEvents": "false",
        "LogFileKmsEncryption": "true",
        "SubscribeEmailToLogDelivery": "true",
        "EmailMinimumSeverity": "high",
        "ReservedConcurrency": "5",
        "FunctionArchitecture": "x86_64",
        "FunctionTimeout": "120",
        "MaxReceiveCount": "3",
        "LogRetentionDays": "30",
        "FunctionLogRetentionDays": "14",
        "LogLevel": "DEBUG",
    },
}
# A third stack is created with every option on, then updated through a change set (as `trailwatch deploy`
# does) to the defaults: resources whose conditions turn false go, values given through conditions and
# Fn::Sub follow, and the result must again match the template.
VARIANTS["updated"] = {
    "TrailName": "tw-accept-updated",
    "TrailBucketName": "tw-accept-updated-trail",
    "AlertEmail": "updated@example.net",
    "EventsTableName": "SecurityEventsUpdated",
}
INITIAL = {
    "updated": {
        **VARIANTS["updated"],
        **{k: v for k, v in VARIANTS["options"].items() if k not in VARIANTS["updated"]},
    }
}
STACKS = {"defaults": "twdefault", "options": "twoptions", "updated": "twupdated"}
CODE_BUCKET = "trailwatch-code"


# ---------------------------------------------------------------- template resolution


class Resolver:
    """Evaluates template expressions the way CloudFormation does for one deployed stack: the product's
    evaluator, with Ref to a resource giving its physical id and Fn::GetAtt the ARNs AWS would give."""

    def __init__(self, stack_name: str, parameters: dict[str, str], physical: dict[str, str]) -> None:
        self.physical = physical
        self.types = {name: r["Type"] for name, r in TEMPLATE["Resources"].items()}
        pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.evaluator = Evaluator.for_template(TEMPLATE, {**physical, **pseudo, **parameters}, self.get_att)
        self.conditions = self.evaluator.all_conditions()

    def get_att(self, name: str, attribute: str) -> str:
        physical, kind = self.physical[name], self.types[name]
        arns = {
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{physical}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical.rsplit('/', 1)[-1]}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical}",
            "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{physical}",
            "AWS::CloudTrail::Trail": f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{physical}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{physical}",
            "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{physical}",
        }
        if attribute == "Arn":
            return arns[kind]
        if (kind, attribute) == ("AWS::SQS::Queue", "QueueName"):
            return physical.rsplit("/", 1)[-1]
        raise AssertionError(f"GetAtt {name}.{attribute} not handled by the test's resolver")

    def __call__(self, value: Any) -> Any:
        return self.evaluator.resolve(value)


# ---------------------------------------------------------------- deployment


@pytest.fixture(scope="module")
def aws(aws_client: ClientFactory) -> ClientFactory:
    return aws_client


@pytest.fixture(scope="module")
def deployed(aws: ClientFactory) -> dict[str, dict[str, Any]]:
    """Every variant deployed; per variant its outputs, physical ids (also before the update) and resolver."""
    result = {}
    for variant, parameters in VARIANTS.items():
        stack = STACKS[variant]
        started = time.monotonic()
        outputs = deploy_main_stack(aws, stack, INITIAL.get(variant, parameters), code_bucket=CODE_BUCKET)
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"deploying main.yaml took {elapsed:.1f}s on the local AWS"
        before_update = physical_ids(aws, stack)
        if variant in INITIAL:
            outputs = update_through_change_set(aws, stack, parameters)
        physical = physical_ids(aws, stack)
        described = aws("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]
        values = {p["ParameterKey"]: p["ParameterValue"] for p in described}
        assert {k: values[k] for k in parameters} == parameters
        result[variant] = {
            "outputs": outputs,
            "physical": physical,
            "before_update": before_update,
            "resolve": Resolver(stack, values, physical),
        }
    return result


def physical_ids(aws: ClientFactory, stack: str) -> dict[str, str]:
    summaries = aws("cloudformation").list_stack_resources(StackName=stack)["StackResourceSummaries"]
    assert all(s["LogicalResourceId"] for s in summaries), "a resource listed without a logical id"
    return {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries}


def update_through_change_set(aws: ClientFactory, stack: str, parameters: dict[str, str]) -> dict[str, str]:
    """UPDATE change set with `parameters` (the rest at the template's defaults), executed; the outputs."""
    cfn = aws("cloudformation")
    previous = cfn.describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]
    code = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in previous
        if p["ParameterKey"] in ("CodeBucket", "CodeKey")
    }
    values = {**code, **parameters}
    change_set = cfn.create_change_set(
        StackName=stack,
        ChangeSetName="update",
        ChangeSetType="UPDATE",
        TemplateBody=TEMPLATE_PATH.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cfn.describe_change_set(ChangeSetName=change_set["Id"])
    actions = {
        (c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
        for c in described["Changes"]
    }
    assert ("Remove", "LogFileKey") in actions and ("Modify", "Trail") in actions, actions
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    described_stack = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert described_stack["StackStatus"] == "UPDATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in described_stack["Outputs"]}


def resource_cases() -> list[Any]:
    cases = []
    for variant, parameters in VARIANTS.items():
        conditions = Resolver(STACKS[variant], parameters, {}).conditions
        for logical_id, resource in TEMPLATE["Resources"].items():
            created = conditions[resource["Condition"]] if "Condition" in resource else True
            cases.append(pytest.param(variant, logical_id, created, id=f"{variant}-{logical_id}"))
    return cases


# ---------------------------------------------------------------- checks per resource type

Check = Callable[[ClientFactory, str, dict[str, Any], Resolver], None]
CHECKS: dict[str, Check] = {}


def check(resource_type: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[resource_type] = fn
        return fn

    return register


def assert_as_declared(deployed: dict[str, Any], props: dict[str, Any], *names: str) -> None:
    """Each named property is deployed as the template declares it (same name, same value)."""
    for name in names:
        assert deployed[name] == props[name], name


def as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


@check("AWS::KMS::Key")
def check_key(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    kms = aws("kms")
    meta = kms.describe_key(KeyId=physical)["KeyMetadata"]
    assert meta["Description"] == props["Description"]
    assert meta["Enabled"] is True and meta["KeyState"] == "Enabled"
    assert kms.get_key_rotation_status(KeyId=physical)["KeyRotationEnabled"] is as_bool(
        props["EnableKeyRotation"]
    )
    policy = kms.get_key_policy(KeyId=physical, PolicyName="default")["Policy"]
    assert isinstance(policy, str), "GetKeyPolicy answers the policy as JSON text"
    assert json.loads(policy) == props["KeyPolicy"]


@check("AWS::KMS::Alias")
def check_alias(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in aws("kms").list_aliases()["Aliases"]}
    assert aliases[props["AliasName"]] == props["TargetKeyId"]


@check("AWS::S3::Bucket")
def check_bucket(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    s3 = aws("s3")
    assert physical == props["BucketName"]
    block = s3.get_public_access_block(Bucket=physical)["PublicAccessBlockConfiguration"]
    assert block == {k: as_bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()}
    ownership = s3.get_bucket_ownership_controls(Bucket=physical)["OwnershipControls"]["Rules"]
    assert ownership == props["OwnershipControls"]["Rules"]
    (rule,) = s3.get_bucket_encryption(Bucket=physical)["ServerSideEncryptionConfiguration"]["Rules"]
    (declared,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ApplyServerSideEncryptionByDefault"] == declared["ServerSideEncryptionByDefault"]
    assert rule["BucketKeyEnabled"] is as_bool(declared.get("BucketKeyEnabled", False))
    assert s3.get_bucket_versioning(Bucket=physical)["Status"] == props["VersioningConfiguration"]["Status"]
    check_lifecycle(s3.get_bucket_lifecycle_configuration(Bucket=physical)["Rules"], props)
    check_notifications(s3.get_bucket_notification_configuration(Bucket=physical), props)


def check_lifecycle(rules: list[dict[str, Any]], props: dict[str, Any]) -> None:
    declared = props["LifecycleConfiguration"]["Rules"]
    by_id = {r["ID"]: r for r in rules}
    assert set(by_id) == {r["Id"] for r in declared}
    for expected in declared:
        actual = by_id[expected["Id"]]
        assert actual["Status"] == expected["Status"]
        assert actual["Filter"].get("Prefix", "") == expected.get("Prefix", "")
        expiration = actual.get("Expiration", {})
        if "ExpirationInDays" in expected:
            assert expiration["Days"] == int(expected["ExpirationInDays"])
        if "ExpiredObjectDeleteMarker" in expected:
            assert expiration["ExpiredObjectDeleteMarker"] is as_bool(expected["ExpiredObjectDeleteMarker"])
        if "NoncurrentVersionExpiration" in expected:
            days = int(expected["NoncurrentVersionExpiration"]["NoncurrentDays"])
            assert actual["NoncurrentVersionExpiration"]["NoncurrentDays"] == days
        if "AbortIncompleteMultipartUpload" in expected:
            days = int(expected["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
            assert actual["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == days


def check_notifications(config: dict[str, Any], props: dict[str, Any]) -> None:
    declared = props["NotificationConfiguration"]
    assert set(k for k in config if k != "ResponseMetadata") == set(declared)
    for expected, actual in zip(declared["TopicConfigurations"], config["TopicConfigurations"], strict=True):
        assert actual["TopicArn"] == expected["Topic"]
        assert actual["Events"] == [expected["Event"]]
        assert actual["Filter"]["Key"]["FilterRules"] == expected["Filter"]["S3Key"]["Rules"]


@check("AWS::S3::BucketPolicy")
def check_bucket_policy(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    policy = aws("s3").get_bucket_policy(Bucket=props["Bucket"])["Policy"]
    assert json.loads(policy) == props["PolicyDocument"]


@check("AWS::CloudTrail::Trail")
def check_trail(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    cloudtrail = aws("cloudtrail")
    (trail,) = [t for t in cloudtrail.describe_trails()["trailList"] if t["Name"] == physical]
    assert trail["Name"] == props["TrailName"]
    assert trail["S3BucketName"] == props["S3BucketName"]
    assert trail["IsMultiRegionTrail"] is as_bool(props["IsMultiRegionTrail"])
    assert trail["IncludeGlobalServiceEvents"] is as_bool(props["IncludeGlobalServiceEvents"])
    assert trail["LogFileValidationEnabled"] is as_bool(props["EnableLogFileValidation"])
    assert trail.get("KmsKeyId") == props.get("KMSKeyId")
    assert trail["HasCustomEventSelectors"] is True
    assert cloudtrail.get_trail_status(Name=physical)["IsLogging"] is as_bool(props["IsLogging"])
    selectors = cloudtrail.get_event_selectors(TrailName=physical)
    assert selectors["AdvancedEventSelectors"] == props["AdvancedEventSelectors"]
    assert not selectors.get("EventSelectors")


@check("AWS::SNS::Topic")
def check_topic(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    attributes = aws("sns").get_topic_attributes(TopicArn=physical)["Attributes"]
    assert_as_declared(attributes, props, "DisplayName", "KmsMasterKeyId")


@check("AWS::SNS::TopicPolicy")
def check_topic_policy(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    for topic in props["Topics"]:
        policy = aws("sns").get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"]
        assert json.loads(policy) == props["PolicyDocument"]


@check("AWS::SNS::Subscription")
def check_subscription(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    sns = aws("sns")
    listed = sns.list_subscriptions_by_topic(TopicArn=props["TopicArn"])["Subscriptions"]
    (mine,) = [s for s in listed if s["SubscriptionArn"] == physical]
    assert (mine["Protocol"], mine["Endpoint"]) == (props["Protocol"], props["Endpoint"])
    attributes = sns.get_subscription_attributes(SubscriptionArn=physical)["Attributes"]
    assert attributes["RawMessageDelivery"] == str(as_bool(props.get("RawMessageDelivery", False))).lower()
    pending = props["Protocol"] in ("email", "email-json")  # confirmed only by the recipient
    assert attributes["PendingConfirmation"] == str(pending).lower()
    if "FilterPolicy" in props:
        assert json.loads(attributes["FilterPolicy"]) == props["FilterPolicy"]
        assert attributes["FilterPolicyScope"] == props.get("FilterPolicyScope", "MessageAttributes")
    else:
        assert "FilterPolicy" not in attributes


@check("AWS::SQS::Queue")
def check_queue(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    attributes = aws("sqs").get_queue_attributes(QueueUrl=physical, AttributeNames=["All"])["Attributes"]
    for name in ("VisibilityTimeout", "MessageRetentionPeriod"):
        if name in props:
            assert attributes[name] == str(props[name]), name
    assert attributes["SqsManagedSseEnabled"] == str(as_bool(props["SqsManagedSseEnabled"])).lower()
    if "RedrivePolicy" in props:
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive == {
            "deadLetterTargetArn": props["RedrivePolicy"]["deadLetterTargetArn"],
            "maxReceiveCount": int(props["RedrivePolicy"]["maxReceiveCount"]),
        }
    else:
        assert "RedrivePolicy" not in attributes


@check("AWS::SQS::QueuePolicy")
def check_queue_policy(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    for queue in props["Queues"]:
        attributes = aws("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])["Attributes"]
        assert json.loads(attributes["Policy"]) == props["PolicyDocument"]


@check("AWS::CloudWatch::Alarm")
def check_alarm(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    (alarm,) = aws("cloudwatch").describe_alarms(AlarmNames=[physical])["MetricAlarms"]
    as_is = ("AlarmName", "AlarmDescription", "Namespace", "MetricName", "Statistic", "ComparisonOperator")
    assert_as_declared(alarm, props, *as_is, "TreatMissingData", "Dimensions", "AlarmActions")
    for name in ("Period", "EvaluationPeriods"):
        assert alarm[name] == int(props[name]), name
    assert alarm["Threshold"] == float(props["Threshold"])


@check("AWS::DynamoDB::Table")
def check_table(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    dynamodb = aws("dynamodb")
    table = dynamodb.describe_table(TableName=physical)["Table"]
    assert_as_declared(table, props, "TableName", "KeySchema")
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(props["AttributeDefinitions"], key=str)
    assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {i["IndexName"] for i in props["GlobalSecondaryIndexes"]}
    for declared in props["GlobalSecondaryIndexes"]:
        assert indexes[declared["IndexName"]]["KeySchema"] == declared["KeySchema"]
        assert indexes[declared["IndexName"]]["Projection"] == declared["Projection"]
    sse = table["SSEDescription"]
    assert (sse["Status"], sse["SSEType"]) == ("ENABLED", props["SSESpecification"]["SSEType"])
    ttl = dynamodb.describe_time_to_live(TableName=physical)["TimeToLiveDescription"]
    assert ttl == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": props["TimeToLiveSpecification"]["AttributeName"],
    }
    backups = dynamodb.describe_continuous_backups(TableName=physical)["ContinuousBackupsDescription"]
    status = backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
    enabled = as_bool(props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
    assert status == ("ENABLED" if enabled else "DISABLED")


@check("AWS::Logs::LogGroup")
def check_log_group(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    groups = aws("logs").describe_log_groups(logGroupNamePrefix=physical)["logGroups"]
    (group,) = [g for g in groups if g["logGroupName"] == props["LogGroupName"]]
    assert group["retentionInDays"] == int(props["RetentionInDays"])
    assert group.get("kmsKeyId") == props.get("KmsKeyId")


@check("AWS::IAM::Role")
def check_role(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    iam = aws("iam")
    role = iam.get_role(RoleName=physical)["Role"]
    assert_as_declared(role, props, "AssumeRolePolicyDocument", "Description")
    names = iam.list_role_policies(RoleName=physical)["PolicyNames"]
    declared_names = {p["PolicyName"] for p in props.get("Policies", [])}
    # Besides its own, the role holds the inline policies of AWS::IAM::Policy resources naming it.
    separate = {
        r["Properties"]["PolicyName"]
        for r in TEMPLATE["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
    }
    assert declared_names <= set(names) and set(names) - declared_names <= separate
    for declared in props.get("Policies", []):
        document = iam.get_role_policy(RoleName=physical, PolicyName=declared["PolicyName"])["PolicyDocument"]
        assert document == declared["PolicyDocument"]


@check("AWS::IAM::Policy")
def check_iam_policy(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    for role in props["Roles"]:
        got = aws("iam").get_role_policy(RoleName=role, PolicyName=props["PolicyName"])["PolicyDocument"]
        assert got == props["PolicyDocument"]


@check("AWS::Events::Rule")
def check_events_rule(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    events = aws("events")
    rule = events.describe_rule(Name=physical, EventBusName=props.get("EventBusName", "default"))
    assert rule["Name"] == props.get("Name", physical)
    assert json.loads(rule["EventPattern"]) == props["EventPattern"]
    assert rule["State"] == props.get("State", "ENABLED")
    assert rule.get("Description") == props.get("Description")
    targets = events.list_targets_by_rule(Rule=physical)["Targets"]
    assert sorted(targets, key=lambda t: t["Id"]) == sorted(props["Targets"], key=lambda t: t["Id"])


@check("AWS::Lambda::Function")
def check_function(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    lambda_ = aws("lambda")
    config = lambda_.get_function_configuration(FunctionName=physical)
    assert config["FunctionName"] == props["FunctionName"]
    for name in ("Runtime", "Handler", "Role", "Description"):
        assert config[name] == props[name], name
    for name in ("MemorySize", "Timeout"):
        assert config[name] == int(props[name]), name
    assert config["Architectures"] == props["Architectures"]
    assert config["Environment"]["Variables"] == {
        k: str(v) for k, v in props["Environment"]["Variables"].items()
    }
    concurrency = lambda_.get_function_concurrency(FunctionName=physical).get("ReservedConcurrentExecutions")
    declared = props.get("ReservedConcurrentExecutions")
    assert concurrency == (int(declared) if declared is not None else None)


@check("AWS::Lambda::EventSourceMapping")
def check_mapping(aws: ClientFactory, physical: str, props: dict[str, Any], resolve: Resolver) -> None:
    mapping = aws("lambda").get_event_source_mapping(UUID=physical)
    assert mapping["EventSourceArn"] == props["EventSourceArn"]
    assert mapping["FunctionArn"].rsplit(":", 1)[-1] == props["FunctionName"]
    assert mapping["BatchSize"] == int(props["BatchSize"])
    assert mapping["State"] == ("Enabled" if as_bool(props.get("Enabled", True)) else "Disabled")
    assert mapping["FunctionResponseTypes"] == props["FunctionResponseTypes"]
    if "ScalingConfig" in props:
        assert mapping["ScalingConfig"]["MaximumConcurrency"] == int(
            props["ScalingConfig"]["MaximumConcurrency"]
        )
    else:
        assert "ScalingConfig" not in mapping


# ---------------------------------------------------------------- the acceptance tests


@pytest.mark.parametrize(("variant", "logical_id", "created"), resource_cases())
def test_resource_has_declared_settings(
    aws: ClientFactory, deployed: dict[str, dict[str, Any]], variant: str, logical_id: str, created: bool
) -> None:
    stack = deployed[variant]
    resource = TEMPLATE["Resources"][logical_id]
    if not created:
        assert logical_id not in stack["physical"], f"{logical_id}: its condition is false, yet it exists"
        return
    assert logical_id in stack["physical"], f"{logical_id} ({resource['Type']}) was not created"
    checker = CHECKS.get(resource["Type"])
    assert checker is not None, f"no acceptance check for {resource['Type']}: add one"
    resolve = stack["resolve"]
    checker(aws, stack["physical"][logical_id], resolve(resource.get("Properties", {})), resolve)


@pytest.mark.parametrize("variant", VARIANTS)
def test_outputs_resolve_to_the_resources(deployed: dict[str, dict[str, Any]], variant: str) -> None:
    stack = deployed[variant]
    resolve = stack["resolve"]
    expected = {
        name: str(resolve(spec["Value"]))
        for name, spec in TEMPLATE["Outputs"].items()
        if "Condition" not in spec or resolve.conditions[spec["Condition"]]  # as CloudFormation
    }
    assert stack["outputs"] == expected


def test_a_new_log_file_reaches_the_processing_queue(
    aws: ClientFactory, deployed: dict[str, dict[str, Any]]
) -> None:
    """The notification -> topic -> raw subscription -> queue chain that the Lambda consumes."""
    outputs = deployed["defaults"]["outputs"]
    sqs = aws("sqs")
    queue = outputs["LogQueueUrl"]
    sqs.purge_queue(QueueUrl=queue)  # the s3:TestEvent sent when the notification was configured
    bucket = outputs["TrailBucketName"]
    name = f"{ACCOUNT}_CloudTrail_{REGION}_20240115T1200Z_a.json.gz"
    key = f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2024/01/15/{name}"
    s3 = aws("s3")
    s3.put_object(Bucket=bucket, Key="config/monitored_events.json", Body=b"{}")  # no notification
    s3.put_object(Bucket=bucket, Key=key, Body=b"\x1f\x8b")
    bodies = []
    for wait in (1, 0):  # moto delivers within the PutObject call; the second receive finds any extra
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=wait)
        bodies += [json.loads(m["Body"]) for m in messages.get("Messages", [])]
    keys = [unquote_plus(record["s3"]["object"]["key"]) for body in bodies for record in body["Records"]]
    assert keys == [key], "raw delivery of exactly one S3 notification, for the log key only"


def test_update_deletes_removed_resources_but_retains_retained_ones(
    aws: ClientFactory, deployed: dict[str, dict[str, Any]]
) -> None:
    before = deployed["updated"]["before_update"]
    key = aws("kms").describe_key(KeyId=before["LogFileKey"])["KeyMetadata"]  # DeletionPolicy: Retain
    assert key["KeyState"] == "Enabled"
    aliases = {a["AliasName"] for a in aws("kms").list_aliases()["Aliases"]}
    assert "alias/twupdated-trail-logs" not in aliases
    topic = deployed["updated"]["outputs"]["LogDeliveryTopicArn"]
    listed = aws("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["Protocol"] for s in listed] == ["sqs"]  # the email subscription went with its condition


def test_stack_deletion_keeps_retained_resources_only(
    aws: ClientFactory, deployed: dict[str, dict[str, Any]]
) -> None:
    stack = STACKS["options"]
    physical = deployed["options"]["physical"]
    cfn = aws("cloudformation")
    stack_id = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackId"]
    cfn.delete_stack(StackName=stack)
    assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    skipped = {e["LogicalResourceId"] for e in events if e["ResourceStatus"] == "DELETE_SKIPPED"}
    retained = {
        n
        for n, r in TEMPLATE["Resources"].items()
        if r.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate") and n in physical
    }
    assert skipped == retained
    buckets = {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}
    assert physical["TrailBucket"] in buckets  # DeletionPolicy: Retain
    assert physical["EventsTable"] in aws("dynamodb").list_tables()["TableNames"]  # Retain
    trails = [t["Name"] for t in aws("cloudtrail").describe_trails()["trailList"]]
    assert physical["Trail"] not in trails
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        aws("s3").get_bucket_policy(Bucket=physical["TrailBucket"])
    assert physical["ProcessorFunction"] not in {
        f["FunctionName"] for f in aws("lambda").list_functions()["Functions"]
    }
    queues = aws("sqs").list_queues().get("QueueUrls", [])
    assert physical["LogProcessingQueue"] not in queues
    alarms = {a["AlarmName"] for a in aws("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert physical["DeadLetterQueueAlarm"] not in alarms


# ---------------------------------------------------------------- the emulator itself


def test_one_local_aws_per_process(local_aws: LocalAWS) -> None:
    with pytest.raises(RuntimeError, match="another LocalAWS is running"):
        LocalAWS(port=0, lambda_runtime=False, cloudtrail=False).start()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"port": 70000}, "port must be 0..65535"), ({"delivery_interval": 0}, "delivery_interval must be > 0")],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalAWS(**kwargs)


def test_export_lines_point_sdks_at_the_endpoint() -> None:
    assert export_lines("http://127.0.0.1:4566", "eu-west-1") == [
        "export AWS_ENDPOINT_URL=http://127.0.0.1:4566",
        "export AWS_ACCESS_KEY_ID=test",
        "export AWS_SECRET_ACCESS_KEY=test",
        "export AWS_REGION=eu-west-1",
        "export AWS_DEFAULT_REGION=eu-west-1",
    ]


def test_local_up_serves_until_interrupted() -> None:
    """`trailwatch local up` in a child process: prints the exports, answers the AWS API, stops on Ctrl-C."""
    # Only the endpoint: the recorder and the runtime have their own tests (and cost start-up time).
    with local_up("--port", "0", "--no-cloudtrail", "--no-lambda-runtime") as (child, lines):
        (endpoint,) = [ln.split("=", 1)[1].strip() for ln in lines if "export AWS_ENDPOINT_URL=" in ln]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", endpoint)
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        s3.create_bucket(Bucket="local-up-check")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["local-up-check"]
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 0


def test_start_resets_state_between_emulators(local_aws: LocalAWS) -> None:
    """A fresh LocalAWS starts empty, even after the module's emulator held a deployed stack.
    (Last in the module: the module's emulator comes back empty.)"""
    local_aws.stop()
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            in_use = LocalAWS(port=busy.getsockname()[1], lambda_runtime=False, cloudtrail=False)
            with pytest.raises(OSError, match="in use"):
                in_use.start()  # an error, not werkzeug's exit of the process
        with LocalAWS(port=0, lambda_runtime=False, cloudtrail=False) as other:
            client = client_factory(other)
            assert client("s3").list_buckets()["Buckets"] == []
            assert client("cloudformation").list_stacks()["StackSummaries"] == []
    finally:
        local_aws.start()
