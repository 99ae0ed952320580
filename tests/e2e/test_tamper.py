"""On the local AWS: a log file overwritten before it is processed hides nothing (the
processor reads the version each notification names), and the overwrite, then a delete, of the log object
are each one operational ``high`` alert naming the key.

The stack is the real main.yaml (versioned trail bucket, ObjectCreated and ObjectRemoved notifications)
with the real processor zip. The recorder is off: every object in the trail bucket is written here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from trailwatch import synth

from tests.e2e.conftest import ACCOUNT, REGION, Watch

pytestmark = pytest.mark.e2e

STACK = "tw-tamper"
BUCKET = "tw-tamper-trail-bucket"
OVERWRITTEN = "CloudTrail log object overwritten"
DELETED = "CloudTrail log object deleted"


def _tampered(watch: Watch, title: str) -> list[dict[str, Any]]:
    return [a for a in watch.alerts if a.get("rule") == "trailwatch-operational" and a["title"] == title]


@pytest.fixture(scope="module")
def watch(deploy_watched: Callable[..., Watch]) -> Watch:
    return deploy_watched(STACK, BUCKET, FunctionTimeout="30")


def test_overwritten_log_file_is_processed_and_alerted(watch: Watch) -> None:
    """Write A (StopLogging + CreateUser among background calls), overwrite it at once with a benign B:
    both events are stored and alerted, and one tamper alert names the key and both versions."""
    user = synth.iam_user("mallory")
    stop = synth.make_record("StopLogging", identity=user)
    create = synth.make_record("CreateUser", identity=user)
    rng = random.Random(15)
    hostile = [*synth.background_records(20, rng, monitored_fraction=0.0), stop, create]
    benign = synth.background_records(20, rng, monitored_fraction=0.0)
    key = synth.log_key(ACCOUNT, REGION, unique="OVERWRITE")
    s3 = watch.client("s3")
    first = s3.put_object(Bucket=BUCKET, Key=key, Body=synth.gzip_log(hostile))["VersionId"]
    second = s3.put_object(Bucket=BUCKET, Key=key, Body=synth.gzip_log(benign))["VersionId"]

    wanted = {stop["eventID"], create["eventID"]}
    watch.wait_until(
        lambda: (
            wanted <= set(watch.items)
            and wanted <= {i for a in watch.alerts for i in a.get("eventIDs", [])}
            and bool(_tampered(watch, OVERWRITTEN))
        ),
        "StopLogging and CreateUser stored and alerted, and the overwrite alert",
    )
    assert {watch.items[i]["event_name"]["S"] for i in wanted} == {"StopLogging", "CreateUser"}
    assert {watch.items[i]["alert_status"]["S"] for i in wanted} == {"sent"}
    [alert] = _tampered(watch, OVERWRITTEN)
    assert (alert["severity"], alert["source"]) == ("high", f"s3://{BUCKET}/{key}")
    assert first in alert["description"] and second in alert["description"]


def test_deleted_log_file_is_alerted(watch: Watch) -> None:
    key = synth.log_key(ACCOUNT, REGION, unique="DELETED")
    s3 = watch.client("s3")
    s3.put_object(Bucket=BUCKET, Key=key, Body=synth.gzip_log(synth.background_records(5, random.Random(4))))
    marker = s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
    watch.wait_until(
        lambda: any(a["source"] == f"s3://{BUCKET}/{key}" for a in _tampered(watch, DELETED)),
        "the delete alert",
    )
    [alert] = [a for a in _tampered(watch, DELETED) if a["source"] == f"s3://{BUCKET}/{key}"]
    assert (alert["severity"], alert["version_id"]) == ("high", marker)
    assert "ObjectRemoved:DeleteMarkerCreated" in alert["description"]
