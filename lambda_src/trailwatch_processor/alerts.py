"""SNS alert messages: one per primary rule per log file, a readable email and a JSON body for machines.

SNS limits that fail a whole Publish when broken: the subject is ASCII, has no line breaks and at most 100
characters; the message and its attributes together are at most 256 KB. Both are enforced here, never left
to SNS.

The JSON body is the ``default`` of the MessageStructure=json document, so every non-email protocol (sqs,
lambda, http/s, email-json) receives the one copy: the body lists every event ID of the alert that fits in
the 256 KB (about 6,000 CloudTrail IDs), and only when some do not fit says how many are missing and how to
fetch them. The email lists the first ``MAX_EMAIL_EVENT_IDS`` IDs and points to the same lookup.

An event alert says how it arrived: ``path`` (``eventbridge``: the fast path, seconds after the call; ``s3``:
a log file, minutes after) and ``latency_seconds``, from each event's ``eventTime`` to the alert (per event
in the JSON body; the largest, that of the earliest event, at the top and in the email).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SUBJECT_MAX = 100
MESSAGE_MAX_BYTES = 256 * 1024
# SNS counts the message and its attributes; the rest of the margin covers the subject (<= 100 characters).
MESSAGE_MARGIN_BYTES = 1024
MESSAGE_BUDGET_BYTES = MESSAGE_MAX_BYTES - MESSAGE_MARGIN_BYTES
# Event summaries may take at most this share of the budget: the IDs (what the alert covers) come first.
EVENTS_SHARE = 4
MAX_EMAIL_EVENT_IDS = 50
MAX_EVENTS = 20
MAX_EMAIL_EVENTS = 10
TITLE_MAX_CHARS = 200
DESCRIPTION_MAX_CHARS = 2000
OPERATIONAL_RULE = "trailwatch-operational"


@dataclass(frozen=True)
class Alert:
    """What one alert covers: the claimed events of one primary rule in one log file."""

    rule_id: str
    title: str
    severity: str
    event_ids: list[str]
    events: list[dict[str, str]]  # records.summary() of (at least the first few of) the events
    log_bucket: str | None = None
    log_key: str | None = None
    description: str | None = None
    table: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # how the events arrived: "eventbridge" or "s3" (None: an operational alert)
    alerted_at: datetime | None = None  # when the alert is sent: the end of each event's latency

    @property
    def count(self) -> int:
        return len(self.event_ids)

    def timed_events(self) -> list[dict[str, Any]]:
        """``events`` with ``latency_seconds`` (eventTime -> ``alerted_at``) on each whose time parses."""
        if self.alerted_at is None:
            return list(self.events)
        out: list[dict[str, Any]] = []
        for event in self.events:
            latency = latency_seconds(event.get("eventTime"), self.alerted_at)
            out.append(event if latency is None else {**event, "latency_seconds": latency})
        return out


def latency_seconds(event_time: Any, until: datetime) -> float | None:
    """Seconds from a CloudTrail ``eventTime`` (ISO 8601, ``Z``) to ``until``, to the millisecond; None when
    the time does not parse. Negative when the clocks disagree: shown as it is, never hidden."""
    if not isinstance(event_time, str) or not event_time:
        return None
    try:
        moment = datetime.fromisoformat(event_time)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round((until - moment).total_seconds(), 3)


def largest_latency(events: list[dict[str, Any]]) -> float | None:
    values = [e["latency_seconds"] for e in events if isinstance(e.get("latency_seconds"), int | float)]
    return max(values) if values else None


@dataclass(frozen=True)
class SnsMessage:
    subject: str
    message: str  # the MessageStructure=json document
    attributes: dict[str, dict[str, str]]


def make_subject(
    severity: str, rule_id: str, title: str, count: int | None, account: str | None = None
) -> str:
    """``[trailwatch] SEVERITY rule account: title (count)``: ASCII, one line, at most 100 characters.

    The account (or ``N accounts``) is in the head, which is kept whole: with an organization trail the
    reader must see which member account is concerned before opening the mail."""
    where = f" {account}" if account else ""
    head = _ascii_line(f"[trailwatch] {severity.upper()} {rule_id}{where}")
    tail = f" ({count})" if count is not None else ""
    text = _ascii_line(title)
    subject = f"{head}: {text}{tail}" if text else f"{head}{tail}"
    if len(subject) <= SUBJECT_MAX:
        return subject
    room = SUBJECT_MAX - len(head) - len(tail) - len(": ...")
    if room >= 8:
        return f"{head}: {text[:room].rstrip()}...{tail}"
    if len(head) + len(tail) <= SUBJECT_MAX:
        return head + tail
    return head[: SUBJECT_MAX - len(tail) - 3].rstrip() + "..." + tail


def _ascii_line(text: str) -> str:
    """Unicode -> closest ASCII (accents dropped, others removed), control characters -> one space."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[\x00-\x1f\x7f\s]+", " ", folded).strip()


