"""CloudFormation resource types moto 5.2.1 lacks, written as moto writes its own models: a class per type
(a direct subclass of `CloudFormationModel`, so moto's model map finds it) whose create / update / delete
class methods call moto's backends.

`AWS::S3::BucketPolicy`, `AWS::SQS::QueuePolicy`, `AWS::SNS::TopicPolicy`, `AWS::SNS::Subscription`,
`AWS::CloudTrail::Trail`, `AWS::CloudWatch::Alarm`. Trails get a subclass of moto's trail that answers as AWS
does (`_TrailState`: HasCustomEventSelectors).
"""

from __future__ import annotations

import json
from operator import attrgetter
from typing import Any, ClassVar, Self

from moto.cloudtrail.models import Trail as MotoTrail
from moto.core.common_models import CloudFormationModel

from trailwatch.local.cfn_common import Cfn, Json, moto_backend, queue_name


class _Model(Cfn):
    """Identity of a type moto lacks, known by `name` (its physical id): a subclass sets CFN_TYPE, NAME_TYPE
    (the property naming it; "" for none), SERVICE (its moto backend) and GET_ATT, and writes `_create`
    (moto's create_from_cloudformation_json, given the properties). An update is `_replacement_name` then
    `_update`; a delete is `delete` (with an instance) or `_delete_named` (moto's
    delete_from_cloudformation_json, by name only)."""

    CFN_TYPE: ClassVar[str]
    NAME_TYPE: ClassVar[str] = ""
    GET_ATT: ClassVar[dict[str, str]] = {}  # Fn::GetAtt attribute -> the (dotted) Python attribute giving it
    SERVICE: ClassVar[str]

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
        cls, resource_name: str, cloudformation_json: Json, account_id: str, region_name: str, **kwargs: Any
    ) -> Self:
        return cls._create(resource_name, cls._props(cloudformation_json), account_id, region_name)

    @classmethod
    def _create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> Self:
        """The resource `name` made from its template properties through moto's backend."""
        raise NotImplementedError

    def delete(self, account_id: str, region_name: str) -> None:
        type(self).delete_from_cloudformation_json(self.name, {}, self.account_id, self.region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Self,
        new_resource_name: str,
        cloudformation_json: Json,
        account_id: str,
        region_name: str,
    ) -> Self:
        """Replace the resource when `_replacement_name` names one (delete, create), else `_update`."""
        props = cls._props(cloudformation_json)
        name = original_resource._replacement_name(props, new_resource_name)
        if name is None:
            return original_resource._update(props, cloudformation_json)
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(name, cloudformation_json, account_id, region_name)  # type: ignore[attr-defined, no-any-return]

    def _replacement_name(self, props: dict[str, Any], new_resource_name: str) -> str | None:
        """The name of the resource replacing this one for `props`; None: update in place."""
        return None

    def _update(self, props: dict[str, Any], cloudformation_json: Json) -> Self:
        """In place, by default: put the resource again under its name (moto's put calls overwrite)."""
        return type(self).create_from_cloudformation_json(  # type: ignore[attr-defined, no-any-return]
            self.name, cloudformation_json, self.account_id, self.region_name
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Json, account_id: str, region_name: str
    ) -> None:
        if resource_name:
            cls._delete_named(moto_backend(cls.SERVICE, account_id, region_name), resource_name)

    @classmethod
    def _delete_named(cls, backend: Any, name: str) -> None:
        raise NotImplementedError


class _PolicyAttachment(_Model):
    """Bucket, queue and topic policies: no name of their own (the logical id is the physical id and, for
    queues and topics, `Id`); the policy goes with `delete()`, and an update takes the old policy off its
    targets, then puts the new one on."""

    GET_ATT = {"Id": "name"}

    def _replacement_name(self, props: dict[str, Any], new_resource_name: str) -> str | None:
        """The old policy comes off its targets, then the new one goes on (same physical id)."""
        return self.name

    @classmethod
    def _delete_named(cls, backend: Any, name: str) -> None:
        """Only reached without an instance: nothing to take off."""

    @classmethod
    def _targets_and_policy(cls, props: dict[str, Any], targets: str, what: str) -> tuple[list[str], str]:
        """The list property `targets` (of `what`) and the policy text, both required."""
        listed = cls._require(props, targets)
        if not isinstance(listed, list):
            raise cls._fail(f"Properties.{targets} must be a list of {what}, got {listed!r}")
        return listed, cls._policy_text(cls._require(props, "PolicyDocument"))


