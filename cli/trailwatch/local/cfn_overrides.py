"""Properties moto 5.2.1's own models ignore, for the types main.yaml uses (`AWS::S3::Bucket`,
`AWS::SQS::Queue`, `AWS::KMS::Key`, `AWS::Logs::LogGroup`, `AWS::IAM::Role`, `AWS::DynamoDB::Table`,
`AWS::Lambda::Function`, `AWS::Lambda::EventSourceMapping`): each class calls moto's original model, then
applies the missing properties through the backend, and replaces the original in moto's model map.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from moto.awslambda.models import EventSourceMapping as MotoEventSourceMapping
from moto.awslambda.models import LambdaFunction as MotoFunction
from moto.core.common_models import CloudFormationModel
from moto.dynamodb.models.table import Table as MotoTable
from moto.iam.models import Role as MotoRole
from moto.kms.models import Key as MotoKey
from moto.logs.models import LogGroup as MotoLogGroup
from moto.s3.models import FakeBucket
from moto.sqs.models import Queue as MotoQueue

from trailwatch.cfn_template import scalar
from trailwatch.local.cfn_common import Cfn, Json, moto_backend, queue_name, warn

# ---------------------------------------------------------------- types moto has, completed


class _Override(Cfn):
    """Calls moto's model (`ORIGINAL`) and then applies what it leaves out (`_apply`)."""

    ORIGINAL: ClassVar[type[CloudFormationModel]]
    HANDLED: ClassVar[set[str]] = set()

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.ORIGINAL.cloudformation_type()

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.ORIGINAL.cloudformation_name_type()

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return cls.ORIGINAL.has_cfn_attr(attr)

    @classmethod
    def _for_original(cls, cloudformation_json: Json) -> Json:
        """The template JSON as moto's model should see it: its properties as `_original_props` gives them."""
        props = cls._original_props(dict(cls._props(cloudformation_json)))
        return {**cloudformation_json, "Properties": props}

    @classmethod
    def _original_props(cls, props: dict[str, Any]) -> dict[str, Any]:
        """The properties moto's model should see (a copy, free to change): all of them unless a type says."""
        return props

    @classmethod
    def _apply(cls, resource: Any, props: Json, account_id: str, region_name: str, created: bool) -> None:
        """Apply the properties moto's model ignores (`created`: the resource is new, nothing to undo)."""

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Json, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        def create() -> Any:
            return cls._create_resource(resource_name, cloudformation_json, account_id, region_name, **kwargs)

        return cls._completed(create, None, resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def _create_resource(
        cls, name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        """The resource as moto's model creates it."""
        return cls.ORIGINAL.create_from_cloudformation_json(
            name, cls._for_original(cloudformation_json), account_id, region_name, **kwargs
        )

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls, original_resource: Any, new_resource_name: str, cloudformation_json: Json, account_id: str,
        region_name: str,
    ) -> Any:  # fmt: skip
        def update() -> Any:
            return cls._update_original(
                original_resource, new_resource_name, cloudformation_json, account_id, region_name
            )

        return cls._completed(
            update, original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def _completed(
        cls, moto_call: Callable[[], Any], original: Any, name: str, cloudformation_json: Json,
        account_id: str, region_name: str,
    ) -> Any:  # fmt: skip
        """What moto's model creates or updates (`moto_call`), then the properties it ignores applied
        (`original`: the resource an update starts from; None for a create)."""
        props = cls._props(cloudformation_json)
        cls._unsupported(props, cls.HANDLED, name)
        resource = moto_call()
        cls._apply(resource, props, account_id, region_name, created=resource is not original)
        return resource

    @classmethod
    def _update_original(
        cls, original: Any, new_name: str, resource_json: dict[str, Any], account_id: str, region_name: str
    ) -> Any:
        """moto's own update where it has one; otherwise the resource stays and `_apply` updates it."""
        update = cls.ORIGINAL.update_from_cloudformation_json
        if getattr(update, "__isabstractmethod__", False):
            return original
        return update(
            original_resource=original,
            new_resource_name=new_name,
            cloudformation_json=cls._for_original(resource_json),
            account_id=account_id,
            region_name=region_name,
        )

    @classmethod
    def _renamed(cls, original: Any, props: dict[str, Any]) -> bool:
        """Whether the template gives the resource another name (a replacement)."""
        return props.get(cls.cloudformation_name_type(), original.name) != original.name

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        delete = cls.ORIGINAL.delete_from_cloudformation_json
        if not getattr(delete, "__isabstractmethod__", False):
            delete(resource_name, cloudformation_json, account_id, region_name)


# ---------------------------------------------------------------- S3 bucket

NOTIFICATION_KINDS = (
    # CloudFormation list, its destination property, moto's list, moto's destination key
    ("TopicConfigurations", "Topic", "TopicConfiguration", "Topic"),
    ("QueueConfigurations", "Queue", "QueueConfiguration", "Queue"),
    ("LambdaConfigurations", "Function", "CloudFunctionConfiguration", "CloudFunction"),
)


def _events_overlap(a: str, b: str) -> bool:
    """Whether two S3 event types share an event (`s3:ObjectCreated:*` covers `s3:ObjectCreated:Put`)."""
    family_a, _, kind_a = a.rpartition(":")
    family_b, _, kind_b = b.rpartition(":")
    return family_a == family_b and (kind_a == kind_b or "*" in (kind_a, kind_b))


def _filters_overlap(a: tuple[str, str], b: tuple[str, str]) -> bool:
    (prefix_a, suffix_a), (prefix_b, suffix_b) = a, b
    prefixes = prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)
    suffixes = suffix_a.endswith(suffix_b) or suffix_b.endswith(suffix_a)
    return prefixes and suffixes


class Bucket(_Override, CloudFormationModel):
    """AWS::S3::Bucket: moto applies BucketEncryption (without BucketKeyEnabled) and Tags only; this adds
    NotificationConfiguration, PublicAccessBlockConfiguration, OwnershipControls, VersioningConfiguration,
    LifecycleConfiguration and AWS's default encryption (SSE-S3) when none is declared."""

    ORIGINAL = FakeBucket

    HANDLED = {
        "BucketName",
        "Tags",
        "BucketEncryption",
        "NotificationConfiguration",
        "PublicAccessBlockConfiguration",
        "OwnershipControls",
        "VersioningConfiguration",
        "LifecycleConfiguration",
    }

    @classmethod
    def _update_original(
        cls, original: Any, new_name: str, resource_json: dict[str, Any], account_id: str, region_name: str
    ) -> Any:
        if cls._renamed(original, cls._props(resource_json)):
            return super()._update_original(original, new_name, resource_json, account_id, region_name)
        return original  # in place: `_apply` sets every property (moto's update mishandles Tags)

    @classmethod
    def _apply(cls, resource: Any, props: Json, account_id: str, region_name: str, created: bool) -> None:
        from moto.utilities.tagging_service import TaggingService

        backend = moto_backend("s3", account_id, region_name)
        name = resource.name
        backend.put_bucket_encryption(name, cls._encryption(props.get("BucketEncryption")))
        if not created:
            if props.get("Tags"):
                backend.put_bucket_tagging(name, TaggingService().flatten_tag_list(props["Tags"]))
            else:
                backend.delete_bucket_tagging(name)
        versioning = props.get("VersioningConfiguration")
        if versioning:
            status = cls._require(versioning, "Status")
            if status not in ("Enabled", "Suspended"):
                raise cls._fail(
                    f"VersioningConfiguration.Status must be Enabled or Suspended, got {status!r}"
                )
            backend.put_bucket_versioning(name, status)
        elif resource.versioning_status == "Enabled":  # versioning cannot be switched off, only suspended
            backend.put_bucket_versioning(name, "Suspended")
        block = props.get("PublicAccessBlockConfiguration")
        if block:
            flags = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
            backend.put_public_access_block(name, {flag: cls._bool(block, flag, False) for flag in flags})
        elif not created:
            backend.delete_public_access_block(name)
        ownership = props.get("OwnershipControls")
        if ownership:
            rules = cls._require(ownership, "Rules")
            backend.put_bucket_ownership_controls(name, cls._require(rules[0], "ObjectOwnership"))
        elif not created:
            backend.delete_bucket_ownership_controls(name)
        lifecycle = props.get("LifecycleConfiguration")
        if lifecycle:
            backend.put_bucket_lifecycle(
                name, [cls._lifecycle_rule(r) for r in cls._require(lifecycle, "Rules")]
            )
        elif not created:
            backend.delete_bucket_lifecycle(name)
        notifications = props.get("NotificationConfiguration")
        if notifications:
            config = cls._notification_config(notifications, account_id, region_name)
            backend.put_bucket_notification_configuration(name, config)
        elif not created:
            backend.put_bucket_notification_configuration(name, {})

    @classmethod
    def _encryption(cls, encryption: dict[str, Any] | None) -> dict[str, Any]:
        """BucketEncryption as moto stores it; SSE-S3 when undeclared (every S3 bucket is encrypted)."""
        rules = (encryption or {}).get("ServerSideEncryptionConfiguration") or [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}
        ]
        rule = rules[0]
        default = cls._require(rule, "ServerSideEncryptionByDefault")
        by_default = {"SSEAlgorithm": cls._require(default, "SSEAlgorithm")}
        if default.get("KMSMasterKeyID"):
            by_default["KMSMasterKeyID"] = default["KMSMasterKeyID"]
        return {
            "Rule": {
                "ApplyServerSideEncryptionByDefault": by_default,
                "BucketKeyEnabled": cls._bool(rule, "BucketKeyEnabled", False),
            }
        }

    @classmethod
    def _lifecycle_rule(cls, rule: dict[str, Any]) -> dict[str, Any]:
        """One CloudFormation lifecycle rule in the shape of the S3 API (as moto parses it)."""
        status = cls._require(rule, "Status")
        if not any(
            k in rule
            for k in (
                "ExpirationInDays",
                "ExpirationDate",
                "ExpiredObjectDeleteMarker",
                "NoncurrentVersionExpiration",
                "NoncurrentVersionExpirationInDays",
                "Transitions",
                "Transition",
                "NoncurrentVersionTransitions",
                "NoncurrentVersionTransition",
                "AbortIncompleteMultipartUpload",
            )
        ):
            raise cls._fail(f"LifecycleConfiguration rule {rule.get('Id', '')!r} has no action")
        out: dict[str, Any] = {"Status": status}
        if rule.get("Id"):
            out["ID"] = rule["Id"]
        out["Filter"] = cls._lifecycle_filter(rule)
        expiration = {}
        if rule.get("ExpirationInDays") is not None:
            expiration["Days"] = cls._int(rule, "ExpirationInDays")
        if rule.get("ExpirationDate"):
            expiration["Date"] = rule["ExpirationDate"]
        if rule.get("ExpiredObjectDeleteMarker") is not None:
            expiration["ExpiredObjectDeleteMarker"] = cls._bool(rule, "ExpiredObjectDeleteMarker")
        if expiration:
            out["Expiration"] = expiration
        noncurrent = rule.get("NoncurrentVersionExpiration")
        if noncurrent is None and rule.get("NoncurrentVersionExpirationInDays") is not None:
            noncurrent = {"NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]}
        if noncurrent is not None:
            out["NoncurrentVersionExpiration"] = {"NoncurrentDays": cls._int(noncurrent, "NoncurrentDays")}
            if noncurrent.get("NewerNoncurrentVersions") is not None:
                out["NoncurrentVersionExpiration"]["NewerNoncurrentVersions"] = int(
                    noncurrent["NewerNoncurrentVersions"]
                )
        transitions = cls._listed_and_single(rule, "Transition")
        if transitions:
            out["Transition"] = [
                {
                    k: v
                    for k, v in {
                        "Days": t.get("TransitionInDays"),
                        "Date": t.get("TransitionDate"),
                        "StorageClass": cls._require(t, "StorageClass"),
                    }.items()
                    if v is not None
                }
                for t in transitions
            ]
        nv_transitions = cls._listed_and_single(rule, "NoncurrentVersionTransition")
        if nv_transitions:
            out["NoncurrentVersionTransition"] = [
                {
                    "NoncurrentDays": cls._int(t, "TransitionInDays"),
                    "StorageClass": cls._require(t, "StorageClass"),
                    **(
                        {"NewerNoncurrentVersions": t["NewerNoncurrentVersions"]}
                        if "NewerNoncurrentVersions" in t
                        else {}
                    ),
                }
                for t in nv_transitions
            ]
        abort = rule.get("AbortIncompleteMultipartUpload")
        if abort is not None:
            out["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": cls._int(abort, "DaysAfterInitiation")
            }
        return out

    @staticmethod
    def _listed_and_single(rule: dict[str, Any], name: str) -> list[dict[str, Any]]:
        """A rule's `<name>s` list followed by its single `<name>` (CloudFormation accepts both forms)."""
        return list(rule.get(f"{name}s") or []) + ([rule[name]] if rule.get(name) else [])

    @classmethod
    def _lifecycle_filter(cls, rule: dict[str, Any]) -> dict[str, Any]:
        """Prefix and TagFilters become the rule's Filter (an And when there is more than one condition)."""
        if rule.get("ObjectSizeGreaterThan") is not None or rule.get("ObjectSizeLessThan") is not None:
            warn(f"{cls.cloudformation_type()}: lifecycle object size filters are not emulated locally")
        prefix = rule.get("Prefix")
        tags = [{"Key": t["Key"], "Value": t.get("Value", "")} for t in rule.get("TagFilters") or []]
        if tags and (prefix is not None or len(tags) > 1):
            return {"And": {**({"Prefix": prefix} if prefix is not None else {}), "Tag": tags}}
        if tags:
            return {"Tag": tags[0]}
        return {"Prefix": prefix or ""}

    @classmethod
    def _notification_config(
        cls, notifications: dict[str, Any], account_id: str, region_name: str
    ) -> dict[str, Any]:
        """NotificationConfiguration in moto's shape, after the checks S3 makes: destinations exist, events
        are valid, filter rules are prefix/suffix, and no two configurations overlap."""
        from moto.s3 import notifications as s3_notifications

        config: dict[str, Any] = {}
        seen: list[tuple[str, str, tuple[str, str]]] = []
        for cfn_list, cfn_dest, moto_list, moto_dest in NOTIFICATION_KINDS:
            entries = []
            for index, entry in enumerate(notifications.get(cfn_list) or []):
                where = f"NotificationConfiguration.{cfn_list}[{index}]"
                destination = entry.get(cfn_dest)
                event = entry.get("Event")
                if not destination or not event:
                    raise cls._fail(f"{where}: {cfn_dest} and Event are required")
                if not s3_notifications.S3NotificationEvent.is_event_valid(event):
                    raise cls._fail(f"{where}: unknown event {event!r}")
                cls._check_destination(cfn_dest, destination, where, account_id, region_name)
                rules = (((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules")) or []
                filters = {"prefix": "", "suffix": ""}
                for rule in rules:
                    rule_name = str(rule.get("Name", "")).lower()
                    if rule_name not in filters:
                        raise cls._fail(
                            f"{where}: filter rule name must be prefix or suffix, got {rule.get('Name')!r}"
                        )
                    filters[rule_name] = rule.get("Value", "")
                key_filter = (filters["prefix"], filters["suffix"])
                for other_where, other_event, other_filter in seen:
                    if _events_overlap(event, other_event) and _filters_overlap(key_filter, other_filter):
                        raise cls._fail(
                            f"{where} and {other_where}: Configurations overlap. Configurations on the same "
                            "bucket cannot share a common event type."
                        )
                seen.append((where, event, key_filter))
                moto_entry: dict[str, Any] = {moto_dest: destination, "Event": [event]}
                if rules:
                    moto_entry["Filter"] = {
                        "S3Key": {
                            "FilterRule": [{"Name": r["Name"].lower(), "Value": r["Value"]} for r in rules]
                        }
                    }
                entries.append(moto_entry)
            if entries:
                config[moto_list] = entries
        event_bridge = notifications.get("EventBridgeConfiguration")
        if event_bridge and cls._bool(event_bridge, "EventBridgeEnabled", True):
            config["EventBridgeConfiguration"] = {}
        return config

    @classmethod
    def _check_destination(cls, kind: str, arn: str, where: str, account_id: str, region_name: str) -> None:
        """S3 validates each destination when the configuration is put ("Unable to validate ...")."""
        problem = f"{where}: Unable to validate the following destination configurations: {arn}"
        parts = arn.split(":")
        if len(parts) < 6 or parts[0] != "arn":
            raise cls._fail(problem)
        region, account = parts[3], parts[4]
        if kind == "Topic":
            if arn not in moto_backend("sns", account, region).topics:
                raise cls._fail(problem)
        elif kind == "Queue" and queue_name(arn) not in moto_backend("sqs", account, region).queues:
            raise cls._fail(problem)


# ---------------------------------------------------------------- SQS queue


class Queue(_Override, CloudFormationModel):
    """AWS::SQS::Queue: moto creates it with every attribute, but its update changes only VisibilityTimeout
    and ReceiveMessageWaitTimeSeconds (a new RedrivePolicy or retention is lost)."""

    ORIGINAL = MotoQueue
    HANDLED = {
        "QueueName",
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
        "DelaySeconds",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "RedriveAllowPolicy",
        "RedrivePolicy",
        "SqsManagedSseEnabled",
        "Tags",
        "VisibilityTimeout",
    }
    FIXED = ("QueueName", "FifoQueue", "Tags")  # name and type need replacement; tags have their own API

    @classmethod
    def _update_original(
        cls, original: Any, new_name: str, resource_json: dict[str, Any], account_id: str, region_name: str
    ) -> Any:
        props = cls._props(resource_json)
        fifo = cls._bool(props, "FifoQueue", False)
        if not cls._renamed(original, props) and fifo == bool(original.fifo_queue):
            return original  # in place: `_apply` sets the attributes
        replacement = cls.ORIGINAL.create_from_cloudformation_json(
            props.get("QueueName", new_name), resource_json, account_id, region_name
        )
        moto_backend("sqs", account_id, region_name).delete_queue(original.name)
        return replacement

    @classmethod
    def _apply(cls, resource: Any, props: Json, account_id: str, region_name: str, created: bool) -> None:
        if created:
            return
        attributes = {k: v for k, v in props.items() if k not in cls.FIXED}
        for name in ("RedrivePolicy", "RedriveAllowPolicy"):
            if isinstance(attributes.get(name), dict):
                attributes[name] = json.dumps(attributes[name])
        if "RedrivePolicy" not in attributes:
            resource.redrive_policy = None
        # moto's SetQueueAttributes replaces the policy with whatever the call carries: keep the QueuePolicy's
        moto_backend("sqs", account_id, region_name).set_queue_attributes(
            resource.name, {**attributes, "Policy": resource.policy}
        )


# SNS topic: moto applies what main.yaml declares (DisplayName, KmsMasterKeyId) and updates it.

# ---------------------------------------------------------------- KMS key


class Key(_Override, CloudFormationModel):
    """AWS::KMS::Key: moto stores a mapping KeyPolicy as is (get-key-policy then answers an object, and
    moto's own policy checks fail on it) and ignores KeyUsage/KeySpec/MultiRegion; it has no update."""

    ORIGINAL = MotoKey

    HANDLED = {
        "KeyPolicy",
        "Description",
        "EnableKeyRotation",
        "Enabled",
        "KeyUsage",
        "KeySpec",
        "MultiRegion",
        "PendingWindowInDays",
        "Tags",
        "RotationPeriodInDays",
    }

    @classmethod
    def _create_resource(
        cls, name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        """Through the backend, not moto's model (which stores a mapping KeyPolicy as is)."""
        props = cls._props(cloudformation_json)
        policy = props.get("KeyPolicy")
        return moto_backend("kms", account_id, region_name).create_key(
            policy=cls._policy_text(policy) if policy is not None else None,
            key_usage=props.get("KeyUsage") or "ENCRYPT_DECRYPT",
            key_spec=props.get("KeySpec") or "SYMMETRIC_DEFAULT",
            description=props.get("Description") or "",
            tags=props.get("Tags") or [],
            multi_region=cls._bool(props, "MultiRegion", False),
        )

    @classmethod
    def _apply(cls, resource: Any, props: Json, account_id: str, region_name: str, created: bool) -> None:
        backend = moto_backend("kms", account_id, region_name)
        if not created:
            if props.get("KeyPolicy") is not None:
                backend.put_key_policy(resource.id, cls._policy_text(props["KeyPolicy"]))
            backend.update_key_description(resource.id, props.get("Description") or "")
        if cls._bool(props, "EnableKeyRotation", False):
            backend.enable_key_rotation(resource.id)
        elif not created:
            backend.disable_key_rotation(resource.id)
        if cls._bool(props, "Enabled", True):
            if not created:
                backend.enable_key(resource.id)
        else:
            backend.disable_key(resource.id)


# ---------------------------------------------------------------- CloudWatch Logs log group


class LogGroup(_Override, CloudFormationModel):
    """AWS::Logs::LogGroup: moto keeps RetentionInDays but drops KmsKeyId and has no update."""

    ORIGINAL = MotoLogGroup

    HANDLED = {"LogGroupName", "RetentionInDays", "KmsKeyId", "Tags", "LogGroupClass"}

    @classmethod
    def _original_props(cls, props: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in props.items() if k in ("LogGroupName", "Tags")}

    @classmethod
    def _apply(cls, resource: Any, props: Json, account_id: str, region_name: str, created: bool) -> None:
        retention = cls._int(props, "RetentionInDays")
        if retention is not None:
            moto_backend("logs", account_id, region_name).put_retention_policy(resource.name, retention)
        elif not created:
            moto_backend("logs", account_id, region_name).delete_retention_policy(resource.name)
        resource.kms_key_id = props.get("KmsKeyId")


# ---------------------------------------------------------------- IAM role


class Role(_Override, CloudFormationModel):
    """AWS::IAM::Role: moto stores inline policy documents as Python reprs (get-role-policy then answers
    text that is not JSON) and ignores ManagedPolicyArns; its update only sets the description."""

    ORIGINAL = MotoRole

    HANDLED = {
        "RoleName",
        "AssumeRolePolicyDocument",
        "Path",
        "PermissionsBoundary",
        "Description",
        "Tags",
        "MaxSessionDuration",
        "Policies",
        "ManagedPolicyArns",
    }

    @classmethod
    def _original_props(cls, props: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in props.items() if k not in ("Policies",)}

    @classmethod
    def _update_original(
        cls, original: Any, new_name: str, resource_json: dict[str, Any], account_id: str, region_name: str
    ) -> Any:
        props = cls._props(resource_json)
        if cls._renamed(original, props):
            cls.ORIGINAL.delete_from_cloudformation_json(original.name, {}, account_id, region_name)
            return cls._create_resource(props["RoleName"], resource_json, account_id, region_name)
        backend = moto_backend("iam", account_id, region_name)
        backend.update_role(
            original.name, props.get("Description", ""), cls._int(props, "MaxSessionDuration") or 3600
        )
        backend.update_assume_role_policy(
            original.name, cls._policy_text(cls._require(props, "AssumeRolePolicyDocument"))
        )
        return original

    @classmethod
    def _apply(cls, resource: Any, props: Json, account_id: str, region_name: str, created: bool) -> None:
        backend = moto_backend("iam", account_id, region_name)
        policies = {cls._require(p, "PolicyName"): p for p in props.get("Policies") or []}
        for name in set(resource.policies) - set(policies):
            backend.delete_role_policy(resource.name, name)
        for name, policy in policies.items():
            backend.put_role_policy(
                resource.name, name, cls._policy_text(cls._require(policy, "PolicyDocument"))
            )
        managed = set(props.get("ManagedPolicyArns") or [])
        attached = set(resource.managed_policies)
        for arn in attached - managed:
            backend.detach_role_policy(arn, resource.name)
        for arn in managed - attached:
            backend.attach_role_policy(arn, resource.name)


# ---------------------------------------------------------------- DynamoDB table


class Table(_Override, CloudFormationModel):
    """AWS::DynamoDB::Table: moto reads SSESpecification in the API's shape (SSEEnabled is lost) and ignores
    TimeToLiveSpecification and PointInTimeRecoverySpecification; it has no update."""

    ORIGINAL = MotoTable

    HANDLED = {
        "TableName",
        "KeySchema",
        "AttributeDefinitions",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "ProvisionedThroughput",
        "StreamSpecification",
        "Tags",
        "DeletionProtectionEnabled",
        "SSESpecification",
        "WarmThroughput",
        "BillingMode",
        "TimeToLiveSpecification",
        "PointInTimeRecoverySpecification",
    }

    @classmethod
    def _original_props(cls, props: dict[str, Any]) -> dict[str, Any]:
        sse = props.pop("SSESpecification", None)
        if sse is not None:
            api_sse: dict[str, Any] = {"Enabled": cls._bool(sse, "SSEEnabled", False)}
            if sse.get("SSEType"):
                api_sse["SSEType"] = sse["SSEType"]
            if sse.get("KMSMasterKeyId"):
                api_sse["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
            props["SSESpecification"] = api_sse
        return props

    @classmethod
    def _apply(cls, resource: Any, props: Json, account_id: str, region_name: str, created: bool) -> None:
        backend = moto_backend("dynamodb", account_id, region_name)
        ttl = props.get("TimeToLiveSpecification")
        if ttl is not None:
            enabled = cls._bool(ttl, "Enabled", False)
            attribute = ttl.get("AttributeName")
            if enabled and not attribute:
                raise cls._fail("TimeToLiveSpecification.AttributeName is required when Enabled")
            if enabled or resource.ttl.get("TimeToLiveStatus") == "ENABLED":
                backend.update_time_to_live(resource.name, {"Enabled": enabled, "AttributeName": attribute})
        elif not created and resource.ttl.get("TimeToLiveStatus") == "ENABLED":
            backend.update_time_to_live(resource.name, {"Enabled": False, "AttributeName": ""})
        if resource.ttl.get("TimeToLiveStatus") == "DISABLED":
            resource.ttl.pop("AttributeName", None)  # AWS names no attribute for a disabled TTL
        pitr = props.get("PointInTimeRecoverySpecification") or {}
        enabled = cls._bool(pitr, "PointInTimeRecoveryEnabled", False)
        if enabled or not created:
            backend.update_continuous_backups(resource.name, {"PointInTimeRecoveryEnabled": enabled})
        if not created:
            resource.sse_specification = cls._original_props(dict(props)).get("SSESpecification")


# ---------------------------------------------------------------- Lambda function


class Function(_Override, CloudFormationModel):
    """AWS::Lambda::Function: moto drops Architectures (always x86_64) and keeps environment values as
    template scalars (CloudFormation gives the function strings: a Number parameter arrives as "90")."""

    ORIGINAL = MotoFunction

    HANDLED = {
        "FunctionName",
        "Code",
        "Handler",
        "Role",
        "Runtime",
        "Description",
        "MemorySize",
        "Publish",
        "Timeout",
        "VpcConfig",
        "Environment",
        "ReservedConcurrentExecutions",
        "Architectures",
        "Tags",
    }

    @classmethod
    def _original_props(cls, props: dict[str, Any]) -> dict[str, Any]:
        variables = (props.get("Environment") or {}).get("Variables")
        if variables:
            props["Environment"] = {
                **props["Environment"],
                "Variables": {name: scalar(value) for name, value in variables.items()},
            }
        return props

    @classmethod
    def _apply(cls, resource: Any, props: Json, account_id: str, region_name: str, created: bool) -> None:
        architectures = props.get("Architectures") or ["x86_64"]
        if len(architectures) != 1 or architectures[0] not in ("x86_64", "arm64"):
            raise cls._fail(f"Properties.Architectures must be [x86_64] or [arm64], got {architectures!r}")
        resource.architectures = list(architectures)
        concurrency = cls._int(props, "ReservedConcurrentExecutions")
        resource.reserved_concurrency = concurrency


class EventSourceMapping(_Override, CloudFormationModel):
    """AWS::Lambda::EventSourceMapping: moto creates it with every property, but its update only sets the
    properties present, so one removed from the template (e.g. ScalingConfig) stays."""

    ORIGINAL = MotoEventSourceMapping
    OPTIONAL = {  # property -> moto's attribute, back to "not set" when the template drops it
        "FilterCriteria": "filter_criteria",
        "MaximumBatchingWindowInSeconds": "max_batch_window",
        "FunctionResponseTypes": "function_response_types",
        "ScalingConfig": "scaling_config",
        "DestinationConfig": "destination_config",
        "MaximumRecordAgeInSeconds": "max_record_age",
        "MaximumRetryAttempts": "max_retry_attempts",
        "BisectBatchOnFunctionError": "bisect_on_error",
        "ParallelizationFactor": "parallelization_factor",
        "TumblingWindowInSeconds": "tumbling_window",
        "MetricsConfig": "metrics",
        "ProvisionedPollerConfig": "poller_config",
        "KmsKeyArn": "kms_key",
    }
    HANDLED = {
        "EventSourceArn",
        "FunctionName",
        "BatchSize",
        "Enabled",
        "StartingPosition",
        "StartingPositionTimestamp",
        "Tags",
        "SourceAccessConfigurations",
        "Topics",
        "Queues",
        "SelfManagedEventSource",
        "SelfManagedKafkaEventSourceConfig",
        "AmazonManagedKafkaEventSourceConfig",
        "DocumentDBEventSourceConfig",
        *OPTIONAL,
    }

    @classmethod
    def _apply(cls, resource: Any, props: Json, account_id: str, region_name: str, created: bool) -> None:
        if created:
            return
        for name, attribute in cls.OPTIONAL.items():
            if name not in props:
                setattr(resource, attribute, None)
        if "BatchSize" not in props:
            resource.batch_size = None  # the source's default
        if "Enabled" not in props:
            resource.enabled = True


OVERRIDES: tuple[type[CloudFormationModel], ...] = (
    Bucket,
    Queue,
    Key,
    LogGroup,
    Role,
    Table,
    Function,
    EventSourceMapping,
)
