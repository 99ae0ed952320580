"""Slack incoming-webhook message for one alert: what a person needs to act on, in blocks.

Every record field is attacker-shaped (a forged userAgent, a crafted session name), so each value is made
one line and stripped of Slack's control characters (``&``, ``<``, ``>``) before it goes into mrkdwn: a
raw ``<https://evil|Approve>`` would otherwise render as a link.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..alerts import one_line

SEVERITY_EMOJI = {
    "critical": ":rotating_light:",
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
    "low": ":large_yellow_circle:",
    "info": ":information_source:",
}
FIELD_MAX_CHARS = 300  # Slack caps a section field at 2,000 characters; an alert field needs far less
HEADER_MAX_CHARS = 150  # Slack's limit for a header block's plain_text


def console_link(region: str, event_id: str) -> str:
    """The event in the CloudTrail console's event history (region-specific console host)."""
    region = quote(region, safe="-")
    return (
        f"https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}"
        f"#/events/{quote(event_id, safe='-')}"
    )


def escape(value: Any, limit: int = FIELD_MAX_CHARS) -> str:
    """A value as safe mrkdwn text: one line, ``&<>`` escaped as Slack documents, capped."""
    text = one_line(str(value))
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_message(alert: dict[str, Any]) -> dict[str, Any]:
    """The incoming-webhook JSON for one alert body (the ``default`` JSON the processor publishes)."""
    severity = str(alert.get("severity", "unknown")).lower()
    rule = alert.get("rule", "?")
    title = alert.get("title") or rule
    count = alert.get("count") or 0
    events = alert.get("events") or []
    first: dict[str, Any] = events[0] if events and isinstance(events[0], dict) else {}

    headline = f"{severity.upper()}: {one_line(str(title))}"
    if len(headline) > HEADER_MAX_CHARS:
        headline = headline[: HEADER_MAX_CHARS - 3] + "..."
    who = first.get("principal") or first.get("principalArn") or "unknown"
    if first.get("principalType"):
        who = f"{who} ({first['principalType']})"
    what = first.get("eventName", "unknown")
    if first.get("eventSource"):
        what = f"{what} ({first['eventSource']})"
    if first.get("errorCode"):
        what = f"{what}, error {first['errorCode']}"
    fields: list[tuple[str, Any]] = [("Severity", severity.upper()), ("Rule", rule)]
    if first:
        fields += [
            ("Who", who),
            ("What", what),
            ("Account", first.get("account", "unknown")),
            ("Region", first.get("awsRegion", "unknown")),
            ("Source IP", first.get("sourceIPAddress", "unknown")),
            ("When", first.get("eventTime", "unknown")),
        ]
    elif alert.get("source"):  # an alert about trailwatch itself (no event): where it comes from
        fields.append(("Source", alert["source"]))
    summary = alert.get("kind") == "summary"  # a dedup window's summary (noise control)
    if summary:
        group = alert.get("group")
        if isinstance(group, dict) and group:
            fields.append(("Grouped by", ", ".join(f"{k}={v}" for k, v in group.items())))
        fields.append(("Window", f"{alert.get('window_start', '?')} to {alert.get('window_end', '?')}"))
    if alert.get("path"):  # how the alert arrived (fast path or log file) and how long after the event
        latency = alert.get("latency_seconds")
        late = f", {latency:.1f} s after the event" if isinstance(latency, int | float) else ""
        fields.append(("Arrived", f"{alert['path']}{late}"))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline, "emoji": True}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{name}:*\n{escape(value)}"} for name, value in fields],
        },
    ]
    if alert.get("description"):
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": escape(alert["description"], 2900)}}
        )
    context: list[str] = []
    if summary:
        context.append(
            f"*{count} events* grouped in this window; shown: the group's first event (alerted then)."
        )
    elif count > 1:
        context.append(f"*{count} events* in this alert (grouped); the first is shown.")
    if first.get("eventID") and first.get("awsRegion"):
        url = console_link(str(first["awsRegion"]), str(first["eventID"]))
        context.append(f"<{url}|Open the event in CloudTrail event history>")
    if first.get("eventID"):
        context.append(f"Event ID: `{escape(first['eventID'])}`")
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in context]})
    emoji = SEVERITY_EMOJI.get(severity, ":warning:")
    fallback = f"{emoji} trailwatch {escape(headline)} ({escape(rule)}), {count} event(s)"
    return {"text": fallback, "blocks": blocks}
