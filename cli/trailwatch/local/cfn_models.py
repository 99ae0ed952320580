"""CloudFormation resource types and properties that moto 5.2.1 lacks, taught to moto through its own
extension point: direct subclasses of `CloudFormationModel` whose class methods call moto's backends.

moto's CloudFormation skips resource types it has no model for (with only a log warning) and ignores
properties its models do not read. `main.yaml` needs:

- new types: `AWS::S3::BucketPolicy`, `AWS::SNS::TopicPolicy`, `AWS::SNS::Subscription`,
  `AWS::SQS::QueuePolicy`, `AWS::CloudTrail::Trail`, `AWS::CloudWatch::Alarm`;
- properties of types moto has (`AWS::S3::Bucket`, `AWS::SQS::Queue`, `AWS::KMS::Key`, `AWS::Logs::LogGroup`,
  `AWS::IAM::Role`, `AWS::DynamoDB::Table`, `AWS::Lambda::Function`, `AWS::Lambda::EventSourceMapping`): our
  class calls moto's original model, then applies the missing properties through the backend, and replaces
  the original in moto's model map.

Where moto's CloudFormation engine itself (not a model) departs from CloudFormation in a way main.yaml or
`trailwatch deploy` meets, `register()` also replaces these functions of moto's engine, each documented at
its definition: Fn::FindInMap with Number parameters (`_clean_json`), the outputs after a change set
(`_execute_change_set`), which resources an update adds/modifies/removes (`_build_resource_diff`, `_update`),
per-resource stack events and failed creations/updates ending as stack states (`_parse_and_create_resource`
etc.), and the resource listing (`_stack_resources`). Trails get a subclass that answers as AWS does
(`_TrailState`: HasCustomEventSelectors), and moto's bucket policy check (`FakeBucket.get_permission`) is
replaced for every bucket by one that honours policy conditions (`_bucket_permission`).

`register()` makes moto see all this (moto caches its model map with `lru_cache`); it is idempotent.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Callable
from operator import attrgetter
from typing import Any, ClassVar, Self

from moto.awslambda.models import EventSourceMapping as MotoEventSourceMapping
from moto.awslambda.models import LambdaFunction as MotoFunction
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import ChangeSet, CloudFormationBackend, Stack
from moto.cloudtrail.models import Trail as MotoTrail
from moto.core.common_models import CloudFormationModel
from moto.dynamodb.models.table import Table as MotoTable
from moto.iam.models import Role as MotoRole
from moto.kms.models import Key as MotoKey
from moto.logs.models import LogGroup as MotoLogGroup
from moto.s3.models import FakeBucket
from moto.sqs.models import Queue as MotoQueue
from moto.utilities.utils import get_partition

LogFn = Callable[[str], None]

_logger = logging.getLogger(__name__)
_warn: LogFn = _logger.warning


# ---------------------------------------------------------------- helpers


class _Cfn:
    """Shared helpers (a plain mixin: models must subclass CloudFormationModel directly to be found)."""

    @staticmethod
    def _props(cloudformation_json: dict[str, Any]) -> dict[str, Any]:
        return cloudformation_json.get("Properties") or {}

    @classmethod
    def _require(cls, props: dict[str, Any], name: str) -> Any:
        value = props.get(name)
        if value is None or value == "" or value == []:
            raise ValidationError(
                message=f"{cls.cloudformation_type()}: Properties.{name} is required"  # type: ignore[attr-defined]
            )
        return value

    @classmethod
    def _fail(cls, message: str) -> ValidationError:
        return ValidationError(message=f"{cls.cloudformation_type()}: {message}")  # type: ignore[attr-defined]

    @classmethod
    def _bool(cls, props: dict[str, Any], name: str, default: bool | None = None) -> bool | None:
        """A CloudFormation boolean: true/false, or the strings "true"/"false" (any case)."""
        value = props.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise cls._fail(f"Properties.{name} must be true or false, got {value!r}")

    @classmethod
    def _int(cls, props: dict[str, Any], name: str) -> int | None:
        value = props.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise cls._fail(f"Properties.{name} must be an integer, got {value!r}") from None

    @staticmethod
    def _policy_text(document: Any) -> str:
        """A policy document as AWS stores it: JSON text (CloudFormation accepts a mapping or a string)."""
        if isinstance(document, str):
            return json.dumps(json.loads(document))
        return json.dumps(document)

    @classmethod
    def _unsupported(cls, props: dict[str, Any], handled: set[str], resource: str) -> None:
        """Say which declared properties the local AWS does not apply (never silently)."""
        for name in sorted(set(props) - handled):
            _warn(f"{cls.cloudformation_type()} {resource}: property {name} is not emulated locally")  # type: ignore[attr-defined]


class _Model(_Cfn):
    """A type moto lacks, known by `name` (its physical id). A subclass sets CFN_TYPE, NAME_TYPE (the
    property naming it; "" for none) and GET_ATT, and implements `_create` and, unless it deletes through
    `delete()` alone, `_remove`. An update replaces the resource when `_replacement` gives a name (the old one
    is deleted first), and otherwise runs `_update_in_place`."""

    CFN_TYPE: ClassVar[str]
    NAME_TYPE: ClassVar[str] = ""
    GET_ATT: ClassVar[dict[str, str]] = {}  # Fn::GetAtt attribute -> the (dotted) Python attribute giving it

    def __init__(self, name: str, account_id: str, region_name: str) -> None:
        self.name = name
        self.account_id = account_id
        self.region_name = region_name

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.CFN_TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_TYPE

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.GET_ATT

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name not in self.GET_ATT:
            raise self._fail(f"unknown attribute {attribute_name}")
        return attrgetter(self.GET_ATT[attribute_name])(self)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Self:
        return cls._create(resource_name, cls._props(cloudformation_json), account_id, region_name)

    @classmethod
    def _create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> Self:
        raise NotImplementedError

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Self,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Self:
        props = cls._props(cloudformation_json)
        name = cls._replacement(original_resource, new_resource_name, props)
        if name is None:
            return cls._update_in_place(original_resource, props, account_id, region_name)
        original_resource.delete(account_id, region_name)
        return cls._create(name, props, account_id, region_name)

    @classmethod
    def _replacement(cls, original: Self, new_name: str, props: dict[str, Any]) -> str | None:
        """The name of the resource replacing `original`, when the update needs one (None: in place)."""
        return None

    @classmethod
    def _update_in_place(
        cls, original: Self, props: dict[str, Any], account_id: str, region_name: str
    ) -> Self:
        """By default the resource is created again under its name: the backend's put overwrites it."""
        return cls._create(original.name, props, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        if resource_name:
            cls._remove(resource_name, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        self._remove(self.name, self.account_id, self.region_name)

    @classmethod
    def _remove(cls, name: str, account_id: str, region_name: str) -> None:
        raise NotImplementedError


class _PolicyAttachment(_Model):
    """Bucket, queue and topic policies: no name of their own (the logical id is the physical id and, for
    queues and topics, `Id`). An update takes the old policy off its targets, then puts the new one on."""

    GET_ATT = {"Id": "name"}

    @classmethod
    def _replacement(cls, original: Self, new_name: str, props: dict[str, Any]) -> str | None:
        return original.name

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        """Only reached without an instance; the policy goes with `delete()`."""

    @classmethod
    def _targets_and_policy(cls, props: dict[str, Any], targets: str, what: str) -> tuple[list[str], str]:
        """The list property `targets` (of `what`) and the policy text, both required."""
        listed = cls._require(props, targets)
        if not isinstance(listed, list):
            raise cls._fail(f"Properties.{targets} must be a list of {what}, got {listed!r}")
        return listed, cls._policy_text(cls._require(props, "PolicyDocument"))


# ---------------------------------------------------------------- S3


def _s3(account_id: str, region_name: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account_id][get_partition(region_name)]


# What moto's bucket policy check cannot know about a request: the local endpoint is plain HTTP on loopback
# standing in for AWS's HTTPS endpoints, so requests count as aws:SecureTransport = true. Keys absent here
# (aws:SourceArn, ...) are absent from the request, as for a principal's own call on AWS.
REQUEST_CONTEXT = {"aws:securetransport": "true"}

_NEGATED = ("StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike")
_EQUALS = ("Bool", "StringEquals", "StringEqualsIgnoreCase", "ArnEquals")
_LIKE = ("StringLike", "ArnLike")


def _wildcard(pattern: str) -> re.Pattern[str]:
    """An IAM `*`/`?` pattern as a regex (case-insensitive: context values are lower-cased)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.I)


def _test_holds(operator: str, actual: str | None, values: list[str]) -> bool | None:
    """One condition key test as IAM evaluates it; None for an operator the local AWS does not know."""
    kind = operator.removesuffix("IfExists")
    if kind == "Null":
        return (actual is None) == (values[0] == "true")
    if actual is None:  # key not in the request: only ...IfExists and the negated operators hold
        return operator.endswith("IfExists") or kind in _NEGATED
    positive = kind.replace("Not", "")
    if positive in _EQUALS:
        matched = actual in values
    elif positive in _LIKE:
        matched = any(_wildcard(v).fullmatch(actual) for v in values)
    else:
        return None
    return matched != (kind in _NEGATED)


def _condition_holds(conditions: dict[str, Any]) -> bool:
    """Whether a statement's Condition block holds for REQUEST_CONTEXT. An unknown operator never holds
    (an Allow it guards is dropped; a Deny too -- the local AWS says so in the warning)."""
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            values = [str(v).lower() for v in (expected if isinstance(expected, list) else [expected])]
            holds = _test_holds(operator, REQUEST_CONTEXT.get(key.lower()), values)
            if holds is None:
                _warn(f"bucket policy: condition operator {operator} is not evaluated locally")
                return False
            if not holds:
                return False
    return True


def _bucket_permission(self: FakeBucket, action: str, resource: str) -> Any:
    """moto's bucket policy check (FakeBucket.get_permission, for every bucket, whichever way its policy
    was set), honouring Condition blocks: moto ignores them, so the usual "deny when aws:SecureTransport is
    false" statement would deny every request. A statement applies only when its conditions hold for
    REQUEST_CONTEXT."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if self.policy is None:
        return PermissionResult.NEUTRAL
    document = json.loads(self.policy)
    statements = document.get("Statement") or []
    statements = statements if isinstance(statements, list) else [statements]
    applicable = [
        {k: v for k, v in st.items() if k != "Condition"}
        for st in statements
        if _condition_holds(st.get("Condition") or {})
    ]
    if not applicable:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**document, "Statement": applicable})).is_action_permitted(action, resource)


