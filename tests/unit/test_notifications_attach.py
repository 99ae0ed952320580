"""Attach mode's notification shapes: a trail's own SNS delivery message, and the account named by a key."""

from __future__ import annotations

import json

import pytest
from trailwatch_processor.notifications import (
    KeyKind,
    NotificationError,
    account_from_key,
    classify_key,
    parse_body,
)

from tests.functional import factories as f

BUCKET = "org-trail-archive"
ORG_KEY = "AWSLogs/o-abc123defg/111111111111/CloudTrail/eu-west-1/2024/01/15/111111111111_CT_x.json.gz"
PLAIN_KEY = "AWSLogs/222222222222/CloudTrail/us-east-1/2024/01/15/222222222222_CloudTrail_y.json.gz"
ODD_KEY = "my prefix/a+b/AWSLogs/o-abc123defg/333333333333/CloudTrail/us-east-1/2024/01/15/f ü.json.gz"


def trail_message(bucket: str, *keys: str) -> str:
    """What CloudTrail publishes to the trail's SNS topic after delivering files."""
    return json.dumps({"s3Bucket": bucket, "s3ObjectKey": list(keys)})


@pytest.mark.parametrize("wrap", [lambda m: m, f.sns_envelope], ids=["raw", "sns-envelope"])
def test_trail_sns_message_names_every_key(wrap) -> None:
    refs = parse_body(wrap(trail_message(BUCKET, ORG_KEY, PLAIN_KEY, ODD_KEY)))
    assert [(r.bucket, r.key) for r in refs] == [(BUCKET, ORG_KEY), (BUCKET, PLAIN_KEY), (BUCKET, ODD_KEY)]
    assert all(not r.removed and r.version_id is None for r in refs)
    assert all(classify_key(r.key) is KeyKind.LOG for r in refs)


def test_trail_sns_keys_are_not_url_decoded() -> None:
    [ref] = parse_body(trail_message(BUCKET, "p/a+b%20c/" + PLAIN_KEY))
    assert ref.key == "p/a+b%20c/" + PLAIN_KEY


def test_trail_sns_lone_string_key_is_tolerated() -> None:
    [ref] = parse_body(json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": ORG_KEY}))
    assert ref.key == ORG_KEY


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"s3Bucket": "", "s3ObjectKey": [ORG_KEY]}, "s3Bucket missing"),
        ({"s3Bucket": 5, "s3ObjectKey": [ORG_KEY]}, "s3Bucket missing"),
        ({"s3Bucket": BUCKET, "s3ObjectKey": [ORG_KEY, 3]}, "s3ObjectKey is not a list"),
        ({"s3Bucket": BUCKET, "s3ObjectKey": [""]}, "s3ObjectKey is not a list"),
        ({"s3Bucket": BUCKET, "s3ObjectKey": {"a": 1}}, "s3ObjectKey is not a list"),
    ],
)
def test_bad_trail_sns_messages_name_the_field(doc: dict, named: str) -> None:
    with pytest.raises(NotificationError, match=named):
        parse_body(json.dumps(doc))


@pytest.mark.parametrize(
    ("key", "account"),
    [
        (ORG_KEY, "111111111111"),
        (PLAIN_KEY, "222222222222"),
        (ODD_KEY, "333333333333"),
        ("pre/AWSLogs/444444444444/CloudTrail-Digest/us-east-1/2024/01/15/d.json.gz", "444444444444"),
        ("AWSLogs/o-short/555555555555/CloudTrail/us-east-1/2024/01/15/x.json.gz", None),
        ("AWSLogs/12345/CloudTrail/us-east-1/2024/01/15/x.json.gz", None),
        ("config/monitored_events.json", None),
    ],
)
def test_account_from_key(key: str, account: str | None) -> None:
    assert account_from_key(key) == account
