"""main.yaml: the processing queue's age alarm (a stopped pipeline must not go unnoticed)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.template_helpers import load_template, props, resolve, visibility_timeout_for

# SQS's ApproximateAgeOfOldestMessage skips a message once it has been received this often.
RECEIVES_COUNTED = 3


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load_template()


def threshold_for(template: dict[str, Any], parameters: dict[str, str]) -> float:
    return float(resolve(template, props(template, "QueueAgeAlarm")["Threshold"], parameters))


def function_timeouts(template: dict[str, Any]) -> list[int]:
    return sorted(int(v) for v in template["Parameters"]["FunctionTimeout"]["AllowedValues"])


def retry_violations(template: dict[str, Any]) -> list[int]:
    """Function timeouts whose default age threshold a file retried within SQS's counted receives reaches."""
    return [
        timeout
        for timeout in function_timeouts(template)
        if threshold_for(template, {"FunctionTimeout": str(timeout)})
        <= RECEIVES_COUNTED * visibility_timeout_for(template, timeout)
    ]


def test_queue_age_alarm_watches_the_processing_queue(base: dict[str, Any]) -> None:
    alarm = props(base, "QueueAgeAlarm")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        "Maximum",
    )
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["LogProcessingQueue", "QueueName"]}}
    ]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}]
    assert alarm["AlarmName"] == {"Fn::Sub": "${AWS::StackName}-log-queue-stalled"}


def test_queue_age_threshold_is_at_least_half_an_hour_by_default(base: dict[str, Any]) -> None:
    for timeout in function_timeouts(base):
        assert threshold_for(base, {"FunctionTimeout": str(timeout)}) >= 1800, timeout


def test_queue_age_threshold_is_above_the_retries_of_one_file(base: dict[str, Any]) -> None:
    """A file that fails is received again after each visibility timeout; until its third receive it
    counts in the metric, so the default threshold must stay above three visibility timeouts."""
    assert retry_violations(base) == []


def test_retry_check_catches_a_threshold_below_the_retries(base: dict[str, Any]) -> None:
    template = copy.deepcopy(base)
    template["Mappings"]["QueueAgeAlarmThreshold"]["ByFunctionTimeout"]["900"] = 1800
    assert retry_violations(template) == [900]


def test_queue_age_threshold_parameter_overrides_the_mapping(base: dict[str, Any]) -> None:
    assert base["Parameters"]["QueueAgeAlarmSeconds"]["Default"] == 0
    assert threshold_for(base, {"QueueAgeAlarmSeconds": "5", "FunctionTimeout": "900"}) == 5