class BucketPolicy(_PolicyAttachment, CloudFormationModel):
    """AWS::S3::BucketPolicy: the bucket's policy document (get-bucket-policy)."""

    CFN_TYPE = "AWS::S3::BucketPolicy"
    GET_ATT = {}

    def __init__(self, name: str, bucket: str, account_id: str, region_name: str) -> None:
        super().__init__(name, account_id, region_name)
        self.bucket = bucket

    @classmethod
    def _create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> BucketPolicy:
        bucket = cls._require(props, "Bucket")
        policy = cls._policy_text(cls._require(props, "PolicyDocument"))
        _s3(account_id, region_name).put_bucket_policy(bucket, policy.encode())
        return cls(name, bucket, account_id, region_name)

    @classmethod
    def _replacement(cls, original: BucketPolicy, new_name: str, props: dict[str, Any]) -> str | None:
        """The same bucket's policy is put again in place; another bucket's takes it off the old one."""
        return original.name if cls._require(props, "Bucket") != original.bucket else None

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _s3(self.account_id, self.region_name)
        if self.bucket in backend.buckets:
            backend.delete_bucket_policy(self.bucket)


# ---------------------------------------------------------------- SQS


def _sqs(account_id: str, region_name: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[account_id][region_name]


def _queue_name(queue_url_or_arn: str) -> str:
    """A queue name from its URL (what Ref gives) or ARN."""
    return queue_url_or_arn.rstrip("/").replace(":", "/").rsplit("/", 1)[-1]


class QueuePolicy(_PolicyAttachment, CloudFormationModel):
    """AWS::SQS::QueuePolicy: the `Policy` attribute of each listed queue."""

    CFN_TYPE = "AWS::SQS::QueuePolicy"

    def __init__(self, name: str, queues: list[str], account_id: str, region_name: str) -> None:
        super().__init__(name, account_id, region_name)
        self.queues = queues

    @classmethod
    def _create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> QueuePolicy:
        queues, policy = cls._targets_and_policy(props, "Queues", "queue URLs")
        backend = _sqs(account_id, region_name)
        for queue in queues:
            backend.set_queue_attributes(_queue_name(queue), {"Policy": policy})
        return cls(name, queues, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _sqs(self.account_id, self.region_name)
        for queue in self.queues:
            name = _queue_name(queue)
            if name in backend.queues:
                backend.set_queue_attributes(name, {"Policy": ""})


# ---------------------------------------------------------------- SNS


def _sns(account_id: str, region_name: str) -> Any:
    from moto.sns.models import sns_backends

    return sns_backends[account_id][region_name]


class TopicPolicy(_PolicyAttachment, CloudFormationModel):
    """AWS::SNS::TopicPolicy: the `Policy` attribute of each listed topic (default policy back on delete)."""

    CFN_TYPE = "AWS::SNS::TopicPolicy"

    def __init__(self, name: str, topics: list[str], account_id: str, region_name: str) -> None:
        super().__init__(name, account_id, region_name)
        self.topics = topics

    @classmethod
    def _create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> TopicPolicy:
        topics, policy = cls._targets_and_policy(props, "Topics", "topic ARNs")
        backend = _sns(account_id, region_name)
        for arn in topics:
            backend.get_topic(arn).policy = policy
        return cls(name, topics, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _sns(self.account_id, self.region_name)
        for arn in self.topics:
            topic = backend.topics.get(arn)
            if topic is not None:
                topic._policy_json = topic._create_default_topic_policy(
                    self.region_name, self.account_id, topic.name
                )


CONFIRMED_BY_RECIPIENT = ("email", "email-json")


class Subscription(_Model, CloudFormationModel):
    """AWS::SNS::Subscription with its attributes (RawMessageDelivery, FilterPolicy, RedrivePolicy...).
    Its `name` is its ARN."""

    CFN_TYPE = "AWS::SNS::Subscription"
    GET_ATT = {"Arn": "name"}
    ATTRIBUTES = (  # FilterPolicyScope before FilterPolicy: the policy is validated per scope
        "DeliveryPolicy",
        "FilterPolicyScope",
        "FilterPolicy",
        "RedrivePolicy",
        "SubscriptionRoleArn",
    )
    JSON_ATTRIBUTES = ("DeliveryPolicy", "FilterPolicy", "RedrivePolicy")
    HANDLED = {"TopicArn", "Protocol", "Endpoint", "RawMessageDelivery", "Region", *ATTRIBUTES}

    def __init__(
        self, arn: str, topic_arn: str, protocol: str, endpoint: str, account_id: str, region_name: str
    ) -> None:
        super().__init__(arn, account_id, region_name)
        self.topic_arn = topic_arn
        self.protocol = protocol
        self.endpoint = endpoint

    @classmethod
    def _create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> Subscription:
        topic_arn = cls._require(props, "TopicArn")
        protocol = cls._require(props, "Protocol")
        endpoint = cls._require(props, "Endpoint")
        cls._unsupported(props, cls.HANDLED, name)
        backend = _sns(account_id, region_name)
        subscription = backend.subscribe(topic_arn, endpoint, protocol)
        if protocol in CONFIRMED_BY_RECIPIENT:  # nobody can click the link of a local mail
            subscription.attributes["PendingConfirmation"] = True
            subscription.attributes["ConfirmationWasAuthenticated"] = False
        cls._apply_attributes(backend, subscription.arn, props)
        return cls(subscription.arn, topic_arn, protocol, endpoint, account_id, region_name)

    @classmethod
    def _apply_attributes(cls, backend: Any, arn: str, props: dict[str, Any]) -> None:
        backend.set_subscription_attributes(
            arn, "RawMessageDelivery", cls._bool(props, "RawMessageDelivery", False)
        )
        for name in cls.ATTRIBUTES:
            value = props.get(name)
            if value is None:
                continue
            if name in cls.JSON_ATTRIBUTES and not isinstance(value, str):
                value = json.dumps(value)
            backend.set_subscription_attributes(arn, name, value)

    @classmethod
    def _replacement(cls, original: Subscription, new_name: str, props: dict[str, Any]) -> str | None:
        """TopicArn, Protocol and Endpoint require replacement."""
        same = (
            props.get("TopicArn") == original.topic_arn
            and props.get("Protocol") == original.protocol
            and props.get("Endpoint") == original.endpoint
        )
        return None if same else new_name

    @classmethod
    def _update_in_place(
        cls, original: Subscription, props: dict[str, Any], account_id: str, region_name: str
    ) -> Subscription:
        backend = _sns(account_id, region_name)
        subscription = backend.subscriptions[original.name]
        for name in cls.ATTRIBUTES:
            if name not in props:
                subscription.attributes.pop(name, None)
        cls._apply_attributes(backend, original.name, props)
        return original

    @classmethod
    def _remove(cls, name: str, account_id: str, region_name: str) -> None:
        _sns(account_id, region_name).unsubscribe(name)


# ---------------------------------------------------------------- CloudTrail


def _cloudtrail(account_id: str, region_name: str) -> Any:
    from moto.cloudtrail.models import cloudtrail_backends

    return cloudtrail_backends[account_id][region_name]


class _TrailState(MotoTrail):
    """moto's trail, describing itself as AWS does: HasCustomEventSelectors/HasInsightSelectors follow the
    selectors (moto always answers false)."""

    def description(self, include_region: bool = False) -> dict[str, Any]:
        desc = super().description(include_region=include_region)
        desc["HasCustomEventSelectors"] = bool(self.advanced_event_selectors) or (
            self.event_selectors not in ([], DEFAULT_EVENT_SELECTORS)
        )
        desc["HasInsightSelectors"] = bool(self.insight_selectors)
        return desc


DEFAULT_EVENT_SELECTORS = [
    {
        "ReadWriteType": "All",
        "IncludeManagementEvents": True,
        "DataResources": [],
        "ExcludeManagementEventSources": [],
    }
]


class Trail(_Model, CloudFormationModel):
    """AWS::CloudTrail::Trail: the trail, its (advanced) event selectors and its logging status."""

    CFN_TYPE = "AWS::CloudTrail::Trail"
    NAME_TYPE = "TrailName"
    GET_ATT = {"Arn": "trail.arn", "SnsTopicArn": "trail.topic_arn"}
    HANDLED = {
        "TrailName",
        "S3BucketName",
        "S3KeyPrefix",
        "SnsTopicName",
        "IncludeGlobalServiceEvents",
        "IsMultiRegionTrail",
        "EnableLogFileValidation",
        "IsOrganizationTrail",
        "CloudWatchLogsLogGroupArn",
        "CloudWatchLogsRoleArn",
        "KMSKeyId",
        "Tags",
        "EventSelectors",
        "AdvancedEventSelectors",
        "InsightSelectors",
        "IsLogging",
    }

    @property
    def trail(self) -> Any:
        return _cloudtrail(self.account_id, self.region_name).get_trail(self.name)

    @classmethod
    def _is_logging(cls, props: dict[str, Any]) -> bool:
        is_logging = cls._bool(props, "IsLogging")
        if is_logging is None:
            raise cls._fail("Properties.IsLogging is required")
        return is_logging

    @classmethod
    def _create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> Trail:
        cls._require(props, "S3BucketName")
        is_logging = cls._is_logging(props)
        cls._unsupported(props, cls.HANDLED, name)
        backend = _cloudtrail(account_id, region_name)
        backend.create_trail(
            name=name,
            bucket_name=props["S3BucketName"],
            s3_key_prefix=props.get("S3KeyPrefix"),
            sns_topic_name=props.get("SnsTopicName"),
            is_global=cls._bool(props, "IncludeGlobalServiceEvents", True),
            is_multi_region=cls._bool(props, "IsMultiRegionTrail", False),
            log_validation=cls._bool(props, "EnableLogFileValidation", False),
            is_org_trail=cls._bool(props, "IsOrganizationTrail", False),
            cw_log_group_arn=props.get("CloudWatchLogsLogGroupArn"),
            cw_role_arn=props.get("CloudWatchLogsRoleArn"),
            kms_key_id=props.get("KMSKeyId"),
            tags_list=props.get("Tags") or [],
        )
        model = cls(name, account_id, region_name)
        model.trail.__class__ = _TrailState
        model._apply_selectors_and_status(props, is_logging)
        return model

    def _apply_selectors_and_status(self, props: dict[str, Any], is_logging: bool) -> None:
        trail = self.trail
        advanced = props.get("AdvancedEventSelectors") or []
        basic = props.get("EventSelectors") or []
        if advanced and basic:
            raise self._fail("EventSelectors and AdvancedEventSelectors cannot both be set")
        trail.event_selectors = [] if advanced else (basic or list(DEFAULT_EVENT_SELECTORS))
        trail.advanced_event_selectors = advanced
        trail.insight_selectors = list(props.get("InsightSelectors") or [])
        if is_logging and not trail.status.is_logging:
            trail.start_logging()
        elif not is_logging and trail.status.is_logging:
            trail.stop_logging()

    @classmethod
    def _replacement(cls, original: Trail, new_name: str, props: dict[str, Any]) -> str | None:
        return props["TrailName"] if props.get("TrailName", original.name) != original.name else None

    @classmethod
    def _update_in_place(
        cls, original: Trail, props: dict[str, Any], account_id: str, region_name: str
    ) -> Trail:
        is_logging = cls._is_logging(props)
        trail = original.trail
        trail.bucket_name = cls._require(props, "S3BucketName")
        trail.check_bucket_exists()
        trail.s3_key_prefix = props.get("S3KeyPrefix")
        trail.sns_topic_name = props.get("SnsTopicName")
        trail.include_global_service_events = cls._bool(props, "IncludeGlobalServiceEvents", True)
        trail.is_multi_region = cls._bool(props, "IsMultiRegionTrail", False)
        trail.log_validation = cls._bool(props, "EnableLogFileValidation", False)
        trail.is_org_trail = cls._bool(props, "IsOrganizationTrail", False)
        trail.cw_log_group_arn = props.get("CloudWatchLogsLogGroupArn")
        trail.cw_role_arn = props.get("CloudWatchLogsRoleArn")
        trail.kms_key_id = props.get("KMSKeyId")
        original._apply_selectors_and_status(props, is_logging)
        return original

    @classmethod
    def _remove(cls, name: str, account_id: str, region_name: str) -> None:
        _cloudtrail(account_id, region_name).delete_trail(name)


# ---------------------------------------------------------------- CloudWatch


def _cloudwatch(account_id: str, region_name: str) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[account_id][region_name]


class Alarm(_Model, CloudFormationModel):
    """AWS::CloudWatch::Alarm (metric alarms; Metrics math queries included)."""

    CFN_TYPE = "AWS::CloudWatch::Alarm"
    NAME_TYPE = "AlarmName"
    GET_ATT = {"Arn": "alarm.alarm_arn"}
    HANDLED = {
        "AlarmName",
        "AlarmDescription",
        "Namespace",
        "MetricName",
        "Metrics",
        "ComparisonOperator",
        "EvaluationPeriods",
        "DatapointsToAlarm",
        "Period",
        "Threshold",
        "ThresholdMetricId",
        "Statistic",
        "ExtendedStatistic",
        "Dimensions",
        "AlarmActions",
        "OKActions",
        "InsufficientDataActions",
        "Unit",
        "ActionsEnabled",
        "TreatMissingData",
        "EvaluateLowSampleCountPercentile",
        "Tags",
    }

    @property
    def alarm(self) -> Any:
        return _cloudwatch(self.account_id, self.region_name).alarms[self.name]

    @classmethod
    def _metric_queries(cls, metrics: list[dict[str, Any]]) -> list[Any]:
        from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat

        queries = []
        for metric in metrics:
            stat = metric.get("MetricStat")
            metric_stat = None
            if stat:
                inner = stat.get("Metric", {})
                dims = [Dimension(d.get("Name"), d.get("Value")) for d in inner.get("Dimensions", [])]
                metric_stat = MetricStat(
                    metric=Metric(inner.get("MetricName"), inner.get("Namespace"), dims),
                    period=stat.get("Period"),
                    stat=stat.get("Stat"),
                    unit=stat.get("Unit"),
                )
            queries.append(
                MetricDataQuery(
                    query_id=metric.get("Id"),
                    label=metric.get("Label"),
                    period=metric.get("Period"),
                    return_data=metric.get("ReturnData"),
                    expression=metric.get("Expression"),
                    metric_stat=metric_stat,
                )
            )
        return queries

    @classmethod
    def _create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> Alarm:
        cls._require(props, "ComparisonOperator")
        evaluation_periods = cls._int(props, "EvaluationPeriods")
        if evaluation_periods is None:
            raise cls._fail("Properties.EvaluationPeriods is required")
        if not props.get("MetricName") and not props.get("Metrics"):
            raise cls._fail("one of Properties.MetricName or Properties.Metrics is required")
        cls._unsupported(props, cls.HANDLED, name)
        threshold = props.get("Threshold")
        _cloudwatch(account_id, region_name).put_metric_alarm(
            name=name,
            namespace=props.get("Namespace"),
            metric_name=props.get("MetricName"),
            comparison_operator=props["ComparisonOperator"],
            evaluation_periods=evaluation_periods,
            period=cls._int(props, "Period"),
            threshold=float(threshold) if threshold is not None else None,
            statistic=props.get("Statistic"),
            description=props.get("AlarmDescription"),
            dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in props.get("Dimensions") or []],
            alarm_actions=list(props.get("AlarmActions") or []),
            metric_data_queries=cls._metric_queries(props.get("Metrics") or []) or None,
            datapoints_to_alarm=cls._int(props, "DatapointsToAlarm"),
            extended_statistic=props.get("ExtendedStatistic"),
            ok_actions=list(props.get("OKActions") or []),
            insufficient_data_actions=list(props.get("InsufficientDataActions") or []),
            unit=props.get("Unit"),
            actions_enabled=cls._bool(props, "ActionsEnabled", True),
            treat_missing_data=props.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=props.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=props.get("ThresholdMetricId"),
            tags=props.get("Tags") or [],
        )
        return cls(name, account_id, region_name)

    @classmethod
    def _replacement(cls, original: Alarm, new_name: str, props: dict[str, Any]) -> str | None:
        """A new AlarmName replaces the alarm; the same name is put again in place."""
        name = props.get("AlarmName") or original.name
        return name if name != original.name else None

    @classmethod
    def _remove(cls, name: str, account_id: str, region_name: str) -> None:
        _cloudwatch(account_id, region_name).delete_alarms([name])


# ---------------------------------------------------------------- types moto has, completed


class _Override(_Cfn):
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
    def _for_original(cls, cloudformation_json: dict[str, Any]) -> dict[str, Any]:
        """The template JSON as moto's model should see it."""
        return cloudformation_json

    @classmethod
    def _apply(
        cls, resource: Any, props: dict[str, Any], account_id: str, region_name: str, created: bool
    ) -> None:
        """Apply the properties moto's model ignores (`created`: the resource is new, nothing to undo)."""

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        props = cls._props(cloudformation_json)
        cls._unsupported(props, cls.HANDLED, resource_name)
        resource = cls._create_resource(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        cls._apply(resource, props, account_id, region_name, created=True)
        return resource

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
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Any:
        props = cls._props(cloudformation_json)
        cls._unsupported(props, cls.HANDLED, new_resource_name)
        resource = cls._update_original(
            original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        cls._apply(resource, props, account_id, region_name, created=resource is not original_resource)
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


def _expand_event(event: str) -> set[str]:
    """`s3:ObjectCreated:*` covers `s3:ObjectCreated:Put` etc.: compare events by family and member."""
    family, _, member = event.rpartition(":")
    return {f"{family}:*"} if member == "*" else {event, f"{family}:*"}


def _events_overlap(a: list[str], b: list[str]) -> bool:
    for x in a:
        for y in b:
            fx, _, mx = x.rpartition(":")
            fy, _, my = y.rpartition(":")
            if fx == fy and (mx == my or "*" in (mx, my)):
                return True
    return False


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
    def _apply(
        cls, resource: Any, props: dict[str, Any], account_id: str, region_name: str, created: bool
    ) -> None:
        from moto.utilities.tagging_service import TaggingService

        backend = _s3(account_id, region_name)
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
        transitions = list(rule.get("Transitions") or []) + (
            [rule["Transition"]] if rule.get("Transition") else []
        )
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
        nv_transitions = list(rule.get("NoncurrentVersionTransitions") or []) + (
            [rule["NoncurrentVersionTransition"]] if rule.get("NoncurrentVersionTransition") else []
        )
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

    @classmethod
    def _lifecycle_filter(cls, rule: dict[str, Any]) -> dict[str, Any]:
        """Prefix and TagFilters become the rule's Filter (an And when there is more than one condition)."""
        if rule.get("ObjectSizeGreaterThan") is not None or rule.get("ObjectSizeLessThan") is not None:
            _warn(f"{cls.cloudformation_type()}: lifecycle object size filters are not emulated locally")
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
        seen: list[tuple[str, list[str], tuple[str, str]]] = []
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
                for other_where, other_events, other_filter in seen:
                    if _events_overlap([event], other_events) and _filters_overlap(key_filter, other_filter):
                        raise cls._fail(
                            f"{where} and {other_where}: Configurations overlap. Configurations on the same "
                            "bucket cannot share a common event type."
                        )
                seen.append((where, [event], key_filter))
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
            if arn not in _sns(account, region).topics:
                raise cls._fail(problem)
        elif kind == "Queue" and _queue_name(arn) not in _sqs(account, region).queues:
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
        _sqs(account_id, region_name).delete_queue(original.name)
        return replacement

    @classmethod
    def _apply(
        cls, resource: Any, props: dict[str, Any], account_id: str, region_name: str, created: bool
    ) -> None:
        if created:
            return
        attributes = {k: v for k, v in props.items() if k not in cls.FIXED}
        for name in ("RedrivePolicy", "RedriveAllowPolicy"):
            if isinstance(attributes.get(name), dict):
                attributes[name] = json.dumps(attributes[name])
        if "RedrivePolicy" not in attributes:
            resource.redrive_policy = None
        # moto's SetQueueAttributes replaces the policy with whatever the call carries: keep the QueuePolicy's
        _sqs(account_id, region_name).set_queue_attributes(
            resource.name, {**attributes, "Policy": resource.policy}
        )


# SNS topic: moto applies what main.yaml declares (DisplayName, KmsMasterKeyId) and updates it.

# ---------------------------------------------------------------- KMS key


def _kms(account_id: str, region_name: str) -> Any:
    from moto.kms.models import kms_backends

    return kms_backends[account_id][region_name]


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
        return _kms(account_id, region_name).create_key(
            policy=cls._policy_text(policy) if policy is not None else None,
            key_usage=props.get("KeyUsage") or "ENCRYPT_DECRYPT",
            key_spec=props.get("KeySpec") or "SYMMETRIC_DEFAULT",
            description=props.get("Description") or "",
            tags=props.get("Tags") or [],
            multi_region=cls._bool(props, "MultiRegion", False),
        )

    @classmethod
    def _apply(
        cls, resource: Any, props: dict[str, Any], account_id: str, region_name: str, created: bool
    ) -> None:
        backend = _kms(account_id, region_name)
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


def _logs(account_id: str, region_name: str) -> Any:
    from moto.logs.models import logs_backends

    return logs_backends[account_id][region_name]


class LogGroup(_Override, CloudFormationModel):
    """AWS::Logs::LogGroup: moto keeps RetentionInDays but drops KmsKeyId and has no update."""

    ORIGINAL = MotoLogGroup

    HANDLED = {"LogGroupName", "RetentionInDays", "KmsKeyId", "Tags", "LogGroupClass"}

    @classmethod
    def _for_original(cls, cloudformation_json: dict[str, Any]) -> dict[str, Any]:
        props = {k: v for k, v in cls._props(cloudformation_json).items() if k in ("LogGroupName", "Tags")}
        return {**cloudformation_json, "Properties": props}

    @classmethod
    def _apply(
        cls, resource: Any, props: dict[str, Any], account_id: str, region_name: str, created: bool
    ) -> None:
        retention = cls._int(props, "RetentionInDays")
        if retention is not None:
            _logs(account_id, region_name).put_retention_policy(resource.name, retention)
        elif not created:
            _logs(account_id, region_name).delete_retention_policy(resource.name)
        resource.kms_key_id = props.get("KmsKeyId")


# ---------------------------------------------------------------- IAM role


def _iam(account_id: str, region_name: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account_id][get_partition(region_name)]


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
    def _for_original(cls, cloudformation_json: dict[str, Any]) -> dict[str, Any]:
        props = {k: v for k, v in cls._props(cloudformation_json).items() if k not in ("Policies",)}
        return {**cloudformation_json, "Properties": props}

    @classmethod
    def _update_original(
        cls, original: Any, new_name: str, resource_json: dict[str, Any], account_id: str, region_name: str
    ) -> Any:
        props = cls._props(resource_json)
        if cls._renamed(original, props):
            cls.ORIGINAL.delete_from_cloudformation_json(original.name, {}, account_id, region_name)
            return cls._create_resource(props["RoleName"], resource_json, account_id, region_name)
        backend = _iam(account_id, region_name)
        backend.update_role(
            original.name, props.get("Description", ""), cls._int(props, "MaxSessionDuration") or 3600
        )
        backend.update_assume_role_policy(
            original.name, cls._policy_text(cls._require(props, "AssumeRolePolicyDocument"))
        )
        return original

    @classmethod
    def _apply(
        cls, resource: Any, props: dict[str, Any], account_id: str, region_name: str, created: bool
    ) -> None:
        backend = _iam(account_id, region_name)
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


def _dynamodb(account_id: str, region_name: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[account_id][region_name]


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
    def _for_original(cls, cloudformation_json: dict[str, Any]) -> dict[str, Any]:
        props = dict(cls._props(cloudformation_json))
        sse = props.pop("SSESpecification", None)
        if sse is not None:
            api_sse: dict[str, Any] = {"Enabled": cls._bool(sse, "SSEEnabled", False)}
            if sse.get("SSEType"):
                api_sse["SSEType"] = sse["SSEType"]
            if sse.get("KMSMasterKeyId"):
                api_sse["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
            props["SSESpecification"] = api_sse
        return {**cloudformation_json, "Properties": props}

    @classmethod
    def _apply(
        cls, resource: Any, props: dict[str, Any], account_id: str, region_name: str, created: bool
    ) -> None:
        backend = _dynamodb(account_id, region_name)
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
            resource.sse_specification = cls._for_original({"Properties": props})["Properties"].get(
                "SSESpecification"
            )


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
    def _for_original(cls, cloudformation_json: dict[str, Any]) -> dict[str, Any]:
        props = dict(cls._props(cloudformation_json))
        variables = (props.get("Environment") or {}).get("Variables")
        if variables:
            props["Environment"] = {
                **props["Environment"],
                "Variables": {name: _env_text(value) for name, value in variables.items()},
            }
        return {**cloudformation_json, "Properties": props}

    @classmethod
    def _apply(
        cls, resource: Any, props: dict[str, Any], account_id: str, region_name: str, created: bool
    ) -> None:
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
    def _apply(
        cls, resource: Any, props: dict[str, Any], account_id: str, region_name: str, created: bool
    ) -> None:
        if created:
            return
        for name, attribute in cls.OPTIONAL.items():
            if name not in props:
                setattr(resource, attribute, None)
        if "BatchSize" not in props:
            resource.batch_size = None  # the source's default
        if "Enabled" not in props:
            resource.enabled = True


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# ---------------------------------------------------------------- template functions

_original_clean_json = parsing.clean_json


def _clean_json(resource_json: Any, resources_map: Any) -> Any:
    """moto's `clean_json`, except that Fn::FindInMap looks keys up as strings, as CloudFormation does.

    moto turns `Number` parameters into ints, so `!FindInMap [Map, Key, !Ref NumberParam]` looks up `60`
    where the mapping (like every CloudFormation mapping) has the key `"60"`, and the resource fails.
    """
    if isinstance(resource_json, dict) and isinstance(resource_json.get("Fn::FindInMap"), list):
        map_name, *path = resource_json["Fn::FindInMap"]
        keys = [_map_key(_original_clean_json(key, resources_map)) for key in path]
        resource_json = {**resource_json, "Fn::FindInMap": [map_name, *keys]}
    return _original_clean_json(resource_json, resources_map)


def _map_key(key: Any) -> Any:
    if isinstance(key, bool):
        return str(key).lower()
    if isinstance(key, int | float):
        return str(key)
    return key


# ---------------------------------------------------------------- change sets

_original_execute_change_set = CloudFormationBackend.execute_change_set


def _execute_change_set(
    self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None
) -> None:
    """moto's ExecuteChangeSet, then the stack as CloudFormation leaves it: with the change set's template,
    parameters and outputs. (moto keeps the outputs of the stack's previous template: none at all after a
    CREATE change set, which is how `trailwatch deploy` creates the stack.)"""
    change_set = self.change_sets.get(change_set_name) or next(
        (cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name), None
    )
    try:
        _original_execute_change_set(self, change_set_name, stack_name)
    except Exception as err:
        if change_set is None:
            raise
        change_set.execution_status = "EXECUTE_FAILED"
        if change_set.change_set_type == "CREATE":
            _roll_back_creation(change_set.stack, err)
        else:
            _update_failed(change_set.stack, err)
        return
    if change_set is None:
        return
    stack = change_set.stack
    stack.template = change_set.template
    stack._parse_template()
    stack.description = stack.template_dict.get("Description")
    if change_set.parameters:
        stack.parameters = change_set.parameters
    stack.output_map = stack._create_output_map()


# ---------------------------------------------------------------- stack updates

_original_build_resource_diff = parsing.ResourceMap.build_resource_diff
_original_change_set_diff = ChangeSet.diff


def _build_resource_diff(
    self: parsing.ResourceMap, other_template: dict[str, Any], parameters: dict[str, Any] | None = None
) -> dict[str, list[str]]:
    """Which resources an update adds, modifies and removes, as CloudFormation decides it.

    moto compares the resources' template text and, for parameter changes, only direct `Ref`s: a parameter
    used through a condition or `Fn::Sub` changes nothing, and a resource whose condition turns true (or
    false) is never created (or deleted). Here: resources are added/removed by their conditions under the new
    parameters; a resource is modified when its text changed or it refers (Ref, Fn::Sub, Fn::GetAtt,
    Fn::If, Condition) to a parameter or condition whose value changed, or to a resource added or removed.
    Falls back to moto's diff for templates these rules cannot evaluate."""
    try:
        return _resource_diff(self, other_template, parameters)
    except (KeyError, TypeError, ValueError) as err:
        _warn(f"stack update: falling back to moto's resource diff ({err!r})")
        return _original_build_resource_diff(self, other_template, parameters)


def _resource_diff(
    resource_map: parsing.ResourceMap, template: dict[str, Any], parameters: dict[str, Any] | None
) -> dict[str, list[str]]:
    old: dict[str, Any] = resource_map._resource_json_map
    new: dict[str, Any] = template.get("Resources") or {}
    given = parameters if parameters is not None else resource_map.input_parameters
    pseudo = {k: v for k, v in resource_map._parsed_resources.items() if k.startswith("AWS::")}
    old_values = {k: v for k, v in resource_map.resolved_parameters.items()}
    new_values = {
        name: str(spec["Default"])
        for name, spec in (template.get("Parameters") or {}).items()
        if "Default" in spec
    }
    new_values.update({k: v for k, v in (given or {}).items()})
    old_conditions = {
        name: bool(resource_map.lazy_condition_map[name]) for name in resource_map.lazy_condition_map
    }
    new_conditions = _evaluate_conditions(template.get("Conditions") or {}, {**new_values, **pseudo})

    created_old = [name for name in old if name in resource_map._parsed_resources]
    created_new = [
        name for name, spec in new.items() if "Condition" not in spec or new_conditions[spec["Condition"]]
    ]
    add = [name for name in created_new if name not in created_old]
    remove = [name for name in created_old if name not in created_new]
    changed = {
        name
        for name in set(old_values) | set(new_values)
        if str(old_values.get(name)).lower() != str(new_values.get(name)).lower()
    }
    changed |= {
        n for n in set(old_conditions) | set(new_conditions) if old_conditions.get(n) != new_conditions.get(n)
    }
    changed |= set(add) | set(remove)
    modify = [
        name
        for name in created_new
        if name in created_old
        and (_normal(new[name]) != _normal(old[name]) or _references(new[name]) & changed)
    ]
    return {"Add": add, "Modify": modify, "Remove": remove}


def _normal(resource: dict[str, Any]) -> dict[str, Any]:
    """moto adds an empty Properties to a resource that has none: compare as if every resource had one."""
    return {**resource, "Properties": resource.get("Properties") or {}}


def _evaluate_conditions(conditions: dict[str, Any], values: dict[str, Any]) -> dict[str, bool]:
    """Conditions of a template under parameter values (Fn::Equals/Not/And/Or, Ref and Condition)."""
    results: dict[str, bool] = {}

    def operand(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Ref"}:
                return values[value["Ref"]]
            raise ValueError(f"unsupported condition operand {value!r}")
        return value

    def evaluate(expression: Any) -> bool:
        if isinstance(expression, bool):
            return expression
        (function, args), *rest = expression.items()
        if rest:
            raise ValueError(f"condition with more than one function: {expression!r}")
        if function == "Condition":
            return condition(args)
        if function == "Fn::Equals":
            left, right = (operand(a) for a in args)
            return str(left).lower() == str(right).lower()
        if function == "Fn::Not":
            return not evaluate(args[0])
        if function == "Fn::And":
            return all(evaluate(a) for a in args)
        if function == "Fn::Or":
            return any(evaluate(a) for a in args)
        raise ValueError(f"unsupported condition function {function}")

    def condition(name: str) -> bool:
        if name not in results:
            results[name] = evaluate(conditions[name])
        return results[name]

    for name in conditions:
        condition(name)
    return results


def _references(value: Any) -> set[str]:
    """Names (parameters, resources, conditions) a piece of template refers to."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add((arg if isinstance(arg, list) else str(arg).split("."))[0])
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                found |= _references(arg)
            elif key == "Fn::If":
                found.add(arg[0])
                found |= _references(arg[1:])
            elif key == "Condition" and isinstance(arg, str):
                found.add(arg)
            else:
                found |= _references(arg)
    return found


_original_update = parsing.ResourceMap.update
# Kept on stack deletion and on removal by an update; a failed *create* deletes RetainExceptOnCreate ones
# (moto's rollback keeps only "Retain"), as CloudFormation does.
RETAINED = ("Retain", "RetainExceptOnCreate")


def _update(
    self: parsing.ResourceMap, template: dict[str, Any], parameters: dict[str, Any] | None = None
) -> None:
    """moto's update, except that a removed resource leaves the stack (moto keeps listing it) and one with
    DeletionPolicy Retain is kept, not deleted (moto deletes it)."""
    removed = _build_resource_diff(self, template, parameters)["Remove"]
    for name in removed:
        if self._resource_json_map[name].get("DeletionPolicy") in RETAINED:
            self._parsed_resources.pop(name, None)  # moto then skips it ("never created")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unable to delete .*, as it was never created")
        _original_update(self, template, parameters)
    for name in removed:
        self._parsed_resources.pop(name, None)


def _build_change_set_actions(
    self: parsing.ResourceMap, template: dict[str, Any], parameters: dict[str, Any] | None = None
) -> dict[str, dict[str, dict[str, str]]]:
    """moto's change set preview, from the same diff as the update (with the change set's parameters)."""
    diff = _build_resource_diff(self, template, parameters)
    actions: dict[str, dict[str, dict[str, str]]] = {"Add": {}, "Modify": {}, "Remove": {}}
    for action, names in diff.items():
        for name in names:
            spec = (template["Resources"] if action != "Remove" else self._resource_json_map)[name]
            actions[action][name] = {"LogicalResourceId": name, "ResourceType": spec["Type"]}
    return actions


def _change_set_diff(self: ChangeSet) -> list[Any]:
    from moto.cloudformation.models import Change

    actions = _build_change_set_actions(self.stack.resource_map, self.template_dict, self.parameters)
    return [
        Change(action=action, logical_resource_id=name, resource_type=spec["ResourceType"])
        for action, resources in actions.items()
        for name, spec in resources.items()
    ]


def _stack_resources(self: Stack) -> list[Any]:
    """The stack's resources: those it created. (moto's listing creates missing ones as a side effect and
    shows resources whose condition is false as blank entries.)"""
    resource_map = self.resource_map
    created = (resource_map._parsed_resources.get(name) for name in resource_map._resource_json_map)
    return [resource for resource in created if resource is not None and not isinstance(resource, str)]


# ---------------------------------------------------------------- resource events, failures, rollback

_original_parse_and_create = parsing.parse_and_create_resource
_original_parse_and_update = parsing.parse_and_update_resource
_original_delete_resource = parsing.ResourceMap._delete_resource
_original_create_resources = Stack.create_resources
_original_stack_update = Stack.update
_original_stack_delete = Stack.delete


def _stack_of(resource_map: parsing.ResourceMap) -> Stack | None:
    from moto.cloudformation.models import cloudformation_backends

    deleting = getattr(resource_map, "_trailwatch_stack", None)  # DeleteStack takes the stack out first
    if deleting is not None:
        return deleting
    backend = cloudformation_backends[resource_map._account_id][resource_map._region_name]
    return backend.stacks.get(resource_map.stack_id)


def _stack_delete(self: Stack) -> None:
    """moto's DeleteStack, with DELETE_SKIPPED events for the resources kept by DeletionPolicy Retain."""
    resource_map = self.resource_map
    resource_map._trailwatch_stack = self  # type: ignore[attr-defined]
    for name, spec in list(resource_map._resource_json_map.items()):  # moto's delete knows only "Retain"
        if spec.get("DeletionPolicy") in RETAINED:
            resource_map._resource_json_map[name] = {**spec, "DeletionPolicy": "Retain"}
    retained = [
        (name, spec["Type"], _physical_id(resource_map._parsed_resources.get(name)))
        for name, spec in resource_map._resource_json_map.items()
        if spec.get("DeletionPolicy") in RETAINED and resource_map._parsed_resources.get(name) is not None
    ]
    _original_stack_delete(self)
    for name, kind, physical_id in retained:
        _resource_event(resource_map, name, kind, "DELETE_SKIPPED", physical_id)


def _resource_event(
    resource_map: parsing.ResourceMap,
    logical_id: str,
    resource_type: str,
    status: str,
    physical_id: str = "",
    reason: str | None = None,
) -> None:
    """A stack event for one resource, as CloudFormation records them (moto records stack events only)."""
    from moto.cloudformation.models import Event

    stack = _stack_of(resource_map)
    if stack is not None:
        stack.events.append(
            Event(
                stack_id=stack.stack_id,
                stack_name=stack.name,
                logical_resource_id=logical_id,
                physical_resource_id=physical_id,
                resource_type=resource_type,
                resource_status=status,
                resource_status_reason=reason,
                resource_properties=None,
            )
        )


def _reason(err: BaseException) -> str:
    return str(getattr(err, "message", "") or err)


def _physical_id(resource: Any) -> str:
    return str(getattr(resource, "physical_resource_id", "") or "")


def _parse_and_create_resource(
    logical_id: str,
    resource_json: dict[str, Any],
    resources_map: parsing.ResourceMap,
    account_id: str,
    region_name: str,
) -> Any:
    """moto's resource creation with CREATE_* events; a type moto cannot create fails (moto skips it)."""
    kind = resource_json.get("Type", "")
    condition = resource_json.get("Condition")
    if condition and not resources_map.lazy_condition_map[condition]:
        return None
    _resource_event(resources_map, logical_id, kind, "CREATE_IN_PROGRESS")
    try:
        resource = _original_parse_and_create(
            logical_id, resource_json, resources_map, account_id, region_name
        )
        if resource is None and kind not in parsing.NULL_MODELS:
            raise ValidationError(
                message=f"{kind} is not supported by the local AWS ({logical_id} not created)"
            )
    except Exception as err:
        _resource_event(resources_map, logical_id, kind, "CREATE_FAILED", reason=_reason(err))
        raise
    _resource_event(resources_map, logical_id, kind, "CREATE_COMPLETE", _physical_id(resource))
    return resource


def _parse_and_update_resource(
    logical_id: str,
    resource_json: dict[str, Any],
    resources_map: parsing.ResourceMap,
    account_id: str,
    region_name: str,
) -> Any:
    kind = resource_json.get("Type", "")
    stack = _stack_of(resources_map)
    mine = [e for e in (stack.events if stack else []) if e.logical_resource_id == logical_id]
    retry = bool(mine) and mine[-1].resource_status == "UPDATE_FAILED"  # moto retries a failed update
    if not retry:
        _resource_event(resources_map, logical_id, kind, "UPDATE_IN_PROGRESS")
    try:
        resource = _original_parse_and_update(
            logical_id, resource_json, resources_map, account_id, region_name
        )
    except Exception as err:
        if not retry:
            _resource_event(resources_map, logical_id, kind, "UPDATE_FAILED", reason=_reason(err))
        raise
    _resource_event(resources_map, logical_id, kind, "UPDATE_COMPLETE", _physical_id(resource))
    return resource


def _delete_resource(self: parsing.ResourceMap, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
    """moto's deletion (retried by moto in dependency order), with DELETE_* events once it succeeds."""
    _original_delete_resource(self, parsed_resource, resource_json)
    logical_id = getattr(parsed_resource, "logical_resource_id", "")
    for status in ("DELETE_IN_PROGRESS", "DELETE_COMPLETE"):
        _resource_event(
            self, logical_id, resource_json.get("Type", ""), status, _physical_id(parsed_resource)
        )


def _roll_back_creation(stack: Stack, err: BaseException) -> None:
    """A failed creation as CloudFormation ends it: resources deleted, stack ROLLBACK_COMPLETE (moto answers
    the API call with the error and leaves the stack CREATE_IN_PROGRESS)."""
    failed = [e.logical_resource_id for e in stack.events if e.resource_status == "CREATE_FAILED"]
    stack.status = "ROLLBACK_IN_PROGRESS"
    stack._add_stack_event(
        "ROLLBACK_IN_PROGRESS",
        resource_status_reason=f"The following resource(s) failed to create: [{', '.join(failed)}]",
    )
    try:
        stack.resource_map.delete()
    except Exception as cleanup:  # the stack still ends; say what is left behind
        _warn(f"stack {stack.name}: rollback could not delete every resource: {_reason(cleanup)}")
    stack.resource_map._resource_json_map = {}  # a rolled-back stack has no resources and no outputs
    stack.output_map._output_json_map = {}
    stack.status = "ROLLBACK_COMPLETE"
    stack._add_stack_event("ROLLBACK_COMPLETE")


def _update_failed(stack: Stack, err: BaseException) -> None:
    """A failed update: the local AWS cannot restore the previous resources, and says so."""
    stack.status = "UPDATE_ROLLBACK_FAILED"
    stack._add_stack_event(
        "UPDATE_ROLLBACK_FAILED",
        resource_status_reason=f"{_reason(err)} (the local AWS does not roll back updates)",
    )


def _create_resources(self: Stack) -> None:
    try:
        _original_create_resources(self)
    except Exception as err:
        _roll_back_creation(self, err)


def _stack_update(self: Stack, *args: Any, **kwargs: Any) -> None:
    try:
        _original_stack_update(self, *args, **kwargs)
    except Exception as err:
        _update_failed(self, err)


# ---------------------------------------------------------------- registration

NEW_MODELS: tuple[type[CloudFormationModel], ...] = (
    BucketPolicy,
    QueuePolicy,
    TopicPolicy,
    Subscription,
    Trail,
    Alarm,
)
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


def models() -> tuple[type[CloudFormationModel], ...]:
    """Every model class of this module."""
    return NEW_MODELS + OVERRIDES


def register(log: LogFn | None = None) -> None:
    """Make moto's CloudFormation use our models (idempotent). `log` receives warnings about declared
    properties the local AWS does not emulate (default: this module's logger)."""
    global _warn
    if log is not None:
        _warn = log
    parsing.clean_json = _clean_json  # recursive calls inside moto's parser go through the module global
    CloudFormationBackend.execute_change_set = _execute_change_set  # type: ignore[method-assign]
    parsing.ResourceMap.build_resource_diff = _build_resource_diff  # type: ignore[method-assign]
    ChangeSet.diff = _change_set_diff  # type: ignore[method-assign]
    parsing.ResourceMap.update = _update  # type: ignore[method-assign]
    Stack.stack_resources = property(_stack_resources)  # type: ignore[assignment,method-assign]
    parsing.parse_and_create_resource = _parse_and_create_resource
    parsing.parse_and_update_resource = _parse_and_update_resource
    parsing.ResourceMap._delete_resource = _delete_resource  # type: ignore[method-assign]
    Stack.create_resources = _create_resources  # type: ignore[method-assign]
    Stack.update = _stack_update  # type: ignore[method-assign]
    Stack.delete = _stack_delete  # type: ignore[method-assign]
    FakeBucket.get_permission = _bucket_permission  # type: ignore[method-assign]
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
    model_map = parsing.get_model_map()  # the cached dict: our entries must win over moto's originals
    name_map = parsing.get_name_type_map()
    for model in models():
        model_map[model.cloudformation_type()] = model
        name_map[model.cloudformation_type()] = model.cloudformation_name_type()
