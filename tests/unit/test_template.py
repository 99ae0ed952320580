"""main.yaml against the design (README) and the documented AWS rules (docs/aws-behaviours.md).

One base template (decoded once) and small patches of a copy where a test shows that a check catches the
wrong variant (overlapping notifications, missing DependsOn, a GetAtt cycle, a short visibility timeout).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from trailwatch import cfn_template
from trailwatch_processor.alerts import OPERATIONAL_RULE
from trailwatch_processor.config import SEVERITIES, severity_rank

from tests.unit.template_helpers import (
    TEMPLATE_PATH,
    TRAIL_ARN,
    as_list,
    depends_on,
    find_cycle,
    iter_policy_documents,
    key_matches,
    load_template,
    notification_entries,
    notification_overlaps,
    props,
    resources_of_type,
    statement_by_sid,
    statements,
    sub_text,
    visibility_timeout_for,
    visibility_violations,
)

LOG_KEY = (
    "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/26/"
    "123456789012_CloudTrail_us-east-1_20261126T1740Z_ab12cd34.json.gz"
)
GETATT_ALERT_KEY = {"Fn::GetAtt": ["AlertKey", "Arn"]}
DLQ_NAME = {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}
PROCESSOR_NAME = "${AWS::StackName}-processor"


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def template(base: dict[str, Any]) -> dict[str, Any]:
    """A private copy of the base template for tests that patch it."""
    return copy.deepcopy(base)


def selectors(base: dict[str, Any], enabled: bool) -> list[dict[str, Any]]:
    """The trail's advanced event selectors with EnableDataEvents true or false."""
    value = props(base, "Trail")["AdvancedEventSelectors"]
    condition, when_true, when_false = value["Fn::If"]
    assert condition == "DataEventsEnabled"
    return when_true if enabled else when_false


def field(selector: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [f for f in selector["FieldSelectors"] if f["Field"] == name]
    assert len(matches) <= 1, f"{selector['Name']}: field {name} twice"
    return matches[0] if matches else {}


def selector_for(base: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = [s for s in selectors(base, True) if field(s, "resources.type").get("Equals") == [resource_type]]
    assert len(found) == 1, f"one selector for {resource_type} expected, got {len(found)}"
    return found[0]


def unwrap_if(stmts: list[Any], enabled: bool = True) -> list[dict[str, Any]]:
    """Policy statements with each `!If [cond, stmt, !Ref AWS::NoValue]` resolved (condition true/false)."""
    out = []
    for stmt in stmts:
        if set(stmt) == {"Fn::If"}:
            _, when_true, when_false = stmt["Fn::If"]
            stmt = when_true if enabled else when_false
            if stmt == {"Ref": "AWS::NoValue"}:
                continue
        out.append(stmt)
    return out


def role_statements(base: dict[str, Any], enabled: bool = True) -> list[dict[str, Any]]:
    (policy,) = props(base, "ProcessorRole")["Policies"]
    return unwrap_if(statements(policy["PolicyDocument"]), enabled)


def role_statement(base: dict[str, Any], sid: str) -> dict[str, Any]:
    return statement_by_sid({"Statement": role_statements(base)}, sid)


ACCOUNT = "123456789012"


def notification_in_account(template: dict[str, Any]) -> dict[str, Any]:
    """The trail bucket's notification configuration as deployed in ACCOUNT (its !Sub prefixes resolved)."""
    notification = copy.deepcopy(props(template, "TrailBucket")["NotificationConfiguration"])
    for _, entry in notification_entries(notification):
        for rule in entry.get("Filter", {}).get("S3Key", {}).get("Rules", []):
            rule["Value"] = sub_text(rule["Value"]).replace("${AWS::AccountId}", ACCOUNT)
    return notification


# ---------------------------------------------------------------- linters


def test_checkov_skips_are_declared_with_reasons(base: dict[str, Any]) -> None:
    skips = [
        (name, skip)
        for name, res in base["Resources"].items()
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "expected the documented checkov skips in resource Metadata"
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), f"{name}: bad check id {skip['id']!r}"
        assert len(skip.get("comment", "").split()) >= 15, f"{name}: {skip['id']} needs a real reason"


# ---------------------------------------------------------------- parameters and outputs


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("TrailName", "trailwatch"),
        ("EventsTableName", "SecurityEvents"),
        ("MaxReceiveCount", 5),
        ("EnableDataEvents", "true"),
        ("LogFileKmsEncryption", "false"),
        ("SubscribeEmailToLogDelivery", "false"),
        ("FunctionRuntime", "python3.13"),
        ("FunctionArchitecture", "arm64"),
        ("ReservedConcurrency", 0),
    ],
)
def test_parameter_default(base: dict[str, Any], name: str, default: object) -> None:
    assert base["Parameters"][name]["Default"] == default


@pytest.mark.parametrize(
    "name",
    [
        "TrailBucketName", "AlertEmail", "CodeBucket", "CodeKey", "LogRetentionDays", "EventRetentionDays",
        "FunctionMemorySize", "FunctionTimeout",
    ],
)  # fmt: skip
def test_parameter_exists(base: dict[str, Any], name: str) -> None:
    assert name in base["Parameters"]


@pytest.mark.parametrize(
    "name",
    [
        "TrailBucketName", "TrailArn", "AlertTopicArn", "LogDeliveryTopicArn", "LogQueueUrl",
        "DeadLetterQueueUrl", "EventsTableName", "ProcessorFunctionName", "ConfigS3Uri",
    ],
)  # fmt: skip
def test_required_output(base: dict[str, Any], name: str) -> None:
    assert "Value" in base["Outputs"][name]


def test_config_s3_uri_output_is_the_processor_config(base: dict[str, Any]) -> None:
    env = props(base, "ProcessorFunction")["Environment"]["Variables"]
    uri = sub_text(base["Outputs"]["ConfigS3Uri"]["Value"], "Outputs.ConfigS3Uri")
    assert uri == "s3://${TrailBucket}/" + env["CONFIG_KEY"]


def test_no_transform_or_macro(base: dict[str, Any]) -> None:
    """Plain CloudFormation: the local AWS (moto) has no SAM transform or macros."""
    assert "Transform" not in base