def build_alert(alert: Alert) -> SnsMessage:
    """The SNS message for one alert: every event ID that fits in 256 KB, a few event summaries.

    Summaries are shrunk first (to a quarter of the budget), then the ID list is cut only if it must be."""
    attributes = _attributes(alert)
    attr_bytes = attributes_size(attributes)
    shown = min(MAX_EVENTS, len(alert.events))
    while shown and attr_bytes + _size(_render(alert, shown, 0)) > MESSAGE_BUDGET_BYTES // EVENTS_SHARE:
        shown //= 2
    if attr_bytes + _size(_render(alert, shown, 0)) > MESSAGE_BUDGET_BYTES:
        raise ValueError(f"alert for {alert.rule_id!r} exceeds the SNS message size even without events")
    listed = _ids_that_fit(alert, shown, MESSAGE_BUDGET_BYTES - attr_bytes)
    return SnsMessage(
        subject=make_subject(
            alert.severity, alert.rule_id, alert.title, alert.count or None, _subject_account(alert)
        ),
        message=_render(alert, shown, listed),
        attributes=attributes,
    )


def sns_size(message: SnsMessage) -> int:
    """The size SNS holds against its 256 KB limit: the message plus its attributes (names, types, values)."""
    return _size(message.message) + attributes_size(message.attributes)


def attributes_size(attributes: dict[str, dict[str, str]]) -> int:
    return sum(_size(name) + _size(a["DataType"]) + _size(a["StringValue"]) for name, a in attributes.items())


def _ids_that_fit(alert: Alert, shown: int, budget: int) -> int:
    """The largest number of leading event IDs whose rendered message fits ``budget`` (binary search)."""
    if _size(_render(alert, shown, alert.count)) <= budget:
        return alert.count
    low, high = 0, alert.count  # _render(low) fits, _render(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if _size(_render(alert, shown, middle)) <= budget:
            low = middle
        else:
            high = middle
    return low


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def operational_alert(title: str, detail: str, *, source: str, severity: str = "high") -> SnsMessage:
    """An alert about trailwatch itself (e.g. an invalid config): rule ``trailwatch-operational``."""
    alert = Alert(
        rule_id=OPERATIONAL_RULE,
        title=title,
        severity=severity,
        event_ids=[],
        events=[],
        description=detail,
        extra={"source": source},
    )
    return build_alert(alert)


def publish(sns: Any, topic_arn: str, message: SnsMessage) -> str:
    """Publish and return the SNS MessageId. Errors propagate: a failed send is retried, never dropped."""
    response = sns.publish(
        TopicArn=topic_arn,
        Subject=message.subject,
        Message=message.message,
        MessageStructure="json",
        MessageAttributes=message.attributes,
    )
    return response["MessageId"]


def _render(alert: Alert, shown: int, listed: int) -> str:
    """The MessageStructure=json document: the email, and the machine body as everyone else's default."""
    body = json.dumps(_machine_body(alert, shown, listed), ensure_ascii=False, separators=(",", ":"))
    email = _email_text(alert, min(shown, MAX_EMAIL_EVENTS))
    return json.dumps({"default": body, "email": email}, ensure_ascii=False, separators=(",", ":"))


def _machine_body(alert: Alert, shown: int, listed: int) -> dict[str, Any]:
    events = alert.timed_events()[:shown]
    body: dict[str, Any] = {
        "source": "trailwatch",
        "rule": alert.rule_id,
        "title": _cap(alert.title, TITLE_MAX_CHARS),
        "severity": alert.severity,
        "count": alert.count,
        "eventIDs": alert.event_ids[:listed],
        "eventIDs_truncated": listed < alert.count,
        "log_bucket": alert.log_bucket,
        "log_key": alert.log_key,
        "events": events,
        "events_truncated": len(events) < alert.count,
    }
    if alert.path:
        body["path"] = alert.path
        body["latency_seconds"] = largest_latency(alert.timed_events())
    if listed < alert.count:
        body["eventIDs_missing"] = alert.count - listed
        body["eventIDs_fetch"] = _fetch_hint(alert)
    if alert.description:
        body["description"] = _cap(alert.description, DESCRIPTION_MAX_CHARS)
    if alert.table:
        body["table"] = alert.table
    body.update(alert.extra)
    return body


def _fetch_hint(alert: Alert) -> str:
    table = alert.table or "the SecurityEvents table"
    return (
        f"trailwatch events --rule {alert.rule_id} --json lists them (each item's log_key names its file); "
        f"or query DynamoDB {table}, index ByDay, with rule_ids containing {alert.rule_id}"
    )


