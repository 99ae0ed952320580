"""A config written with a CloudWatch Logs `filter_pattern`, uploaded with `trailwatch upload-config`
(which runs its tests first), detects a record of a log file written to the trail bucket on the local AWS.

The stack is the real main.yaml with the real processor zip; the recorder is off, so the only log file is
the one this module writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from trailwatch import synth
from trailwatch.local.server import LocalAWS
from trailwatch.main import cli

from tests.e2e.conftest import ACCOUNT, REGION, ClientFactory

pytestmark = pytest.mark.e2e

STACK = "tw-filter-pattern"
BUCKET = "tw-filter-pattern-trail-bucket"
WAIT_SECONDS = 40.0
RULE = "kms-key-disabled-fp"
FILTER = (
    "{($.eventSource=kms.amazonaws.com) && (($.eventName=DisableKey) || ($.eventName=ScheduleKeyDeletion))}"
)


def _record(event_id: str, name: str) -> dict:
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice"},
        "eventTime": "2026-12-03T07:00:00Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": "203.0.113.7",
        "eventID": event_id,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    }


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "fp.json"
    path.write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "id": RULE,
                        "severity": "high",
                        "filter_pattern": FILTER,
                        "tests": [
                            {"record": _record("t1", "ScheduleKeyDeletion"), "expect": "match"},
                            {"record": _record("t2", "Decrypt"), "expect": "no-match"},
                        ],
                    }
                ]
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def outputs(deploy_processor: Callable[..., dict[str, str]]) -> dict[str, str]:
    return deploy_processor(STACK, BUCKET, FunctionTimeout="30")


def test_filter_pattern_config_uploaded_and_matched_end_to_end(
    local_aws: LocalAWS,
    aws_client: ClientFactory,
    outputs: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    args = ["--endpoint-url", local_aws.endpoint, "--stack-name", STACK, "upload-config"]
    result = CliRunner().invoke(cli, [*args, str(_config(tmp_path)), "--yes"])
    assert result.exit_code == 0, result.output

    records = [_record("e2e-disable", "DisableKey"), _record("e2e-decrypt", "Decrypt")]
    key = synth.log_key(ACCOUNT, REGION, unique="FILTERPATTERN")
    aws_client("s3").put_object(Bucket=BUCKET, Key=key, Body=synth.gzip_log(records))

    ddb = aws_client("dynamodb")
    deadline = time.monotonic() + WAIT_SECONDS
    items: dict[str, dict] = {}
    while "e2e-disable" not in items:
        assert time.monotonic() < deadline, f"no item for the DisableKey record; items: {sorted(items)}"
        time.sleep(0.5)
        for page in ddb.get_paginator("scan").paginate(TableName=outputs["EventsTableName"]):
            for item in page["Items"]:
                if not item["EventId"]["S"].startswith("trailwatch#"):
                    items[item["EventId"]["S"]] = item
    assert items["e2e-disable"]["rule_id"]["S"] == RULE
    assert items["e2e-disable"]["log_key"]["S"] == key
    assert "e2e-decrypt" not in items