# ---------------------------------------------------------------- S3


class BucketPolicy(_PolicyAttachment, CloudFormationModel):
    """AWS::S3::BucketPolicy: the bucket's policy document (get-bucket-policy)."""

    CFN_TYPE = "AWS::S3::BucketPolicy"
    SERVICE = "s3"
    GET_ATT = {}

    def __init__(self, name: str, bucket: str, account_id: str, region_name: str) -> None:
        super().__init__(name, account_id, region_name)
        self.bucket = bucket

    @classmethod
    def _create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> BucketPolicy:
        bucket = cls._require(props, "Bucket")
        policy = cls._policy_text(cls._require(props, "PolicyDocument"))
        moto_backend("s3", account_id, region_name).put_bucket_policy(bucket, policy.encode())
        return cls(name, bucket, account_id, region_name)

    def _replacement_name(self, props: dict[str, Any], new_resource_name: str) -> str | None:
        """The same bucket's policy is put again in place; another bucket's takes it off the old one."""
        return self.name if self._require(props, "Bucket") != self.bucket else None

    def delete(self, account_id: str, region_name: str) -> None:
        backend = moto_backend(self.SERVICE, self.account_id, self.region_name)
        if self.bucket in backend.buckets:
            backend.delete_bucket_policy(self.bucket)


# ---------------------------------------------------------------- SQS and SNS