# ---------------------------------------------------------------- trail


@pytest.mark.parametrize(
    "flag", ["IsLogging", "IncludeGlobalServiceEvents", "IsMultiRegionTrail", "EnableLogFileValidation"]
)
def test_trail_flag_on(base: dict[str, Any], flag: str) -> None:
    assert props(base, "Trail")[flag] is True


def test_trail_named_by_parameter_and_writes_to_the_bucket(base: dict[str, Any]) -> None:
    trail = props(base, "Trail")
    assert trail["TrailName"] == {"Ref": "TrailName"}
    assert trail["S3BucketName"] == {"Ref": "TrailBucket"}


def test_trail_depends_on_bucket_policy(base: dict[str, Any]) -> None:
    assert "TrailBucketPolicy" in as_list(base["Resources"]["Trail"].get("DependsOn", []))
    assert depends_on(base, "Trail", "TrailBucketPolicy")


def test_trail_without_depends_on_may_precede_bucket_policy(template: dict[str, Any]) -> None:
    del template["Resources"]["Trail"]["DependsOn"]
    assert not depends_on(template, "Trail", "TrailBucketPolicy")


def test_only_advanced_event_selectors(base: dict[str, Any]) -> None:
    """AWS rejects a trail with both EventSelectors and AdvancedEventSelectors."""
    assert "EventSelectors" not in props(base, "Trail")


@pytest.mark.parametrize("enabled", [True, False])
def test_management_events_read_and_write(base: dict[str, Any], enabled: bool) -> None:
    management = [
        s for s in selectors(base, enabled) if field(s, "eventCategory").get("Equals") == ["Management"]
    ]
    assert len(management) == 1
    assert field(management[0], "readOnly") == {}, "a readOnly field would drop reads or writes"


def test_data_events_parameter_switches_data_selectors(base: dict[str, Any]) -> None:
    assert base["Conditions"]["DataEventsEnabled"] == {"Fn::Equals": [{"Ref": "EnableDataEvents"}, "true"]}
    categories_on = {field(s, "eventCategory")["Equals"][0] for s in selectors(base, True)}
    categories_off = {field(s, "eventCategory")["Equals"][0] for s in selectors(base, False)}
    assert (categories_on, categories_off) == ({"Management", "Data"}, {"Management"})


def test_s3_data_events_exclude_trail_bucket(base: dict[str, Any]) -> None:
    arn = field(selector_for(base, "AWS::S3::Object"), "resources.ARN")
    assert [sub_text(v) for v in arn["NotStartsWith"]] == ["arn:${AWS::Partition}:s3:::${TrailBucketName}/"]
    assert props(base, "TrailBucket")["BucketName"] == {"Ref": "TrailBucketName"}


def test_lambda_data_events_exclude_processor(base: dict[str, Any]) -> None:
    arn = field(selector_for(base, "AWS::Lambda::Function"), "resources.ARN")
    (excluded,) = [sub_text(v) for v in arn["NotStartsWith"]]
    function_name = sub_text(props(base, "ProcessorFunction")["FunctionName"])
    assert (
        excluded == "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + function_name
    )


def test_every_cloudtrail_source_arn_is_this_trail(base: dict[str, Any]) -> None:
    found = 0
    for where, doc in iter_policy_documents(base):
        for stmt in statements(doc):
            principal = stmt.get("Principal")
            if not isinstance(principal, dict) or principal.get("Service") != "cloudtrail.amazonaws.com":
                continue
            source = stmt["Condition"]["StringEquals"]["aws:SourceArn"]
            assert sub_text(source, where) == TRAIL_ARN, where
            found += 1
    assert found >= 4  # bucket ACL check, bucket write, key GenerateDataKey*, key DescribeKey


def test_log_file_kms_is_optional(base: dict[str, Any]) -> None:
    assert base["Conditions"]["LogFileKmsEnabled"] == {  # never in attach mode (no trail of ours)
        "Fn::And": [
            {"Fn::Equals": [{"Ref": "Role"}, "home"]},  # nor in a fast path forwarder
            {"Fn::Equals": [{"Ref": "ExistingBucketName"}, ""]},
            {"Fn::Equals": [{"Ref": "LogFileKmsEncryption"}, "true"]},
        ]
    }
    assert base["Resources"]["LogFileKey"]["Condition"] == "LogFileKmsEnabled"
    assert props(base, "Trail")["KMSKeyId"] == {
        "Fn::If": ["LogFileKmsEnabled", {"Fn::GetAtt": ["LogFileKey", "Arn"]}, {"Ref": "AWS::NoValue"}]
    }


def test_log_file_key_lets_cloudtrail_encrypt(base: dict[str, Any]) -> None:
    stmt = statement_by_sid(props(base, "LogFileKey")["KeyPolicy"], "CloudTrailEncryptsLogFiles")
    assert stmt["Action"] == "kms:GenerateDataKey*"
    assert sub_text(stmt["Condition"]["StringLike"]["kms:EncryptionContext:aws:cloudtrail:arn"]) == (
        "arn:${AWS::Partition}:cloudtrail:*:${AWS::AccountId}:trail/*"
    )


def test_log_file_key_lets_cloudtrail_describe(base: dict[str, Any]) -> None:
    stmt = statement_by_sid(props(base, "LogFileKey")["KeyPolicy"], "CloudTrailDescribesKey")
    assert stmt["Action"] == "kms:DescribeKey"


