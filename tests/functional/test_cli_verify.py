"""verify's pieces that need no AWS: the probe record and template value resolution."""

from __future__ import annotations

from datetime import UTC, datetime

from trailwatch import verify
from trailwatch_processor.config import Config
from trailwatch_processor.config_schema import validate_config
from trailwatch_processor.patterns import compile_config

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _config(*rule_list: dict) -> Config:
    return validate_config({"rules": list(rule_list)})


def test_probe_picks_the_first_rule_a_plain_record_satisfies():
    config = _config(
        {"id": "needs-error", "pattern": {"eventName": ["DeleteTrail"], "errorCode": [{"exists": True}]}},
        {
            "id": "kms",
            "pattern": {"eventSource": ["kms.amazonaws.com"], "eventName": ["ScheduleKeyDeletion"]},
        },
    )
    record = verify.probe_record(config, "trailwatch-probe-x", NOW, "111122223333", "eu-west-1")
    assert record is not None
    assert (record["eventName"], record["eventSource"]) == ("ScheduleKeyDeletion", "kms.amazonaws.com")
    assert [r.id for r in compile_config(config).match(record)] == ["kms"]
    assert record["eventID"] == "trailwatch-probe-x"
    assert record["eventTime"] == "2026-01-02T03:04:05Z"
    assert (record["recipientAccountId"], record["awsRegion"]) == ("111122223333", "eu-west-1")
    assert "TEST EVENT" in record["userAgent"] and "trailwatch verify" in record["userAgent"]
    assert record["userIdentity"]["userName"] == "trailwatch-verify-probe"


def test_probe_none_when_no_rule_can_be_satisfied():
    config = _config({"id": "x", "pattern": {"eventName": ["A"], "errorCode": [{"exists": True}]}})
    assert verify.probe_record(config, "p", NOW, "111122223333", "us-east-1") is None


def test_selectors_compare_ignoring_order_and_empty_operators():
    mgmt = {"Name": "m", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}
    data = {
        "Name": "d",
        "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.ARN", "NotStartsWith": ["arn:aws:s3:::b/", "arn:aws:s3:::a/"]},
        ],
    }
    returned = {
        "Name": "d",
        "FieldSelectors": [
            {"Field": "resources.ARN", "NotStartsWith": ["arn:aws:s3:::a/", "arn:aws:s3:::b/"], "Equals": []},
            {"Field": "eventCategory", "Equals": ["Data"]},
        ],
    }
    assert verify.normalise_selectors([mgmt, data]) == verify.normalise_selectors([returned, mgmt])
    assert verify.normalise_selectors([mgmt]) != verify.normalise_selectors([mgmt, data])
    other = {"Name": "m", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}
    assert verify.normalise_selectors([mgmt]) != verify.normalise_selectors([other])
