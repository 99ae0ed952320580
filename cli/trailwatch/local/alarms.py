"""CloudWatch metric alarms evaluated on the local AWS: moto stores alarms but never evaluates them.

`AlarmEvaluator` is a background service of `LocalAWS`. Every `interval` seconds it

- samples the SQS metrics CloudWatch receives from SQS, from moto's SQS state, per queue (dimension
  ``QueueName``): ``ApproximateNumberOfMessagesVisible``, ``ApproximateNumberOfMessagesNotVisible`` and
  ``ApproximateAgeOfOldestMessage`` (seconds; messages received three times or more are skipped, as SQS
  documents);
- reads the Lambda metrics the local Lambda runtime puts into moto's CloudWatch (`record_invocation`:
  ``Invocations``, ``Errors``, ``Duration`` per ``FunctionName``, as the Lambda service publishes them),
  and any metric put with ``PutMetricData``;
- evaluates every metric alarm of the region (Statistic, Period, EvaluationPeriods, DatapointsToAlarm,
  Threshold, ComparisonOperator, TreatMissingData), sets its state and, when the state changes and actions
  are enabled, publishes to each SNS topic of the new state's actions (AlarmActions, OKActions,
  InsufficientDataActions) the JSON message CloudWatch publishes, with the subject CloudWatch uses and no
  message attributes (CloudWatch sets none; so an attribute-scoped filter policy never matches it).

Local differences, on purpose: a period is scaled by `period_scale` (default 0.01: a 300 s period is
evaluated over the last 3 s, at least `interval`), so a test or `trailwatch demo` sees an alarm within
seconds; the notification's ``Trigger.Period`` still shows the declared period. SQS metrics are sampled
every `interval` instead of every minute. Alarms on metric math (``Metrics``) and anomaly detection are not
evaluated (logged once). A new alarm starts in INSUFFICIENT_DATA as on AWS (moto creates it OK).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trailwatch.local.periodic import PeriodicThread

LogFn = Callable[[str], None]

DEFAULT_INTERVAL = 1.0
DEFAULT_PERIOD_SCALE = 0.01
SAMPLE_HORIZON = 3600.0  # seconds of SQS samples kept
RECEIVES_BEFORE_BACK_OF_QUEUE = 3  # ApproximateAgeOfOldestMessage skips messages received this often
_INITIAL_REASON = "Unchecked: Initial alarm creation"  # moto's reason for a new alarm

REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)",
    "eu-central-1": "EU (Frankfurt)",
    "eu-north-1": "EU (Stockholm)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-south-1": "Asia Pacific (Mumbai)",
    "ca-central-1": "Canada (Central)",
    "sa-east-1": "South America (Sao Paulo)",
}

COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}

STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "Sum": sum,
    "Maximum": max,
    "Minimum": min,
    "Average": lambda values: sum(values) / len(values),
    "SampleCount": lambda values: float(len(values)),
}

MetricKey = tuple[str, str, frozenset[tuple[str, str]]]  # namespace, metric name, dimensions


def _cloudwatch(account_id: str, region: str) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[account_id][region]


def record_invocation(function_arn: str, *, ok: bool, duration_ms: float) -> None:
    """Put the metrics the Lambda service publishes for one invocation (AWS/Lambda, FunctionName)."""
    parts = function_arn.split(":")
    region, account_id, name = parts[3], parts[4], parts[6]
    dimensions = [{"Name": "FunctionName", "Value": name}]
    now = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, as moto keeps timestamps (GetMetricStatistics)
    _cloudwatch(account_id, region).put_metric_data(
        "AWS/Lambda",
        [
            {
                "MetricName": "Invocations",
                "Value": 1.0,
                "Unit": "Count",
                "Dimensions": dimensions,
                "Timestamp": now,
            },
            {
                "MetricName": "Errors",
                "Value": 0.0 if ok else 1.0,
                "Unit": "Count",
                "Dimensions": dimensions,
                "Timestamp": now,
            },
            {
                "MetricName": "Duration",
                "Value": duration_ms,
                "Unit": "Milliseconds",
                "Dimensions": dimensions,
                "Timestamp": now,
            },
        ],
    )


def sqs_gauges(account_id: str, region: str, now: float) -> dict[MetricKey, float]:
    """The SQS metrics of every queue of the region, read from moto's SQS state."""
    from moto.sqs.models import sqs_backends

    out: dict[MetricKey, float] = {}
    for name, queue in list(sqs_backends[account_id][region].queues.items()):
        dims = frozenset({("QueueName", name)})
        messages = list(getattr(queue, "_messages", []))
        visible = sum(1 for m in messages if m.visible and not m.delayed)
        out[("AWS/SQS", "ApproximateNumberOfMessagesVisible", dims)] = float(visible)
        out[("AWS/SQS", "ApproximateNumberOfMessagesNotVisible", dims)] = float(
            sum(1 for m in messages if not m.visible)
        )
        out[("AWS/SQS", "ApproximateAgeOfOldestMessage", dims)] = oldest_message_age(messages, now)
    return out