def _email_text(alert: Alert, shown: int) -> str:
    lines = [f"trailwatch alert: {one_line(_cap(alert.title, TITLE_MAX_CHARS))}", ""]
    lines.append(f"Rule:     {alert.rule_id}")
    lines.append(f"Severity: {alert.severity.upper()}")
    if alert.path:
        lines.append(f"Path:     {_path_line(alert)}")
    if alert.description:
        lines += ["", _cap(alert.description, DESCRIPTION_MAX_CHARS)]
    for name, value in alert.extra.items():
        lines.append(f"{one_line(name.capitalize())}: {one_line(str(value))}")
    if alert.event_ids:
        where = (
            f" in s3://{one_line(str(alert.log_bucket))}/{one_line(alert.log_key)}" if alert.log_key else ""
        )
        lines += ["", f"{alert.count} matching event(s){where}."]
        for i, event in enumerate(alert.timed_events()[:shown], 1):
            lines += ["", f"Event {i} of {alert.count}", *_event_lines(event)]
        if alert.count > shown:
            lines += ["", f"... and {alert.count - shown} more; see the event IDs below."]
        lines += ["", _ids_heading(alert)]
        lines += [f"  {event_id}" for event_id in alert.event_ids[:MAX_EMAIL_EVENT_IDS]]
        lines += ["", "How to look them up:"]
        lines.append(f"  trailwatch events --rule {alert.rule_id}")
        table = alert.table or "the SecurityEvents table"
        lines.append(f"  or DynamoDB {table}: GetItem with key EventId = <event ID>")
        lines.append(f"  (index ByDay, filter: rule_ids contains {alert.rule_id})")
    return "\n".join(lines) + "\n"


def _path_line(alert: Alert) -> str:
    """``eventbridge, 2.4 s after the event`` (the largest latency: that of the earliest event)."""
    how = {"eventbridge": "EventBridge fast path", "s3": "CloudTrail log file in S3"}.get(str(alert.path))
    text = f"{alert.path} ({how})" if how else str(alert.path)
    latency = largest_latency(alert.timed_events())
    if latency is not None:
        earliest = " (the earliest event)" if alert.count > 1 else ""
        text += f", alerted {latency:.1f} s after the event{earliest}"
    return one_line(text)


def _ids_heading(alert: Alert) -> str:
    if alert.count > MAX_EMAIL_EVENT_IDS:
        return f"Event IDs (first {MAX_EMAIL_EVENT_IDS} of {alert.count}; all are in the table):"
    return "Event IDs:"


def _event_lines(event: dict[str, str]) -> list[str]:
    what = event.get("eventName", "?")
    if event.get("eventSource"):
        what += f" ({event['eventSource']})"
    who = event.get("principal", "unknown")
    if event.get("principalType"):
        who += f" ({event['principalType']})"
    source = event.get("sourceIPAddress", "unknown")
    if event.get("userAgent"):
        source += f"  user agent: {event['userAgent']}"
    rows = [
        ("What", what),
        ("Who", who),
        ("From", source),
        ("When", event.get("eventTime", "unknown")),
        ("Region", event.get("awsRegion", "unknown")),
        ("Account", event.get("account", "unknown")),
    ]
    if event.get("errorCode"):
        rows.append(("Error", f"{event['errorCode']}: {event.get('errorMessage', '')}".rstrip(": ")))
    if isinstance(event.get("latency_seconds"), int | float):
        rows.append(("Latency", f"{event['latency_seconds']:.1f} s from the event to this alert"))
    rows.append(("Event ID", event.get("eventID", "?")))
    return [f"  {name + ':':<10}{one_line(value)}" for name, value in rows]


# C0/C1 controls, DEL, and the Unicode line and paragraph separators: anything a mail reader may break on.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(value: str) -> str:
    """A record field as one visible line: control characters escaped (``\\n``, ``\\x1b``), never passed on.

    Record fields are attacker-shaped (a forged userAgent); a raw newline would let them write fake lines
    such as "approved change, no action needed" into the alert mail."""
    return _CONTROL_RE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), value)


def _attributes(alert: Alert) -> dict[str, dict[str, str]]:
    """Message attributes for subscription filter policies (SNS rejects empty values: 'unknown' instead)."""
    attributes = {
        "severity": _string_attr(alert.severity),
        "rule": _string_attr(alert.rule_id),
        "eventName": _string_attr(_joined(event.get("eventName") for event in alert.events)),
        "account": _string_attr(_joined(event.get("account") for event in alert.events)),
    }
    if alert.path:
        attributes["path"] = _string_attr(alert.path)
    return attributes


def _subject_account(alert: Alert) -> str | None:
    """The one account of the alert's events, ``N accounts`` if several, None if none is known."""
    accounts = {event.get("account") for event in alert.events} - {None, ""}
    if len(accounts) > 1:
        return f"{len(accounts)} accounts"
    return accounts.pop() if accounts else None


def _joined(values: Any) -> str:
    """The distinct values, most frequent first, comma-joined (one value when the alert has one)."""
    counts = Counter(value for value in values if value)
    return ",".join(value for value, _ in counts.most_common())


def _string_attr(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": _cap(value, 256) or "unknown"}


def _cap(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."