def test_bucket_keys_with_sse_kms_logs_are_covered_by_the_key_policy(base: dict[str, Any]) -> None:
    """With S3 Bucket Keys, CloudTrail needs kms:Decrypt on the log file key (pinned to this trail) to create
    an SSE-KMS trail (InsufficientEncryptionPolicyException otherwise): bucket keys off, or that grant."""
    (rule,) = props(base, "TrailBucket")["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    bucket_keys = rule.get("BucketKeyEnabled") is True
    cloudtrail_decrypts = [
        stmt
        for stmt in statements(props(base, "LogFileKey")["KeyPolicy"])
        if stmt.get("Principal") == {"Service": "cloudtrail.amazonaws.com"}
        and "kms:Decrypt" in as_list(stmt["Action"])
        and sub_text(stmt["Condition"]["StringEquals"]["aws:SourceArn"]) == TRAIL_ARN
    ]
    assert not bucket_keys or cloudtrail_decrypts


def test_processor_decrypts_log_files_only_through_s3_under_this_trails_context(base: dict[str, Any]) -> None:
    """Without bucket keys S3 decrypts under the context CloudTrail encrypted with (aws:cloudtrail:arn =
    this trail); with them the context would be the bucket ARN and this condition would never match."""
    (rule,) = props(base, "TrailBucket")["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule.get("BucketKeyEnabled") is not True
    stmt = role_statement(base, "DecryptLogFilesThroughS3")
    assert stmt["Action"] == "kms:Decrypt"
    assert sub_text(stmt["Resource"]) == "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"
    condition = stmt["Condition"]
    assert sub_text(condition["StringEquals"]["kms:ViaService"]) == "s3.${AWS::Region}.amazonaws.com"
    context = sub_text(condition["StringLike"]["kms:EncryptionContext:aws:cloudtrail:arn"])
    assert context == TRAIL_ARN.replace("${AWS::Region}", "*")


def test_no_policy_names_the_processor_role_as_principal(base: dict[str, Any]) -> None:
    """A role created seconds earlier can be rejected as an invalid principal in a bucket or key policy:
    the role gets its access through its own IAM policy, and the key policies keep the account root."""
    for where, doc in iter_policy_documents(base):
        for stmt in unwrap_if(statements(doc)):
            assert "ProcessorRole" not in json.dumps(stmt.get("Principal", {})), f"{where} {stmt.get('Sid')}"


@pytest.mark.parametrize("key", ["AlertKey", "LogFileKey"])
def test_key_administered_by_the_account(base: dict[str, Any], key: str) -> None:
    """Without the account root statement a key policy locks out IAM (AWS refuses it without a bypass)."""
    stmt = statement_by_sid(props(base, key)["KeyPolicy"], "AccountAdministersKeyThroughIam")
    assert sub_text(stmt["Principal"]["AWS"]) == "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
    assert "Condition" not in stmt


@pytest.mark.parametrize("key", ["AlertKey", "LogFileKey"])
def test_keys_rotate(base: dict[str, Any], key: str) -> None:
    assert props(base, key)["EnableKeyRotation"] is True


# ---------------------------------------------------------------- bucket and bucket policy


@pytest.mark.parametrize(
    "setting", ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"]
)
def test_bucket_public_access_block(base: dict[str, Any], setting: str) -> None:
    assert props(base, "TrailBucket")["PublicAccessBlockConfiguration"][setting] is True


def test_bucket_default_encryption(base: dict[str, Any]) -> None:
    (rule,) = props(base, "TrailBucket")["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}


def test_bucket_versioning(base: dict[str, Any]) -> None:
    assert props(base, "TrailBucket")["VersioningConfiguration"] == {"Status": "Enabled"}


@pytest.mark.parametrize(
    ("resource", "policy"),
    [
        (r, p)
        for r in ("TrailBucket", "EventsTable", "LogFileKey")
        for p in ("DeletionPolicy", "UpdateReplacePolicy")
    ],
)
def test_retained_on_delete_and_replace(base: dict[str, Any], resource: str, policy: str) -> None:
    """Kept on stack deletion and replacement; a failed first creation deletes them (RetainExceptOnCreate),
    so the next deploy does not fail on a leftover bucket, table or key."""
    expected = {"DeletionPolicy": "RetainExceptOnCreate", "UpdateReplacePolicy": "Retain"}[policy]
    assert base["Resources"][resource][policy] == expected


def test_no_resource_is_kept_when_the_first_creation_rolls_back(base: dict[str, Any]) -> None:
    kept = [n for n, r in base["Resources"].items() if r.get("DeletionPolicy") in ("Retain", "Snapshot")]
    assert kept == []


def test_lifecycle_expires_logs_and_noncurrent_versions(base: dict[str, Any]) -> None:
    rules = props(base, "TrailBucket")["LifecycleConfiguration"]["Rules"]
    (logs,) = [r for r in rules if r.get("Prefix") == "AWSLogs/"]
    assert logs["Status"] == "Enabled"
    assert logs["ExpirationInDays"] == {"Ref": "LogRetentionDays"}
    assert logs["NoncurrentVersionExpiration"]["NoncurrentDays"] == {"Ref": "LogRetentionDays"}


def test_lifecycle_cleans_up_the_whole_bucket(base: dict[str, Any]) -> None:
    """Noncurrent versions (config/ too), leftover delete markers and stale multipart uploads expire."""
    rules = props(base, "TrailBucket")["LifecycleConfiguration"]["Rules"]
    (whole,) = [r for r in rules if "Prefix" not in r and "TagFilters" not in r]
    assert whole["NoncurrentVersionExpiration"]["NoncurrentDays"] == {"Ref": "LogRetentionDays"}
    assert whole["ExpiredObjectDeleteMarker"] is True
    assert whole["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] > 0


def test_bucket_policy_denies_insecure_transport(base: dict[str, Any]) -> None:
    stmt = statement_by_sid(props(base, "TrailBucketPolicy")["PolicyDocument"], "DenyInsecureTransport")
    assert (stmt["Effect"], stmt["Principal"], stmt["Action"]) == ("Deny", "*", "s3:*")
    assert stmt["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(sub_text(r) for r in stmt["Resource"]) == [
        "arn:${AWS::Partition}:s3:::${TrailBucket}",
        "arn:${AWS::Partition}:s3:::${TrailBucket}/*",
    ]


def test_bucket_policy_cloudtrail_acl_check(base: dict[str, Any]) -> None:
    stmt = statement_by_sid(props(base, "TrailBucketPolicy")["PolicyDocument"], "CloudTrailAclCheck")
    assert stmt["Action"] == "s3:GetBucketAcl"
    assert sub_text(stmt["Resource"]) == "arn:${AWS::Partition}:s3:::${TrailBucket}"


def test_bucket_policy_cloudtrail_write(base: dict[str, Any]) -> None:
    stmt = statement_by_sid(props(base, "TrailBucketPolicy")["PolicyDocument"], "CloudTrailWrite")
    assert stmt["Action"] == "s3:PutObject"
    assert (
        sub_text(stmt["Resource"]) == "arn:${AWS::Partition}:s3:::${TrailBucket}/AWSLogs/${AWS::AccountId}/*"
    )
    assert stmt["Condition"]["StringEquals"]["s3:x-amz-acl"] == "bucket-owner-full-control"


# ---------------------------------------------------------------- new log file -> topic -> queue


def test_one_notification_to_log_delivery_topic(base: dict[str, Any]) -> None:
    entries = notification_entries(props(base, "TrailBucket")["NotificationConfiguration"])
    assert [(where, e["Topic"], e["Event"]) for where, e in entries] == [
        ("TopicConfigurations[0]", {"Ref": "LogDeliveryTopic"}, "s3:ObjectCreated:*"),
        ("TopicConfigurations[1]", {"Ref": "LogDeliveryTopic"}, "s3:ObjectRemoved:*"),  # test_template_tamper
    ]


@pytest.mark.parametrize(
    ("key", "notified"),
    [
        (LOG_KEY, True),
        ("AWSLogs/123456789012/CloudTrail/eu-west-1/2026/11/26/x.json.gz", True),
        # digest and Insights files end in .json.gz too; they are not event logs
        ("AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2026/11/26/"
         "123456789012_CloudTrail-Digest_us-east-1_trailwatch_us-east-1_20261126T1740Z.json.gz", False),
        ("AWSLogs/123456789012/CloudTrail-Insight/us-east-1/2026/11/26/x.json.gz", False),
        ("AWSLogs/210987654321/CloudTrail/us-east-1/2026/11/26/x.json.gz", False),  # not this account
        ("config/monitored_events.json", False),
        ("config/AWSLogs/x.json.gz", False),
        ("AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/26/partial.json", False),
    ],
)  # fmt: skip
def test_notification_filter(base: dict[str, Any], key: str, notified: bool) -> None:
    entries = notification_entries(notification_in_account(base))
    created = [entry for _, entry in entries if entry["Event"].startswith("s3:ObjectCreated")]
    assert any(key_matches(entry, key) for entry in created) is notified


def test_notifications_do_not_overlap(base: dict[str, Any]) -> None:
    assert notification_overlaps(notification_in_account(base)) == []


@pytest.mark.parametrize(
    ("event", "prefix", "suffix", "overlaps"),
    [
        ("s3:ObjectCreated:Put", "AWSLogs/123456789012/", ".gz", True),
        ("s3:ObjectCreated:*", "", "", True),
        ("s3:ObjectCreated:*", "config/", "", False),
        ("s3:ObjectCreated:*", "AWSLogs/", ".json", False),
        ("s3:ObjectRemoved:*", "AWSLogs/", ".json.gz", True),  # the removal configuration has AWSLogs/<acct>/
        ("s3:ObjectRemoved:*", "config/", "", False),
    ],
)
def test_overlap_check_catches_a_second_configuration(
    template: dict[str, Any], event: str, prefix: str, suffix: str, overlaps: bool
) -> None:
    """A second configuration (e.g. S3 -> SQS directly beside S3 -> SNS) is caught when S3 would reject it."""
    rules = [{"Name": n, "Value": v} for n, v in (("prefix", prefix), ("suffix", suffix)) if v]
    notification = notification_in_account(template)
    entry: dict[str, Any] = {"Event": event, "Queue": {"Fn::GetAtt": ["LogProcessingQueue", "Arn"]}}
    if rules:
        entry["Filter"] = {"S3Key": {"Rules": rules}}
    notification["QueueConfigurations"] = [entry]
    assert bool(notification_overlaps(notification)) is overlaps


def test_bucket_waits_for_topic_policy(base: dict[str, Any]) -> None:
    assert "LogDeliveryTopicPolicy" in as_list(base["Resources"]["TrailBucket"]["DependsOn"])
    assert depends_on(base, "TrailBucket", "LogDeliveryTopicPolicy")


def test_bucket_without_depends_on_may_precede_topic_policy(template: dict[str, Any]) -> None:
    del template["Resources"]["TrailBucket"]["DependsOn"]
    assert not depends_on(template, "TrailBucket", "LogDeliveryTopicPolicy")


def test_no_dependency_cycle(base: dict[str, Any]) -> None:
    assert find_cycle(base) is None


def test_topic_policy_naming_bucket_by_getatt_is_a_cycle(template: dict[str, Any]) -> None:
    stmt = statement_by_sid(
        props(template, "LogDeliveryTopicPolicy")["PolicyDocument"], "TrailBucketPublishes"
    )
    stmt["Condition"]["ArnLike"]["aws:SourceArn"] = {"Fn::GetAtt": ["TrailBucket", "Arn"]}
    assert find_cycle(template) is not None


def test_log_topic_policy_admits_only_the_trail_bucket(base: dict[str, Any]) -> None:
    (stmt,) = statements(props(base, "LogDeliveryTopicPolicy")["PolicyDocument"])
    assert (stmt["Principal"], stmt["Action"]) == ({"Service": "s3.amazonaws.com"}, "sns:Publish")
    assert stmt["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert (
        sub_text(stmt["Condition"]["ArnLike"]["aws:SourceArn"])
        == "arn:${AWS::Partition}:s3:::${TrailBucketName}"
    )


def test_queue_subscribed_with_raw_delivery(base: dict[str, Any]) -> None:
    sub = props(base, "LogDeliveryQueueSubscription")
    assert sub == {
        "TopicArn": {"Ref": "LogDeliveryTopic"},
        "Protocol": "sqs",
        "Endpoint": {"Fn::GetAtt": ["LogProcessingQueue", "Arn"]},
        "RawMessageDelivery": True,
    }


def test_queue_admits_topic_before_subscription(base: dict[str, Any]) -> None:
    assert depends_on(base, "LogDeliveryQueueSubscription", "LogProcessingQueuePolicy")


def test_processor_name_fits_lambda_limit_for_documented_stack_names(base: dict[str, Any]) -> None:
    """Lambda names are at most 64 characters; the template description promises stack names up to 54."""
    name = sub_text(props(base, "ProcessorFunction")["FunctionName"])
    assert "at most 54 characters" in base["Description"]
    assert len(name.replace("${AWS::StackName}", "s" * 54)) <= 64


@pytest.mark.parametrize("queue", ["LogProcessingQueue", "DeadLetterQueue"])
def test_queue_sse_sqs(base: dict[str, Any], queue: str) -> None:
    """SSE-SQS, not alias/aws/sqs (whose policy cannot admit SNS/S3)."""
    p = props(base, queue)
    assert p["SqsManagedSseEnabled"] is True
    assert "KmsMasterKeyId" not in p


def test_queue_redrive_to_dead_letter_queue(base: dict[str, Any]) -> None:
    assert props(base, "LogProcessingQueue")["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }


def test_dead_letter_queue_keeps_messages_14_days(base: dict[str, Any]) -> None:
    assert props(base, "DeadLetterQueue")["MessageRetentionPeriod"] == 1209600


def test_visibility_timeout_at_least_six_times_default_function_timeout(base: dict[str, Any]) -> None:
    default = int(base["Parameters"]["FunctionTimeout"]["Default"])
    assert visibility_timeout_for(base, default) >= 6 * default
    assert props(base, "ProcessorFunction")["Timeout"] == {"Ref": "FunctionTimeout"}


def test_visibility_timeout_holds_for_every_allowed_function_timeout(base: dict[str, Any]) -> None:
    assert visibility_violations(base) == []


@pytest.mark.parametrize(("timeout", "visibility"), [("60", 300), ("900", None)])
def test_visibility_check_catches_short_or_missing_mapping(
    template: dict[str, Any], timeout: str, visibility: int | None
) -> None:
    table = template["Mappings"]["QueueVisibilityTimeout"]["ByFunctionTimeout"]
    if visibility is None:
        del table[timeout]
    else:
        table[timeout] = visibility
    assert visibility_violations(template) == [int(timeout)]


def test_queue_policy_admits_only_log_topic(base: dict[str, Any]) -> None:
    p = props(base, "LogProcessingQueuePolicy")
    assert p["Queues"] == [{"Ref": "LogProcessingQueue"}]
    # Created-trail mode (the default): the attach-mode statements are !If on conditions false there.
    created = cfn_template.Evaluator.for_template(base, {})
    kept = [
        x for x in statements(p["PolicyDocument"]) if "Fn::If" not in x or created.condition(x["Fn::If"][0])
    ]
    (stmt,) = kept
    assert (stmt["Effect"], stmt["Principal"], stmt["Action"]) == (
        "Allow",
        {"Service": "sns.amazonaws.com"},
        "sqs:SendMessage",
    )
    assert stmt["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "LogDeliveryTopic"}}}


# ---------------------------------------------------------------- alerts, key, alarms


def test_alert_email_subscription_keeps_the_severity_floor(base: dict[str, Any]) -> None:
    """Detections at or above EmailMinimumSeverity and every operational alert; what SNS does with it for
    each level is tested in tests/functional/test_email_severity.py."""
    sub = props(base, "AlertEmailSubscription")
    assert (sub["TopicArn"], sub["Protocol"], sub["Endpoint"]) == (
        {"Ref": "AlertTopic"}, "email", {"Ref": "AlertEmail"}
    )  # fmt: skip
    assert sub["FilterPolicyScope"] == "MessageAttributes"
    branches = sub["FilterPolicy"]["$or"]
    assert {"rule": [OPERATIONAL_RULE]} in branches
    # Always present, never added or removed by an update (cloudformation-coverage-roadmap#1840).
    # Only IsHome: a fast path forwarder stack has no pipeline at all; every home stack has it.
    assert base["Resources"]["AlertEmailSubscription"].get("Condition") == "IsHome"


def test_no_filter_branch_relies_on_an_absent_attribute(base: dict[str, Any]) -> None:
    """`exists: false` matches only messages that carry some attribute: never an alarm notification."""
    for name, res in resources_of_type(base, "AWS::SNS::Subscription").items():
        assert '"exists": false' not in json.dumps(res["Properties"].get("FilterPolicy", {})), name


def test_alarms_reach_the_mailbox_without_a_filter_policy(base: dict[str, Any]) -> None:
    """CloudWatch alarm notifications carry no message attributes, so they match no filter policy at all:
    each alarm's topic has an email subscription to AlertEmail without FilterPolicy."""
    alarms = resources_of_type(base, "AWS::CloudWatch::Alarm")
    assert alarms
    subscriptions = resources_of_type(base, "AWS::SNS::Subscription").values()
    for name, alarm in alarms.items():
        for action in alarm["Properties"]["AlarmActions"] + alarm["Properties"].get("OKActions", []):
            mailed = [
                s
                for s in subscriptions
                if s["Properties"]["TopicArn"] == action
                and s["Properties"]["Protocol"] == "email"
                and s["Properties"]["Endpoint"] == {"Ref": "AlertEmail"}
                and "FilterPolicy" not in s["Properties"]
                and s.get("Condition") in (None, "IsHome")  # in every home stack
            ]
            assert mailed, f"{name}: {action} has no unfiltered email subscription"


def test_alarm_topic_is_an_output(base: dict[str, Any]) -> None:
    assert base["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}


def test_email_minimum_severity_uses_the_processors_severities(base: dict[str, Any]) -> None:
    """Each level mails itself and every higher severity, in the processor's order; info (every alert) is
    the default."""
    parameter = base["Parameters"]["EmailMinimumSeverity"]
    assert parameter["AllowedValues"] == list(SEVERITIES)
    assert parameter["Default"] == "info"
    mapping = base["Mappings"]["SeveritiesAtLeast"]
    assert set(mapping) == set(SEVERITIES)
    for level, row in mapping.items():
        assert row == {"Mailed": [s for s in SEVERITIES if severity_rank(s) >= severity_rank(level)]}


def test_log_delivery_email_subscription_is_optional(base: dict[str, Any]) -> None:
    res = base["Resources"]["LogDeliveryEmailSubscription"]
    assert res["Condition"] == "EmailLogDelivery"
    assert base["Conditions"]["EmailLogDelivery"] == {
        "Fn::And": [
            {"Fn::Equals": [{"Ref": "Role"}, "home"]},
            {"Fn::Equals": [{"Ref": "SubscribeEmailToLogDelivery"}, "true"]},
        ]
    }
    assert res["Properties"]["TopicArn"] == {"Ref": "LogDeliveryTopic"}
    assert res["Properties"]["Endpoint"] == {"Ref": "AlertEmail"}


@pytest.mark.parametrize("topic", ["LogDeliveryTopic", "AlertTopic", "AlarmTopic"])
def test_topic_encrypted_with_customer_managed_key(base: dict[str, Any], topic: str) -> None:
    assert props(base, topic)["KmsMasterKeyId"] == GETATT_ALERT_KEY
    assert base["Resources"]["AlertKey"]["Type"] == "AWS::KMS::Key"


@pytest.mark.parametrize(
    ("sid", "service", "source_arn"),
    [
        ("S3PublishesNewLogFiles", "s3.amazonaws.com", "arn:${AWS::Partition}:s3:::${TrailBucketName}"),
        (
            "CloudWatchAlarmsPublishAlerts",
            "cloudwatch.amazonaws.com",
            "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-*",
        ),
    ],
)
def test_alert_key_admits_publishers(base: dict[str, Any], sid: str, service: str, source_arn: str) -> None:
    stmt = statement_by_sid(props(base, "AlertKey")["KeyPolicy"], sid)
    assert stmt["Principal"] == {"Service": service}
    assert set(as_list(stmt["Action"])) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    assert stmt["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert sub_text(stmt["Condition"]["ArnLike"]["aws:SourceArn"]) == source_arn


def test_alert_key_admits_logs_for_processor_log_group_only(base: dict[str, Any]) -> None:
    stmt = statement_by_sid(props(base, "AlertKey")["KeyPolicy"], "CloudWatchLogsEncryptsProcessorLogs")
    arn = sub_text(stmt["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"])
    log_group = sub_text(props(base, "ProcessorLogGroup")["LogGroupName"])
    assert arn == "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:" + log_group
    assert props(base, "ProcessorLogGroup")["KmsKeyId"] == GETATT_ALERT_KEY


def test_alarm_topic_policy_admits_stack_alarms(base: dict[str, Any]) -> None:
    (stmt,) = statements(props(base, "AlarmTopicPolicy")["PolicyDocument"])
    assert (stmt["Principal"], stmt["Action"]) == ({"Service": "cloudwatch.amazonaws.com"}, "sns:Publish")
    assert stmt["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    key_stmt = statement_by_sid(props(base, "AlertKey")["KeyPolicy"], "CloudWatchAlarmsPublishAlerts")
    assert stmt["Condition"]["ArnLike"] == key_stmt["Condition"]["ArnLike"]


@pytest.mark.parametrize(
    ("alarm", "namespace", "metric", "dimension"),
    [
        ("DeadLetterQueueAlarm", "AWS/SQS", "ApproximateNumberOfMessagesVisible", DLQ_NAME),
        ("ProcessorErrorsAlarm", "AWS/Lambda", "Errors", {"Ref": "ProcessorFunction"}),
    ],
)  # fmt: skip
def test_alarm_notifies_alarm_topic(
    base: dict[str, Any], alarm: str, namespace: str, metric: str, dimension: dict[str, Any]
) -> None:
    p = props(base, alarm)
    assert (p["Namespace"], p["MetricName"]) == (namespace, metric)
    assert [d["Value"] for d in p["Dimensions"]] == [dimension]
    assert (p["ComparisonOperator"], p["Threshold"]) == ("GreaterThanThreshold", 0)
    assert p["AlarmActions"] == p["OKActions"] == [{"Ref": "AlarmTopic"}]


def test_alarm_names_fall_under_the_key_and_topic_pattern(base: dict[str, Any]) -> None:
    """Key and topic admit alarms named ${AWS::StackName}-*; an alarm named otherwise could not publish."""
    alarms = resources_of_type(base, "AWS::CloudWatch::Alarm")
    assert alarms
    for name, res in alarms.items():
        assert sub_text(res["Properties"]["AlarmName"], name).startswith("${AWS::StackName}-")


# ---------------------------------------------------------------- events table


def test_table_named_by_parameter(base: dict[str, Any]) -> None:
    assert props(base, "EventsTable")["TableName"] == {"Ref": "EventsTableName"}


def test_table_partition_key(base: dict[str, Any]) -> None:
    assert props(base, "EventsTable")["KeySchema"] == [{"AttributeName": "EventId", "KeyType": "HASH"}]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("BillingMode", "PAY_PER_REQUEST"),
        ("PointInTimeRecoverySpecification", {"PointInTimeRecoveryEnabled": True}),
        ("TimeToLiveSpecification", {"AttributeName": "expires_at", "Enabled": True}),
    ],
)
def test_table_setting(base: dict[str, Any], setting: str, expected: object) -> None:
    assert props(base, "EventsTable")[setting] == expected


def test_table_encrypted_at_rest_with_kms(base: dict[str, Any]) -> None:
    assert props(base, "EventsTable")["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}


@pytest.mark.parametrize(("index", "partition"), [("ByDay", "event_day"), ("ByRule", "rule_id")])
def test_table_index(base: dict[str, Any], index: str, partition: str) -> None:
    (gsi,) = [g for g in props(base, "EventsTable")["GlobalSecondaryIndexes"] if g["IndexName"] == index]
    assert gsi["KeySchema"] == [
        {"AttributeName": partition, "KeyType": "HASH"},
        {"AttributeName": "event_time", "KeyType": "RANGE"},
    ]
    assert gsi["Projection"] == {"ProjectionType": "ALL"}


def test_table_defines_exactly_the_key_attributes(base: dict[str, Any]) -> None:
    """AWS rejects attribute definitions that no key schema uses, and keys without a definition."""
    table = props(base, "EventsTable")
    defined = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    schemas = [table["KeySchema"], *(g["KeySchema"] for g in table["GlobalSecondaryIndexes"])]
    used = {k["AttributeName"] for schema in schemas for k in schema}
    assert set(defined) == used
    assert set(defined.values()) == {"S"}


# ---------------------------------------------------------------- processor


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("Handler", "trailwatch_processor.handler.handler"),
        ("Runtime", {"Ref": "FunctionRuntime"}),
        ("Architectures", [{"Ref": "FunctionArchitecture"}]),
        ("MemorySize", {"Ref": "FunctionMemorySize"}),
        ("Timeout", {"Ref": "FunctionTimeout"}),
        ("Role", {"Fn::GetAtt": ["ProcessorRole", "Arn"]}),
        ("Code", {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}),
    ],
)
def test_function_setting(base: dict[str, Any], setting: str, expected: object) -> None:
    assert props(base, "ProcessorFunction")[setting] == expected


def test_reserved_concurrency_zero_means_unreserved(base: dict[str, Any]) -> None:
    assert props(base, "ProcessorFunction")["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert base["Conditions"]["HasReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, 0]}]
    }
    assert base["Parameters"]["ReservedConcurrency"]["MinValue"] == 0


def test_event_source_concurrency_capped_at_reserved_concurrency(base: dict[str, Any]) -> None:
    assert props(base, "ProcessorEventSourceMapping")["ScalingConfig"] == {
        "Fn::If": [
            "HasReservedConcurrency",
            {"MaximumConcurrency": {"Ref": "ReservedConcurrency"}},
            {"Ref": "AWS::NoValue"},
        ]
    }


def test_reserved_concurrency_of_one_is_refused(base: dict[str, Any]) -> None:
    """SQS MaximumConcurrency is at least 2, so a reserved concurrency of 1 must fail before any resource."""
    (assertion,) = base["Rules"]["ReservedConcurrencyIsZeroOrAtLeastTwo"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, "1"]}]}


