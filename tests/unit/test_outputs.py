"""Output message building and signing: the Slack blocks, the webhook signature (checked by an independent
HMAC computation), per-output filters and secret parsing."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from trailwatch_processor import outputs
from trailwatch_processor.alerts import Alert, build_alert
from trailwatch_processor.outputs import OutputConfig, OutputError, failure, slack, summary, webhook

KEY = "0f" * 32
EVENT = {
    "eventID": "3c5a1f0e-1111-2222-3333-444455556666",
    "eventName": "ConsoleLogin",
    "eventSource": "signin.amazonaws.com",
    "eventTime": "2024-01-15T12:00:00Z",
    "awsRegion": "eu-west-1",
    "account": "123456789012",
    "principal": "root",
    "principalType": "Root",
    "sourceIPAddress": "203.0.113.7",
}


def alert_body(**overrides: Any) -> dict[str, Any]:
    """The JSON ``default`` body the processor publishes (built by alerts.py itself)."""
    fields: dict[str, Any] = {
        "rule_id": "root-login",
        "title": "Root user signed in",
        "severity": "critical",
        "event_ids": [EVENT["eventID"]],
        "events": [EVENT],
    }
    fields.update(overrides)
    document = json.loads(build_alert(Alert(**fields)).message)
    return json.loads(document["default"])


def slack_text(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"])


class TestSlackMessage:
    def test_has_every_field_a_person_acts_on(self) -> None:
        message = slack.build_message(alert_body())
        text = slack_text(message)
        for value in (
            "CRITICAL",
            "root-login",
            "root (Root)",
            "ConsoleLogin (signin.amazonaws.com)",
            "123456789012",
            "eu-west-1",
            "203.0.113.7",
            "2024-01-15T12:00:00Z",
        ):
            assert value in text, value
        assert message["blocks"][0]["type"] == "header"
        assert "Root user signed in" in message["blocks"][0]["text"]["text"]
        assert message["text"]  # the notification fallback

    def test_links_to_the_event_in_cloudtrail_event_history(self) -> None:
        text = slack_text(slack.build_message(alert_body()))
        assert (
            "https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-west-1"
            "#/events/3c5a1f0e-1111-2222-3333-444455556666"
        ) in text

    def test_grouped_alert_shows_its_count(self) -> None:
        ids = [f"id-{n}" for n in range(49)]
        message = slack.build_message(alert_body(event_ids=ids, events=[EVENT]))
        assert "*49 events*" in slack_text(message)

    def test_single_event_has_no_group_line(self) -> None:
        assert "events* in this alert" not in slack_text(slack.build_message(alert_body()))

    def test_attacker_fields_cannot_forge_links_or_lines(self) -> None:
        forged = dict(EVENT, principal="x <https://evil.example|Approve> &\nok: approved")
        text = slack_text(slack.build_message(alert_body(events=[forged])))
        assert "<https://evil.example" not in text
        assert "&lt;https://evil.example|Approve&gt; &amp;\\\\nok: approved" in text

    def test_header_is_capped_at_slacks_limit(self) -> None:
        message = slack.build_message(alert_body(title="x" * 400))
        assert len(message["blocks"][0]["text"]["text"]) <= slack.HEADER_MAX_CHARS


class TestWebhookSignature:
    BODY = b'{"rule":"root-login","severity":"critical"}'

    def test_signature_is_hmac_sha256_over_timestamp_dot_body(self) -> None:
        header = webhook.signature(KEY, self.BODY, 1700000000)
        independent = hmac.new(KEY.encode(), b"1700000000." + self.BODY, hashlib.sha256).hexdigest()
        assert header == f"t=1700000000,v1={independent}"

    def test_signed_headers_carry_the_signature(self) -> None:
        headers = webhook.signed_headers(KEY, self.BODY, now=1700000000.9)
        assert headers[webhook.SIGNATURE_HEADER].startswith("t=1700000000,v1=")
        assert headers["Content-Type"] == "application/json"

    def test_verify_accepts_a_fresh_signature(self) -> None:
        header = webhook.signature(KEY, self.BODY, 1700000000)
        assert webhook.verify_signature(KEY, self.BODY, header, now=1700000100)

    @pytest.mark.parametrize(
        ("key", "body", "now"),
        [
            ("1" * 64, BODY, 1700000000),  # another key
            (KEY, BODY + b" ", 1700000000),  # tampered body
            (KEY, BODY, 1700000000 + 301),  # replayed too late
        ],
        ids=["wrong-key", "tampered-body", "stale-timestamp"],
    )
    def test_verify_rejects(self, key: str, body: bytes, now: int) -> None:
        header = webhook.signature(KEY, self.BODY, 1700000000)
        assert not webhook.verify_signature(key, body, header, now=now)

    @pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1700000000"])
    def test_verify_rejects_malformed_headers(self, header: str) -> None:
        assert not webhook.verify_signature(KEY, self.BODY, header, now=1700000000)

    def test_new_signing_keys_are_random_and_long(self) -> None:
        first, second = webhook.new_signing_key(), webhook.new_signing_key()
        assert first != second and len(first) == 64

    def test_webhook_render_sends_the_body_unchanged_and_signed(self) -> None:
        body = json.dumps(alert_body())
        config = OutputConfig(kind="webhook", url="https://example.com/hook", signing_key=KEY)
        data, headers = outputs.render(config, body, now=1700000000)
        assert data == body.encode()
        assert webhook.verify_signature(KEY, data, headers[webhook.SIGNATURE_HEADER], now=1700000000)


class TestFilters:
    @pytest.mark.parametrize(
        ("floor", "severity", "wanted"),
        [
            ("info", "info", True),
            ("high", "medium", False),
            ("high", "high", True),
            ("high", "critical", True),
        ],
    )
    def test_severity_floor(self, floor: str, severity: str, wanted: bool) -> None:
        config = OutputConfig(kind="slack", url="https://x.example", min_severity=floor)
        assert config.wants({"severity": severity, "rule": "r"}) is wanted

    @pytest.mark.parametrize(
        ("rules", "rule", "wanted"),
        [
            ((), "anything", True),
            (("root-*",), "root-login", True),
            (("root-*", "iam-x"), "s3-public", False),
        ],
    )
    def test_rule_filter(self, rules: tuple[str, ...], rule: str, wanted: bool) -> None:
        config = OutputConfig(kind="slack", url="https://x.example", rules=rules)
        assert config.wants({"severity": "info", "rule": rule}) is wanted

    def test_filtered_alert_is_not_sent(self) -> None:
        sent: list[bytes] = []
        config = OutputConfig(kind="slack", url="https://x.example", min_severity="critical")
        body = json.dumps(alert_body(severity="low"))
        assert (
            outputs.deliver(config, body, send=lambda url, data, headers: sent.append(data) or 200) is False
        )
        assert sent == []


class TestSecret:
    def test_webhook_secret(self) -> None:
        doc = {"url": "https://example.com/h", "signing_key": KEY, "min_severity": "HIGH", "rules": ["a*"]}
        config = OutputConfig.from_secret("webhook", json.dumps(doc))
        assert (config.min_severity, config.rules, config.signing_key) == ("high", ("a*",), KEY)
        assert KEY not in repr(config) and "example.com" not in repr(config)

    @pytest.mark.parametrize(
        ("kind", "doc", "problem"),
        [
            ("slack", "not json", "not JSON"),
            ("slack", {"min_severity": "low"}, "no 'url'"),
            ("slack", {"url": "http://hooks.example.com/x"}, "must be https"),
            ("slack", {"url": "https://h.example", "min_severity": "urgent"}, "min_severity"),
            ("slack", {"url": "https://h.example", "rules": "root-*"}, "list of strings"),
            ("webhook", {"url": "https://h.example"}, "signing_key"),
        ],
    )
    def test_bad_secrets_are_refused(self, kind: str, doc: Any, problem: str) -> None:
        text = doc if isinstance(doc, str) else json.dumps(doc)
        with pytest.raises(OutputError, match=problem):
            OutputConfig.from_secret(kind, text)

    def test_loopback_http_is_allowed_for_tests(self) -> None:
        assert outputs.url_problem("http://127.0.0.1:8080/hook") is None


def test_readme_verification_recipe_accepts_our_signature_and_rejects_a_forgery() -> None:
    """The README's recipe is what receivers copy: it must verify exactly what the function sends."""
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("def verify(signing_key")
    code = readme[readme.rindex("import hashlib", 0, start) : readme.index("```", start)]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    body = json.dumps(alert_body()).encode()
    headers = webhook.signed_headers(KEY, body)
    assert namespace["verify"](KEY, body, headers[webhook.SIGNATURE_HEADER])
    assert not namespace["verify"](KEY, body + b" ", headers[webhook.SIGNATURE_HEADER])