def oldest_message_age(messages: list[Any], now: float) -> float:
    """SQS's ApproximateAgeOfOldestMessage (seconds) of a queue's non-deleted `messages`.

    As SQS documents it: a message received three times or more and not deleted is moved to the back of the
    queue, and the metric points at the oldest message received fewer than three times. When every message
    has been received that often, the oldest of all (a local choice: SQS does not say)."""
    sent = [m for m in messages if m.sent_timestamp]
    if not sent:
        return 0.0
    fresh = [m for m in sent if m.approximate_receive_count < RECEIVES_BEFORE_BACK_OF_QUEUE]
    oldest = min(m.sent_timestamp for m in (fresh or sent))
    return max(0.0, now - oldest / 1000)


@dataclass(frozen=True)
class Transition:
    """One state change of one alarm, as published."""

    alarm_name: str
    old_state: str
    new_state: str
    reason: str
    topics: tuple[str, ...]


class AlarmEvaluator:
    """Evaluates the metric alarms of one account and region of the local AWS (a `LocalAWS` service)."""

    def __init__(
        self,
        account_id: str,
        region: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        period_scale: float = DEFAULT_PERIOD_SCALE,
        log: LogFn | None = None,
    ) -> None:
        if interval <= 0 or period_scale <= 0:
            raise ValueError("AlarmEvaluator: interval and period_scale must be > 0")
        self.account_id = account_id
        self.region = region
        self.interval = interval
        self.period_scale = period_scale
        self.log: LogFn = log or (lambda message: None)
        self._samples: dict[MetricKey, deque[tuple[float, float]]] = {}
        self._skipped: set[str] = set()
        self._lock = threading.Lock()
        self._evaluation = PeriodicThread("cloudwatch-alarms", interval, self.evaluate_once, self._failed)

    # ---- service interface

    def start(self) -> None:
        self._evaluation.start()

    def stop(self) -> None:
        self._evaluation.stop(timeout=10)

    def _failed(self, err: Exception) -> None:  # the emulator must keep serving; say what broke
        self.log(f"alarm evaluation failed: {err!r}")

    # ---- evaluation

    def evaluate_once(self, now: float | None = None) -> list[Transition]:
        """Sample the SQS metrics, then evaluate every metric alarm; the state changes made."""
        now = time.time() if now is None else now
        with self._lock:  # the service thread and a caller (a test) must not both publish one change
            self._sample(now)
            backend = _cloudwatch(self.account_id, self.region)
            changes = []
            for alarm in list(backend.alarms.values()):
                change = self._evaluate(backend, alarm, now)
                if change is not None:
                    changes.append(change)
            return changes

    def _sample(self, now: float) -> None:
        for key, value in sqs_gauges(self.account_id, self.region, now).items():
            samples = self._samples.setdefault(key, deque())
            samples.append((now, value))
            while samples and samples[0][0] < now - SAMPLE_HORIZON:
                samples.popleft()

    def local_period(self, period: int) -> float:
        """The seconds one of the alarm's periods lasts locally."""
        return max(self.interval, period * self.period_scale)

    def values(self, key: MetricKey, start: float, end: float, backend: Any) -> list[float]:
        """Every datapoint of `key` with start < timestamp <= end (SQS samples and moto's metric data)."""
        found = [v for t, v in list(self._samples.get(key, ())) if start < t <= end]
        namespace, name, dims = key
        for datum in list(backend.metric_data):
            if datum.namespace != namespace or datum.name != name or not hasattr(datum, "value"):
                continue
            if frozenset((d.name, d.value) for d in datum.dimensions) != dims:
                continue
            if start < _epoch(datum.timestamp) <= end:
                found.append(float(datum.value))
        return found

    def _evaluate(self, backend: Any, alarm: Any, now: float) -> Transition | None:
        if alarm.metric_data_queries or alarm.comparison_operator not in COMPARISONS or not alarm.metric_name:
            if alarm.name not in self._skipped:
                self._skipped.add(alarm.name)
                self.log(f"alarm {alarm.name}: metric math / anomaly detection is not evaluated locally")
            return None
        if alarm.state_reason == _INITIAL_REASON and alarm.state_value == "OK":
            alarm.update_state(f"{_INITIAL_REASON} (INSUFFICIENT_DATA as on AWS)", "{}", "INSUFFICIENT_DATA")
        statistic = STATISTICS.get(alarm.statistic or "")
        if statistic is None:
            return None
        key: MetricKey = (
            alarm.namespace,
            alarm.metric_name,
            frozenset((d.name, d.value) for d in alarm.dimensions),
        )
        period = self.local_period(int(alarm.period))
        evaluation_periods = int(alarm.evaluation_periods)
        datapoints: list[float | None] = []
        for i in range(evaluation_periods):
            values = self.values(key, now - (i + 1) * period, now - i * period, backend)
            datapoints.append(statistic(values) if values else None)
        new_state, reason = self._decide(alarm, datapoints)
        if new_state is None or new_state == alarm.state_value:
            return None
        return self._transition(backend, alarm, new_state, reason, datapoints, now)

    @staticmethod
    def _decide(alarm: Any, datapoints: list[float | None]) -> tuple[str | None, str]:
        compare, words = COMPARISONS[alarm.comparison_operator]
        threshold = float(alarm.threshold)
        needed = int(alarm.datapoints_to_alarm or alarm.evaluation_periods)
        treat = alarm.treat_missing_data or "missing"
        present = [v for v in datapoints if v is not None]
        missing = len(datapoints) - len(present)
        breaching = sum(1 for v in present if compare(v, threshold)) + (
            missing if treat == "breaching" else 0
        )
        shown = ", ".join(f"{v!r}" for v in present)
        if breaching >= needed:
            return "ALARM", (
                f"Threshold Crossed: {breaching} out of the last {len(datapoints)} datapoints [{shown}] was "
                f"{words} the threshold ({threshold}) "
                f"(minimum {needed} datapoint for OK -> ALARM transition)."
            )
        if not present and treat in ("missing", "ignore"):
            if treat == "ignore":
                return None, ""
            return "INSUFFICIENT_DATA", (f"Insufficient Data: {len(datapoints)} datapoints were unknown.")
        return "OK", (
            f"Threshold Crossed: {len(datapoints) - breaching} out of the last {len(datapoints)} datapoints "
            f"[{shown}] was not {words} the threshold ({threshold}) (minimum 1 datapoint for ALARM -> OK "
            "transition)."
        )

    def _transition(
        self,
        backend: Any,
        alarm: Any,
        new_state: str,
        reason: str,
        datapoints: list[float | None],
        now: float,
    ) -> Transition:
        old_state = alarm.state_value
        reason_data = json.dumps(
            {
                "version": "1.0",
                "queryDate": _stamp(now),
                "recentDatapoints": [v for v in datapoints if v is not None],
                "threshold": float(alarm.threshold),
                "evaluatedDatapoints": [],
            }
        )
        backend.set_alarm_state(alarm.name, reason, reason_data, new_state)
        actions = {
            "ALARM": alarm.alarm_actions,
            "OK": alarm.ok_actions,
            "INSUFFICIENT_DATA": alarm.insufficient_data_actions,
        }[new_state] or []
        topics = tuple(a for a in actions if a.startswith("arn:") and a.split(":")[2] == "sns")
        self.log(f"alarm {alarm.name}: {old_state} -> {new_state}")
        if alarm.actions_enabled:
            message = json.dumps(self.notification(alarm, old_state, new_state, reason, now))
            subject = f'{new_state}: "{alarm.name}" in {REGION_NAMES.get(self.region, self.region)}'
            for topic in topics:
                self._publish(topic, message, subject[:100])
        return Transition(alarm.name, old_state, new_state, reason, topics if alarm.actions_enabled else ())

    def notification(
        self, alarm: Any, old_state: str, new_state: str, reason: str, now: float
    ) -> dict[str, Any]:
        """The JSON CloudWatch publishes to an alarm's SNS topic."""
        return {
            "AlarmName": alarm.name,
            "AlarmDescription": alarm.description,
            "AWSAccountId": self.account_id,
            "AlarmConfigurationUpdatedTimestamp": _stamp(_epoch(alarm.configuration_updated_timestamp)),
            "NewStateValue": new_state,
            "NewStateReason": reason,
            "StateChangeTime": _stamp(now),
            "Region": REGION_NAMES.get(self.region, self.region),
            "AlarmArn": alarm.alarm_arn,
            "OldStateValue": old_state,
            "OKActions": list(alarm.ok_actions or []),
            "AlarmActions": list(alarm.alarm_actions or []),
            "InsufficientDataActions": list(alarm.insufficient_data_actions or []),
            "Trigger": {
                "MetricName": alarm.metric_name,
                "Namespace": alarm.namespace,
                "StatisticType": "Statistic",
                "Statistic": str(alarm.statistic).upper(),
                "Unit": alarm.unit,
                "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
                "Period": int(alarm.period),
                "EvaluationPeriods": int(alarm.evaluation_periods),
                "DatapointsToAlarm": int(alarm.datapoints_to_alarm or alarm.evaluation_periods),
                "ComparisonOperator": alarm.comparison_operator,
                "Threshold": float(alarm.threshold),
                "TreatMissingData": alarm.treat_missing_data or "missing",
                "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile or "",
            },
        }

    def _publish(self, topic_arn: str, message: str, subject: str) -> None:
        from moto.sns.models import sns_backends

        region, account_id = topic_arn.split(":")[3:5]
        try:
            sns_backends[account_id][region].publish(message, arn=topic_arn, subject=subject)
        except (
            Exception
        ) as err:  # a deleted topic: CloudWatch records a failed action, the alarm still changes
            self.log(f"alarm notification to {topic_arn} failed: {err!r}")


def _stamp(epoch: float) -> str:
    """CloudWatch's timestamp format in alarm notifications: 2026-12-03T06:50:12.345+0000."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _epoch(moment: datetime) -> float:
    """Seconds since the epoch; moto keeps naive UTC datetimes."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()
