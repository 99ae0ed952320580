"""The alert subject names the member account (organization trails send many accounts' events)."""

from __future__ import annotations

import pytest
from trailwatch_processor import alerts, records

from tests.functional import factories as f


def _alert_for(*accounts: str) -> alerts.Alert:
    recs = []
    for account in accounts:
        rec = f.root_login()
        rec["recipientAccountId"] = account
        recs.append(rec)
    return alerts.Alert(
        rule_id="root-usage",
        title="Root account used",
        severity="critical",
        event_ids=[records.event_id(r) for r in recs],
        events=[records.summary(r) for r in recs],
    )


def test_subject_names_the_one_account() -> None:
    subject = alerts.build_alert(_alert_for("111111111111", "111111111111")).subject
    assert subject == "[trailwatch] CRITICAL root-usage 111111111111: Root account used (2)"


def test_subject_counts_several_accounts() -> None:
    subject = alerts.build_alert(_alert_for("111111111111", "222222222222", "111111111111")).subject
    assert subject == "[trailwatch] CRITICAL root-usage 2 accounts: Root account used (3)"


def test_subject_without_account_is_unchanged() -> None:
    assert alerts.make_subject("high", "r", "t", 1, None) == "[trailwatch] HIGH r: t (1)"


@pytest.mark.parametrize("title", ["x" * 300, "Ünïcödé " * 40])
def test_account_survives_a_long_title(title: str) -> None:
    subject = alerts.make_subject("critical", "cis-4.3-root-account-usage", title, 7, "123456789012")
    assert len(subject) <= alerts.SUBJECT_MAX and subject.isascii()
    assert subject.startswith("[trailwatch] CRITICAL cis-4.3-root-account-usage 123456789012: ")
    assert subject.endswith("(7)")