def test_operational_alert_in_slack_shows_its_source_not_empty_event_fields() -> None:
    from trailwatch_processor.alerts import operational_alert

    published = json.loads(operational_alert("config invalid", "rules[2]: bad", source="s3://b/k").message)
    text = slack_text(slack.build_message(json.loads(published["default"])))
    assert "s3://b/k" in text and "rules[2]: bad" in text
    assert "Source IP" not in text and "unknown" not in text


def test_webhook_delivery_id_is_sent_on_every_attempt() -> None:
    sent: list[dict[str, str]] = []

    def flaky(url: str, data: bytes, headers: Any) -> int:
        sent.append(dict(headers))
        if len(sent) == 1:
            raise outputs.DeliveryError("HTTP 503", retryable=True)
        return 200

    config = OutputConfig(kind="webhook", url="https://example.com/hook", signing_key=KEY)
    body = json.dumps(alert_body())
    assert outputs.deliver(config, body, send=flaky, sleep=lambda s: None, delivery_id="m-1")
    assert [h[webhook.DELIVERY_HEADER] for h in sent] == ["m-1", "m-1"]


class TestDeliveryFailures:
    """The pure parts of outputs/failure.py (the AlarmTopic path is in tests/functional/test_outputs.py)."""

    ENV = {"ALARM_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alarms", "EVENTS_TABLE": "t"}

    @pytest.mark.parametrize(
        ("count", "last"), [(None, False), ("1", False), ("4", False), ("5", True), ("6", True), ("x", False)]
    )
    def test_only_the_last_receive_reports(self, count: str | None, last: bool) -> None:
        failures = failure.DeliveryFailures.from_env({**self.ENV, "MAX_RECEIVE_COUNT": "5"})
        assert failures is not None
        message = {"attributes": {} if count is None else {"ApproximateReceiveCount": count}}
        assert failures.is_last_receive(message) is last

    @pytest.mark.parametrize(
        "env",
        [
            {"EVENTS_TABLE": "t", "MAX_RECEIVE_COUNT": "5"},
            {"ALARM_TOPIC_ARN": "arn", "MAX_RECEIVE_COUNT": "5"},
            {"ALARM_TOPIC_ARN": "arn", "EVENTS_TABLE": "t"},
            {"ALARM_TOPIC_ARN": "arn", "EVENTS_TABLE": "t", "MAX_RECEIVE_COUNT": "five"},
        ],
    )
    def test_not_configured_without_topic_table_and_limit(self, env: dict[str, str]) -> None:
        assert failure.DeliveryFailures.from_env(env) is None

    def test_errors_never_carry_a_url(self) -> None:
        secret_url = "https://hooks.slack.com/services/T000/B000/SECRET"
        assert failure.describe_error(outputs.DeliveryError("HTTP 404", retryable=False)) == (
            "DeliveryError: HTTP 404"
        )
        assert secret_url not in failure.describe_error(ValueError(f"unknown url type: {secret_url}"))
        assert failure.describe_error(ValueError(secret_url)) == "ValueError"

    def test_marker_is_per_output_and_message(self) -> None:
        assert failure.marker_id("slack", "m-1") == failure.marker_id("slack", "m-1")
        assert failure.marker_id("slack", "m-1") != failure.marker_id("webhook", "m-1")
        assert failure.marker_id("slack", "m-1") != failure.marker_id("slack", "m-2")
        assert failure.marker_id("slack", "m-1").startswith("trailwatch#output-failed#slack#")