def test_function_environment(base: dict[str, Any]) -> None:
    assert props(base, "ProcessorFunction")["Environment"]["Variables"] == {
        "EVENTS_TABLE": {"Ref": "EventsTable"},
        "ALERT_TOPIC_ARN": {"Ref": "AlertTopic"},
        "CONFIG_BUCKET": {"Ref": "TrailBucket"},
        "CONFIG_KEY": "config/monitored_events.json",
        "RETENTION_DAYS": {"Ref": "EventRetentionDays"},
        "LOG_LEVEL": {"Ref": "LogLevel"},
        "MAX_RECEIVE_COUNT": {"Ref": "MaxReceiveCount"},
        "SLACK_QUEUE_ARN": {"Fn::If": ["HasSlackOutput", {"Fn::GetAtt": ["SlackOutputQueue", "Arn"]}, ""]},
        "SLACK_SECRET_ARN": {"Ref": "SlackSecretArn"},
        "WEBHOOK_QUEUE_ARN": {
            "Fn::If": ["HasWebhookOutput", {"Fn::GetAtt": ["WebhookOutputQueue", "Arn"]}, ""]
        },
        "WEBHOOK_SECRET_ARN": {"Ref": "WebhookSecretArn"},
        "ALARM_TOPIC_ARN": {"Ref": "AlarmTopic"},  # output delivery failures (test_template_outputs)
        "NOISE_QUEUE_URL": {"Ref": "LogProcessingQueue"},  # noise control: dedup window-close messages
        "HUNT_QUEUE_ARN": {"Fn::GetAtt": ["HuntQueue", "Arn"]},  # test_template_hunt
        "LOG_BUCKET_OWNER": {  # attach mode only (test_template_attach)
            "Fn::If": [
                "AttachMode",
                {
                    "Fn::If": [
                        "HasExistingBucketAccount",
                        {"Ref": "ExistingBucketAccount"},
                        {"Ref": "AWS::AccountId"},
                    ]
                },
                {"Ref": "AWS::NoValue"},
            ]
        },
    }


