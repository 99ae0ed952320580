"""records: event ids (stable without eventID), principal, account, summary -- on real and odd records."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
from trailwatch_processor import records

from tests.functional import factories as f


def test_event_id_is_the_event_id_field() -> None:
    rec = f.record()
    assert records.event_id(rec) == rec["eventID"]


@pytest.mark.parametrize("bad", [None, "", 42, {"a": 1}, "x" * 129])
def test_event_id_without_a_usable_eventid_is_a_content_hash(bad: object) -> None:
    rec = f.record()
    rec["eventID"] = bad
    derived = records.event_id(rec)
    assert derived.startswith("tw-") and len(derived) == 3 + 64
    canonical = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert derived == "tw-" + hashlib.sha256(canonical.encode()).hexdigest()


def test_derived_event_id_is_stable_and_content_sensitive() -> None:
    rec = f.record()
    del rec["eventID"]
    reordered = dict(reversed(list(copy.deepcopy(rec).items())))
    assert records.event_id(rec) == records.event_id(reordered)
    changed = dict(rec, sourceIPAddress="203.0.113.9")
    assert records.event_id(changed) != records.event_id(rec)


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        ({"type": "IAMUser", "arn": "arn:aws:iam::1:user/a"}, ("arn:aws:iam::1:user/a", "IAMUser")),
        ({"type": "Root", "arn": "arn:aws:iam::1:root"}, ("arn:aws:iam::1:root", "Root")),
        ({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}, ("ec2.amazonaws.com", "AWSService")),
        ({"type": "AWSAccount", "accountId": "1"}, (None, "AWSAccount")),
        ({}, (None, None)),
        ("not-a-dict", (None, None)),
    ],
)
def test_principal(identity: object, expected: tuple) -> None:
    assert records.principal({"userIdentity": identity}) == expected


def test_principal_missing_identity() -> None:
    assert records.principal({}) == (None, None)


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        ({"recipientAccountId": "111", "userIdentity": {"accountId": "222"}}, "111"),
        ({"userIdentity": {"accountId": "222"}}, "222"),
        ({"userIdentity": None}, None),
        ({}, None),
    ],
)
def test_account_id(rec: dict, expected: str | None) -> None:
    assert records.account_id(rec) == expected


def test_summary_fields_and_caps() -> None:
    rec = f.root_login(userAgent="u" * 5000, errorCode="AccessDenied")
    s = records.summary(rec)
    assert s["eventID"] == rec["eventID"]
    assert s["eventName"] == "ConsoleLogin"
    assert s["principal"] == "arn:aws:iam::123456789012:root" and s["principalType"] == "Root"
    assert s["account"] == "123456789012" and s["errorCode"] == "AccessDenied"
    assert len(s["userAgent"]) == records.SUMMARY_FIELD_CHARS and s["userAgent"].endswith("...")
    assert "errorMessage" not in s
    json.dumps(s)


def test_summary_of_an_empty_record_has_only_the_id() -> None:
    assert list(records.summary({})) == ["eventID"]


def test_every_shared_record(shared_records: list[dict]) -> None:
    ids = set()
    for rec in shared_records:
        s = records.summary(rec)
        assert all(isinstance(v, str) for v in s.values())
        records.principal(rec)
        ids.add(records.event_id(rec))
    assert len(shared_records) > 0 and len(ids) > 0


def test_lone_surrogates_are_hashed_and_replaced_never_raised() -> None:
    rec = f.record(
        eventID="x\udc00", userAgent="ua\ud800", userIdentity={"type": "IAMUser", "arn": "a\udfff"}
    )
    derived = records.event_id(rec)
    assert derived.startswith("tw-") and derived == records.event_id(copy.deepcopy(rec))
    summary = records.summary(rec)
    json.dumps(summary, ensure_ascii=False).encode("utf-8")
    assert summary["userAgent"] == "ua\ufffd" and summary["principal"] == "a\ufffd"


def test_clean_value_is_iterative_and_cleans_keys() -> None:
    deep: list = []
    node = deep
    for _ in range(5000):  # deeper than the recursion limit
        child: list = []
        node.append(child)
        node = child
    node.append({"k\udc80": "v\udcff"})
    cleaned = records.clean_value(deep)
    for _ in range(5000):
        cleaned = cleaned[0]
    assert cleaned == [{"k\ufffd": "v\ufffd"}]