class _ListedPolicy(_PolicyAttachment):
    """A policy put on each listed queue or topic (`TARGETS`: the list property and what it lists)."""

    TARGETS: ClassVar[tuple[str, str]]

    def __init__(self, name: str, targets: list[str], account_id: str, region_name: str) -> None:
        super().__init__(name, account_id, region_name)
        self.targets = targets

    @classmethod
    def _create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> Self:
        targets, policy = cls._targets_and_policy(props, *cls.TARGETS)
        backend = moto_backend(cls.SERVICE, account_id, region_name)
        for target in targets:
            cls._put(backend, target, policy)
        return cls(name, targets, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = moto_backend(self.SERVICE, self.account_id, self.region_name)
        for target in self.targets:
            self._take_off(backend, target)

    @classmethod
    def _put(cls, backend: Any, target: str, policy: str) -> None:
        raise NotImplementedError

    def _take_off(self, backend: Any, target: str) -> None:
        raise NotImplementedError


class QueuePolicy(_ListedPolicy, CloudFormationModel):
    """AWS::SQS::QueuePolicy: the `Policy` attribute of each listed queue."""

    CFN_TYPE = "AWS::SQS::QueuePolicy"
    SERVICE = "sqs"
    TARGETS = ("Queues", "queue URLs")

    @classmethod
    def _put(cls, backend: Any, target: str, policy: str) -> None:
        backend.set_queue_attributes(queue_name(target), {"Policy": policy})

    def _take_off(self, backend: Any, target: str) -> None:
        if queue_name(target) in backend.queues:
            backend.set_queue_attributes(queue_name(target), {"Policy": ""})


class TopicPolicy(_ListedPolicy, CloudFormationModel):
    """AWS::SNS::TopicPolicy: the `Policy` attribute of each listed topic (default policy back on delete)."""

    CFN_TYPE = "AWS::SNS::TopicPolicy"
    SERVICE = "sns"
    TARGETS = ("Topics", "topic ARNs")

    @classmethod
    def _put(cls, backend: Any, target: str, policy: str) -> None:
        backend.get_topic(target).policy = policy

    def _take_off(self, backend: Any, target: str) -> None:
        topic = backend.topics.get(target)
        if topic is not None:
            topic._policy_json = topic._create_default_topic_policy(
                self.region_name, self.account_id, topic.name
            )


CONFIRMED_BY_RECIPIENT = ("email", "email-json")


class Subscription(_Model, CloudFormationModel):
    """AWS::SNS::Subscription with its attributes (RawMessageDelivery, FilterPolicy, RedrivePolicy...).
    Its `name` is its ARN."""

    CFN_TYPE = "AWS::SNS::Subscription"
    SERVICE = "sns"
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
        backend = moto_backend(cls.SERVICE, account_id, region_name)
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

    def _replacement_name(self, props: dict[str, Any], new_resource_name: str) -> str | None:
        """TopicArn, Protocol and Endpoint require replacement; the attributes change in place."""
        named = (props.get("TopicArn"), props.get("Protocol"), props.get("Endpoint"))
        return new_resource_name if named != (self.topic_arn, self.protocol, self.endpoint) else None

    def _update(self, props: dict[str, Any], cloudformation_json: Json) -> Self:
        backend = moto_backend(self.SERVICE, self.account_id, self.region_name)
        subscription = backend.subscriptions[self.name]
        for name in self.ATTRIBUTES:
            if name not in props:
                subscription.attributes.pop(name, None)
        self._apply_attributes(backend, self.name, props)
        return self

    @classmethod
    def _delete_named(cls, backend: Any, name: str) -> None:
        backend.unsubscribe(name)


# ---------------------------------------------------------------- CloudTrail


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
    SERVICE = "cloudtrail"
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
        return moto_backend(self.SERVICE, self.account_id, self.region_name).get_trail(self.name)

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
        backend = moto_backend(cls.SERVICE, account_id, region_name)
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

    def _replacement_name(self, props: dict[str, Any], new_resource_name: str) -> str | None:
        """A new TrailName replaces the trail; everything else changes in place."""
        name = props.get("TrailName", self.name)
        return name if name != self.name else None

    def _update(self, props: dict[str, Any], cloudformation_json: Json) -> Self:
        is_logging = self._is_logging(props)
        trail = self.trail
        trail.bucket_name = self._require(props, "S3BucketName")
        trail.check_bucket_exists()
        trail.s3_key_prefix = props.get("S3KeyPrefix")
        trail.sns_topic_name = props.get("SnsTopicName")
        trail.include_global_service_events = self._bool(props, "IncludeGlobalServiceEvents", True)
        trail.is_multi_region = self._bool(props, "IsMultiRegionTrail", False)
        trail.log_validation = self._bool(props, "EnableLogFileValidation", False)
        trail.is_org_trail = self._bool(props, "IsOrganizationTrail", False)
        trail.cw_log_group_arn = props.get("CloudWatchLogsLogGroupArn")
        trail.cw_role_arn = props.get("CloudWatchLogsRoleArn")
        trail.kms_key_id = props.get("KMSKeyId")
        self._apply_selectors_and_status(props, is_logging)
        return self

    @classmethod
    def _delete_named(cls, backend: Any, name: str) -> None:
        backend.delete_trail(name)


# ---------------------------------------------------------------- CloudWatch


class Alarm(_Model, CloudFormationModel):
    """AWS::CloudWatch::Alarm (metric alarms; Metrics math queries included)."""

    CFN_TYPE = "AWS::CloudWatch::Alarm"
    SERVICE = "cloudwatch"
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
        return moto_backend(self.SERVICE, self.account_id, self.region_name).alarms[self.name]

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
        moto_backend(cls.SERVICE, account_id, region_name).put_metric_alarm(
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

    def _replacement_name(self, props: dict[str, Any], new_resource_name: str) -> str | None:
        """A new AlarmName replaces the alarm; the same name is put again in place."""
        name = props.get("AlarmName") or self.name
        return name if name != self.name else None

    @classmethod
    def _delete_named(cls, backend: Any, name: str) -> None:
        backend.delete_alarms([name])


NEW_MODELS: tuple[type[CloudFormationModel], ...] = (
    BucketPolicy,
    QueuePolicy,
    TopicPolicy,
    Subscription,
    Trail,
    Alarm,
)
