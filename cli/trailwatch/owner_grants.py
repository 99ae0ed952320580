"""`trailwatch owner-grants`: what the existing trail bucket's owner must grant an attach-mode stack.

Generated from the deployed stack's outputs and parameters, printed for review, or applied with the
owner's credentials. Applying MERGES: the bucket policy keeps every other statement (ours are replaced by
Sid), and S3's notification configuration is read and written back whole with ``EventBridgeConfiguration``
added (``PutBucketNotificationConfiguration`` replaces everything, so nothing existing may be dropped).
In s3-eventbridge mode it also creates the owner's rule forwarding the bucket's log file events to the
stack's default bus when that bus is in another account or region (the stack's bus policy admits it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SID_PREFIX = "TrailwatchRead"
NOTIFICATION_KEYS = (
    "TopicConfigurations",
    "QueueConfigurations",
    "LambdaFunctionConfigurations",
    "EventBridgeConfiguration",
)


@dataclass(frozen=True)
class Attachment:
    """The attach-mode facts the grants are made of (from the stack's parameters and outputs)."""

    bucket: str
    prefix: str  # "" or ending in "/"
    role_arn: str  # the processor's role
    monitoring_account: str
    monitoring_region: str
    kms_key_arn: str | None = None
    notification: str = "s3-eventbridge"  # or "trail-sns"
    trail_topic_arn: str | None = None
    partition: str = "aws"

    @classmethod
    def from_stack(cls, parameters: dict[str, str], outputs: dict[str, str], region: str) -> Attachment:
        role = outputs["ProcessorRoleArn"]
        return cls(
            bucket=parameters["ExistingBucketName"],
            prefix=parameters.get("LogKeyPrefix", ""),
            role_arn=role,
            monitoring_account=role.split(":")[4],
            monitoring_region=region,
            kms_key_arn=parameters.get("ExistingLogFileKmsKeyArn") or None,
            notification=parameters.get("NotificationSource") or "s3-eventbridge",
            trail_topic_arn=parameters.get("TrailTopicArn") or None,
            partition=role.split(":")[1],
        )


def bucket_statements(a: Attachment) -> list[dict[str, Any]]:
    """Read the log files (every version) and list versions under <prefix>AWSLogs/, for the role only."""
    bucket_arn = f"arn:{a.partition}:s3:::{a.bucket}"
    return [
        {
            "Sid": f"{SID_PREFIX}Logs",
            "Effect": "Allow",
            "Principal": {"AWS": a.role_arn},
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": f"{bucket_arn}/{a.prefix}AWSLogs/*",
        },
        {
            "Sid": f"{SID_PREFIX}Versions",
            "Effect": "Allow",
            "Principal": {"AWS": a.role_arn},
            "Action": "s3:ListBucketVersions",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": f"{a.prefix}AWSLogs/*"}},
        },
    ]


def kms_statement(a: Attachment, bucket_region: str) -> dict[str, Any] | None:
    """Decrypt through S3 of the bucket's region only; None for SSE-S3 log files."""
    if not a.kms_key_arn:
        return None
    return {
        "Sid": f"{SID_PREFIX}Decrypt",
        "Effect": "Allow",
        "Principal": {"AWS": a.role_arn},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{bucket_region}.amazonaws.com"}},
    }


def topic_statement(a: Attachment) -> dict[str, Any] | None:
    """trail-sns: the monitoring account may subscribe its queue to the trail's topic."""
    if a.notification != "trail-sns" or not a.trail_topic_arn:
        return None
    return {
        "Sid": f"{SID_PREFIX}Subscribe",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{a.partition}:iam::{a.monitoring_account}:root"},
        "Action": "sns:Subscribe",
        "Resource": a.trail_topic_arn,
        "Condition": {"StringEquals": {"sns:Protocol": "sqs"}},
    }


def forwarding_rule(a: Attachment) -> dict[str, Any] | None:
    """s3-eventbridge: the owner's rule (bucket's region, default bus) forwarding to our default bus."""
    if a.notification != "s3-eventbridge":
        return None
    return {
        "Name": f"trailwatch-forward-{a.bucket}"[:64],
        "EventPattern": {
            "source": ["aws.s3"],
            "detail-type": ["Object Created", "Object Deleted"],
            "detail": {
                "bucket": {"name": [a.bucket]},
                "object": {"key": [{"prefix": f"{a.prefix}AWSLogs/"}]},
            },
        },
        "Target": (
            f"arn:{a.partition}:events:{a.monitoring_region}:{a.monitoring_account}:event-bus/default"
        ),
    }


def needs_forwarding(a: Attachment, owner_account: str, bucket_region: str) -> bool:
    """S3 puts the bucket's events on the owner's default bus of the bucket's region: a rule there must
    forward them unless that bus is the stack's own (same account and region)."""
    same_bus = owner_account == a.monitoring_account and bucket_region == a.monitoring_region
    return a.notification == "s3-eventbridge" and not same_bus


def forwarding_role_documents(a: Attachment) -> tuple[dict[str, Any], dict[str, Any]]:
    """The trust and permission policies of the role EventBridge uses to put on our bus (AWS requires a
    role for an event bus target in another region, and recommends one for any event bus target)."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    target = (forwarding_rule(a) or {}).get("Target", "")
    permissions = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": target}],
    }
    return trust, permissions


def ensure_forwarding_role(iam: Any, a: Attachment) -> str:
    """The owner's role for the forwarding rule's target (created, or its policies put again)."""
    rule = forwarding_rule(a) or {}
    name = str(rule.get("Name", "trailwatch-forward"))[:64]
    trust, permissions = forwarding_role_documents(a)
    try:
        arn = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description="trailwatch: EventBridge forwards the trail bucket's log file events",
        )["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="put-events", PolicyDocument=json.dumps(permissions))
    return str(arn)


def apply_forwarding_rule(events: Any, a: Attachment, role_arn: str | None = None) -> str | None:
    """Create (or update: PutRule and PutTargets are idempotent) the owner's forwarding rule."""
    rule = forwarding_rule(a)
    if rule is None:
        return None
    events.put_rule(
        Name=rule["Name"],
        EventPattern=json.dumps(rule["EventPattern"]),
        State="ENABLED",
        Description="trailwatch: the trail bucket's log file events, to the monitoring account",
    )
    target = {"Id": "trailwatch", "Arn": rule["Target"], **({"RoleArn": role_arn} if role_arn else {})}
    events.put_targets(Rule=rule["Name"], Targets=[target])
    return f"rule {rule['Name']}: forwards the bucket's log file events to {rule['Target']}"


def merge_statements(policy_text: str | None, statements: list[dict[str, Any]]) -> dict[str, Any]:
    """The policy with ``statements`` added; a statement of the same Sid is replaced, all others kept."""
    policy = json.loads(policy_text) if policy_text else {"Version": "2012-10-17", "Statement": []}
    existing = policy.get("Statement", [])
    existing = [existing] if isinstance(existing, dict) else list(existing)
    ours = {s["Sid"] for s in statements}
    policy["Statement"] = [s for s in existing if s.get("Sid") not in ours] + statements
    return policy


def with_eventbridge(configuration: dict[str, Any]) -> dict[str, Any]:
    """The bucket's notification configuration (as GetBucketNotificationConfiguration returns it) with S3's
    EventBridge destination added; every other destination is returned unchanged."""
    merged = {key: configuration[key] for key in NOTIFICATION_KEYS if key in configuration}
    merged["EventBridgeConfiguration"] = {}
    return merged


def apply(
    s3: Any,
    kms: Any | None,
    sns: Any | None,
    a: Attachment,
    bucket_region: str,
    events: Any | None = None,
    owner_account: str | None = None,
    iam: Any | None = None,
) -> list[str]:
    """Apply the grants with the owner's clients; returns what was done (one line each). With `events`
    (the owner's EventBridge client in the bucket's region) and `owner_account`, the forwarding rule too
    when the stack's bus is elsewhere."""
    done: list[str] = []
    try:
        current = s3.get_bucket_policy(Bucket=a.bucket)["Policy"]
    except s3.exceptions.ClientError as err:
        if err.response.get("Error", {}).get("Code") != "NoSuchBucketPolicy":
            raise
        current = None
    s3.put_bucket_policy(Bucket=a.bucket, Policy=json.dumps(merge_statements(current, bucket_statements(a))))
    done.append(f"bucket policy of {a.bucket}: read statements merged")
    if a.notification == "s3-eventbridge":
        configuration = s3.get_bucket_notification_configuration(Bucket=a.bucket)
        if "EventBridgeConfiguration" not in configuration:
            s3.put_bucket_notification_configuration(
                Bucket=a.bucket, NotificationConfiguration=with_eventbridge(configuration)
            )
            done.append(f"notifications of {a.bucket}: EventBridge added, existing destinations kept")
    if events is not None and owner_account and needs_forwarding(a, owner_account, bucket_region):
        role = ensure_forwarding_role(iam, a) if iam is not None else None
        line = apply_forwarding_rule(events, a, role)
        if line:
            done.append(line)
    statement = kms_statement(a, bucket_region)
    if statement and kms is not None:
        policy = kms.get_key_policy(KeyId=a.kms_key_arn, PolicyName="default")["Policy"]
        merged = json.dumps(merge_statements(policy, [statement]))
        kms.put_key_policy(KeyId=a.kms_key_arn, PolicyName="default", Policy=merged)
        done.append(f"key policy of {a.kms_key_arn}: decrypt statement merged")
    statement = topic_statement(a)
    if statement and sns is not None and a.trail_topic_arn:
        attrs = sns.get_topic_attributes(TopicArn=a.trail_topic_arn)["Attributes"]
        sns.set_topic_attributes(
            TopicArn=a.trail_topic_arn,
            AttributeName="Policy",
            AttributeValue=json.dumps(merge_statements(attrs.get("Policy"), [statement])),
        )
        done.append(f"topic policy of {a.trail_topic_arn}: subscribe statement merged")
    return done


def grants_document(a: Attachment, bucket_region: str) -> dict[str, Any]:
    """Everything the owner must grant, as one reviewable JSON document."""
    doc: dict[str, Any] = {"BucketPolicyStatements": bucket_statements(a)}
    if a.notification == "s3-eventbridge":
        doc["BucketNotification"] = "add EventBridgeConfiguration (keep every existing destination)"
        trust, permissions = forwarding_role_documents(a)
        doc["ForwardingRule"] = {
            "Region": bucket_region,
            **(forwarding_rule(a) or {}),
            "TargetRole": {"AssumeRolePolicyDocument": trust, "Policy": permissions},
        }
    for name, statement in (("KmsKeyPolicyStatement", kms_statement(a, bucket_region)),
                            ("TopicPolicyStatement", topic_statement(a))):  # fmt: skip
        if statement:
            doc[name] = statement
    return doc


def run_owner_grants(aws: Any, ui: Any, *, owner_profile: str | None, apply_: bool) -> int:
    """Print the grants of the deployed attach-mode stack; with ``apply_``, apply them as the owner."""
    import boto3

    from trailwatch import stack
    from trailwatch.errors import UsageError

    deployed = stack.require_stack(aws, aws.options.stack_name)
    parameters = stack.stack_parameters(deployed)
    if not parameters.get("ExistingBucketName"):
        raise UsageError("The stack is not in attach mode (deploy it with --use-bucket NAME).")
    a = Attachment.from_stack(parameters, stack.stack_outputs(deployed), aws.region)
    region = parameters.get("ExistingBucketRegion") or aws.region
    if not apply_:
        document = grants_document(a, region)
        if ui.json_mode:
            ui.json(document)
        else:
            print(json.dumps(document, indent=2))
        return 0
    if not owner_profile:
        raise UsageError("--apply needs --owner-profile (the bucket owner's credentials).")
    owner = boto3.Session(profile_name=owner_profile, region_name=region)
    endpoint = aws.endpoint_url

    def client(name: str, region_name: str = region) -> Any:
        return owner.client(name, region_name=region_name, endpoint_url=endpoint)

    # KMS and SNS answer for their own region's resources: the key's and the topic's, from their ARNs.
    kms_region = a.kms_key_arn.split(":")[3] if (a.kms_key_arn or "").startswith("arn:") else region
    topic_region = a.trail_topic_arn.split(":")[3] if a.trail_topic_arn else region
    owner_account = client("sts").get_caller_identity()["Account"]
    if parameters.get("ExistingBucketAccount") and parameters["ExistingBucketAccount"] != owner_account:
        raise UsageError(
            f"--owner-profile {owner_profile} is account {owner_account}, but the bucket's owner is "
            f"{parameters['ExistingBucketAccount']}: use that account's credentials."
        )
    kms, sns = client("kms", kms_region), client("sns", topic_region)
    done = apply(
        client("s3"),
        kms,
        sns,
        a,
        region,
        events=client("events"),
        owner_account=owner_account,
        iam=client("iam"),
    )
    for line in done:
        ui.info(line)
    return 0