class TestSummaryInSlack:
    """A dedup window's summary (built by noise_close itself) has no event fields: Slack shows the group's
    first event, read from its stored item, with the count, the group and the window."""

    FIRST = "11111111-2222-3333-4444-555555555555"
    ITEM = {
        "EventId": FIRST,
        "event_name": "GetSecretValue",
        "event_source": "secretsmanager.amazonaws.com",
        "event_time": "2026-12-03T10:00:00Z",
        "aws_region": "eu-west-1",
        "account_id": "123456789012",
        "principal_arn": "arn:aws:sts::123456789012:assumed-role/scanner/s",
        "principal_type": "AssumedRole",
        "source_ip": "10.1.2.3",
        "error_code": "AccessDenied",
    }

    def summary_body(self) -> dict[str, Any]:
        from datetime import UTC, datetime

        from trailwatch_processor import noise_close

        state = {
            "noise_rule": "denied-burst",
            "noise_title": "Denied API call",
            "noise_severity": "medium",
            "window_minutes": 60,
            "noise_group": json.dumps(
                {"userIdentity.arn": self.ITEM["principal_arn"], "eventName": "GetSecretValue"}
            ),
            "window_start": "2026-12-03T10:00:00Z",
            "first_event_id": self.FIRST,
        }
        now = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
        message = noise_close.summary_message(state, [f"e-{n}" for n in range(49)], 49, now, "t")
        return json.loads(json.loads(message.message)["default"])

    def test_the_first_event_fills_who_what_where_when_and_the_link(self) -> None:
        body = self.summary_body()
        shown = summary.with_representative(body, {self.FIRST: self.ITEM}.get)
        text = slack_text(slack.build_message(shown))
        for value in (
            "MEDIUM",
            "denied-burst",
            "arn:aws:sts::123456789012:assumed-role/scanner/s (AssumedRole)",
            "GetSecretValue (secretsmanager.amazonaws.com), error AccessDenied",
            "123456789012",
            "eu-west-1",
            "10.1.2.3",
            "2026-12-03T10:00:00Z",
            f"#/events/{self.FIRST}",
            "*49 events* grouped in this window",
            "eventName=GetSecretValue",
            "2026-12-03T10:00:00Z to 2026-12-03T11:00:00",
        ):
            assert value in text, value
        assert body.get("events") == []  # the published alert (the webhook's body) is left as it is

    @pytest.mark.parametrize(
        "lookup", [None, lambda event_id: None, lambda event_id: (_ for _ in ()).throw(RuntimeError("down"))]
    )
    def test_without_the_item_the_summary_still_renders(self, lookup: Any) -> None:
        body = self.summary_body()
        assert summary.with_representative(body, lookup) is body
        assert "*49 events*" in slack_text(slack.build_message(body))

    def test_other_alerts_are_not_looked_up(self) -> None:
        def boom(event_id: str) -> None:
            raise AssertionError("looked up")

        body = alert_body()
        assert summary.with_representative(body, boom) is body