def test_log_group_is_the_function_log_group_with_retention(base: dict[str, Any]) -> None:
    p = props(base, "ProcessorLogGroup")
    assert sub_text(p["LogGroupName"]) == "/aws/lambda/" + sub_text(
        props(base, "ProcessorFunction")["FunctionName"]
    )
    assert p["RetentionInDays"] == {"Ref": "FunctionLogRetentionDays"}
    assert depends_on(base, "ProcessorFunction", "ProcessorLogGroup")


def test_event_source_mapping_reports_batch_item_failures(base: dict[str, Any]) -> None:
    p = props(base, "ProcessorEventSourceMapping")
    assert p["EventSourceArn"] == {"Fn::GetAtt": ["LogProcessingQueue", "Arn"]}
    assert p["FunctionName"] == {"Ref": "ProcessorFunction"}
    assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_role_assumed_by_lambda_only(base: dict[str, Any]) -> None:
    (stmt,) = statements(props(base, "ProcessorRole")["AssumeRolePolicyDocument"])
    assert (stmt["Principal"], stmt["Action"]) == ({"Service": "lambda.amazonaws.com"}, "sts:AssumeRole")


LOG_GROUP_ARN = (
    "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/" + PROCESSOR_NAME
)


@pytest.mark.parametrize(
    ("sid", "actions", "resources"),
    [
        ("WriteOwnLogs", {"logs:CreateLogStream", "logs:PutLogEvents"}, [LOG_GROUP_ARN + ":*"]),
        (
            "ConsumeLogProcessingQueue",
            {
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            },
            [{"Fn::GetAtt": ["LogProcessingQueue", "Arn"]}],
        ),
        (
            "ReadLogFilesAndConfig",
            {"s3:GetObject"},
            [
                "arn:${AWS::Partition}:s3:::${TrailBucketName}/AWSLogs/*",
                "arn:${AWS::Partition}:s3:::${TrailBucketName}/config/*",
            ],
        ),
        ("MissingConfigIsNotFound", {"s3:ListBucket"}, ["arn:${AWS::Partition}:s3:::${TrailBucketName}"]),
        (
            "StoreEvents",
            {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"},
            [{"Fn::GetAtt": ["EventsTable", "Arn"]}, "${EventsTable.Arn}/index/*"],
        ),
        ("PublishAlerts", {"sns:Publish"}, [{"Ref": "AlertTopic"}]),
        ("UseAlertTopicKey", {"kms:GenerateDataKey", "kms:Decrypt"}, [GETATT_ALERT_KEY]),
    ],
)
def test_role_permission(base: dict[str, Any], sid: str, actions: set[str], resources: list[Any]) -> None:
    stmt = role_statement(base, sid)
    assert stmt["Effect"] == "Allow"
    assert set(as_list(stmt["Action"])) == actions
    got = [
        r if isinstance(r, dict) and "Fn::Sub" not in r else sub_text(r) for r in as_list(stmt["Resource"])
    ]
    assert got == resources


def test_role_uses_topic_key_for_the_alert_topic_only(base: dict[str, Any]) -> None:
    condition = role_statement(base, "UseAlertTopicKey")["Condition"]
    assert condition == {"StringEquals": {"kms:EncryptionContext:aws:sns:topicArn": {"Ref": "AlertTopic"}}}


def test_role_has_exactly_the_listed_statements(base: dict[str, Any]) -> None:
    assert len(props(base, "ProcessorRole")["Policies"]) == 1
    assert {s["Sid"] for s in role_statements(base)} == {
        "WriteOwnLogs", "ConsumeLogProcessingQueue", "ReadLogFilesAndConfig", "MissingConfigIsNotFound",
        "StoreEvents", "PublishAlerts", "UseAlertTopicKey", "DecryptLogFilesThroughS3",
        "ReadNotifiedLogVersions", "DetectOverwrittenLogs",  # test_template_tamper.py
    }  # fmt: skip
    assert "ManagedPolicyArns" not in props(base, "ProcessorRole")


def test_no_wildcard_resource_or_action_outside_key_policies(base: dict[str, Any]) -> None:
    """In a key policy "*" means the key itself (AWS's required form); elsewhere it would grant everything."""
    for where, doc in iter_policy_documents(base):
        for stmt in unwrap_if(statements(doc)):
            assert "*" not in as_list(stmt.get("Action", [])) or ".KeyPolicy" in where, where
            if ".KeyPolicy" in where or "AssumeRolePolicyDocument" in where:
                continue
            assert "*" not in as_list(stmt["Resource"]), f"{where} {stmt.get('Sid')}"


def test_role_grants_only_the_dynamodb_calls_the_processor_makes() -> None:
    """Least privilege: each dynamodb action matches a call in the processor's code (and the reverse)."""
    import pathlib

    code = "\n".join(p.read_text() for p in (pathlib.Path(TEMPLATE_PATH).parent / "lambda_src").rglob("*.py"))
    called = {
        "dynamodb:" + "".join(part.title() for part in name.split("_"))
        for name in re.findall(
            r"\.(put_item|update_item|get_item|query|scan|delete_item|batch_write_item|batch_get_item)\(",
            code,
        )
    }
    granted = {a for a in as_list(role_statement(load_template(), "StoreEvents")["Action"])}
    # The live path's own statement covers its batch read: it must not depend on the hunt block's grant.
    assert "dynamodb:BatchGetItem" in granted
    # the hunt block's grants on the same table (test_template_hunt): batch reads and marker writes
    hunt = statement_by_sid(props(load_template(), "HuntPolicy")["PolicyDocument"], "HuntState")
    granted |= set(as_list(hunt["Action"]))
    assert granted == called


# ---------------------------------------------------------------- names AWS rejects

BAD_BUCKETS = [
    "a..b", "192.168.5.4", "xn--trail-logs", "sthree-trail-logs", "amzn-s3-demo-trail", "trail-logs-s3alias",
    "trail-logs--ol-s3", "trail-logs.mrap", "trail-logs--x-s3", "trail-logs--table-s3", "Trail-Logs",
    "ab", "a" * 64, "-trail-logs", "trail-logs-", "trail_logs", "trail-logs\n",
]  # fmt: skip
GOOD_BUCKETS = ["my-trail-bucket-123456789012", "abc", "a" * 63, "a.b-c.d", "xn-trail", "192.168.5.4a"]
BAD_TRAILS = [
    "a..b", "my._trail", "my--trail", "my_-trail", "ab", "a" * 129, "_trail", "trail-", "192.168.5.4",
    "my trail", "trail\n", "tráil",
]  # fmt: skip
GOOD_TRAILS = ["trailwatch", "my_trail.v2-x", "a1b", "a" * 128, "10.0.0.1a", "Trail-2"]
BAD_EMAILS = ["me@example.com\n", "me@example.com\nBcc: x@example.org", "me @example.com", "me@localhost"]
GOOD_EMAILS = ["me@example.com", "sec.ops+tw@mail.example.org"]


def _name_cases() -> list[Any]:
    from trailwatch import deploy

    groups = [
        ("TrailBucketName", deploy.bucket_name_problem, BAD_BUCKETS, GOOD_BUCKETS),
        ("TrailName", deploy.trail_name_problem, BAD_TRAILS, GOOD_TRAILS),
        ("AlertEmail", deploy.email_problem, BAD_EMAILS, GOOD_EMAILS),
    ]
    return [
        pytest.param(param, check, value, ok, id=f"{param}-{value!r}-{'ok' if ok else 'rejected'}")
        for param, check, bad, good in groups
        for ok, values in ((False, bad), (True, good))
        for value in values
    ]


@pytest.mark.parametrize(("parameter", "check", "value", "accepted"), _name_cases())
def test_names_are_accepted_as_aws_accepts_them(
    base: dict[str, Any], parameter: str, check: Any, value: str, accepted: bool
) -> None:
    """The template's AllowedPattern (as CloudFormation and cfn-lint apply it: a search from the start)
    and `trailwatch deploy`'s own check agree with S3's, CloudTrail's and SNS's documented rules."""
    pattern = base["Parameters"][parameter]["AllowedPattern"]
    assert bool(re.match(pattern, value)) is accepted
    assert (check(value) is None) is accepted
