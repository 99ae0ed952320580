"""`trailwatch events`: stored events, newest first, through the table's ByDay index (never a Scan).

An event is stored once, under its primary rule (``rule_id``), with every rule it matched in ``rule_ids``.
A GSI can only key on a scalar, so ``--rule`` reads the window's days from ByDay and keeps the items whose
``rule_ids`` contain the rule: an event is found by every rule that matched it, not only by its primary
(the ByRule index knows only the primary). The read cost is that of listing the same window unfiltered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from trailwatch import stack
from trailwatch.errors import UsageError
from trailwatch.session import Aws
from trailwatch.ui import UI

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# The longest EventRetentionDays the template allows: nothing older can be in the table.
MAX_WINDOW = timedelta(days=36_500)
COLUMNS = ["time", "account", "rule", "severity", "event", "principal", "source ip", "region"]
_deserializer = TypeDeserializer()
_serializer = TypeSerializer()


def parse_since(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"--since {text!r}: expected a positive number and a unit, e.g. 30m, 24h, 7d.")
    number, unit = match.group(1), UNITS[match.group(2)]
    try:
        window = timedelta(**{unit: int(number)}) if len(number) <= 12 else None
    except OverflowError:
        window = None
    if window is None or window > MAX_WINDOW:
        raise UsageError(
            f"--since {text!r}: at most {MAX_WINDOW.days} days (the longest event retention), e.g. 30d."
        )
    return window


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_newest_first(start: datetime, end: datetime) -> list[str]:
    day, last = end.date(), start.date()
    out = []
    while day >= last:
        out.append(day.isoformat())
        day -= timedelta(days=1)
    return out


def _query(aws: Aws, **kwargs: Any) -> Iterator[dict[str, Any]]:
    paginator = aws.client("dynamodb").get_paginator("query")
    for page in paginator.paginate(ScanIndexForward=False, **kwargs):
        for item in page.get("Items", []):
            yield {k: _deserializer.deserialize(v) for k, v in item.items()}


def query_events(
    aws: Aws,
    table: str,
    *,
    since: timedelta,
    rule: str | None,
    min_severity: str | None,
    limit: int,
    now: datetime | None = None,
    account: str | None = None,
) -> list[dict[str, Any]]:
    from trailwatch_processor.config import severity_rank

    now = now or datetime.now(UTC)
    start = iso(now - since)
    floor = severity_rank(min_severity) if min_severity else None
    values: dict[str, Any] = {":t": start}
    keep: dict[str, Any] = {}
    filters: list[str] = []
    if rule:  # every rule that matched, not only the primary
        values[":r"] = rule
        filters.append("contains(rule_ids, :r)")
    if account:  # the member account the event belongs to (organization or other-account trails)
        values[":a"] = account
        filters.append("account_id = :a")
    if filters:
        keep["FilterExpression"] = " AND ".join(filters)
    streams = [
        _query(
            aws,
            TableName=table,
            IndexName="ByDay",
            KeyConditionExpression="event_day = :d AND event_time >= :t",
            ExpressionAttributeValues={k: _serializer.serialize(v) for k, v in {":d": day, **values}.items()},
            **keep,
        )
        for day in days_newest_first(now - since, now)
    ]
    out: list[dict[str, Any]] = []
    for items in streams:  # generators: a day is queried only when the newer days did not fill the limit
        for item in items:
            if floor is not None and severity_rank(str(item.get("severity", "info"))) < floor:
                continue
            out.append(item)
            if len(out) >= limit:
                return out
    return out


def run_events(
    aws: Aws,
    ui: UI,
    *,
    since: str,
    rule: str | None,
    severity: str | None,
    limit: int,
    account: str | None = None,
) -> int:
    from trailwatch_processor.config import SEVERITIES

    if severity and severity not in SEVERITIES:
        raise UsageError(f"--severity {severity!r}: expected one of {', '.join(SEVERITIES)}.")
    if limit < 1:
        raise UsageError("--limit must be at least 1.")
    if account is not None and not (len(account) == 12 and account.isdigit()):
        raise UsageError(f"--account {account!r}: expected a 12-digit AWS account id.")
    window = parse_since(since)
    table = stack.stack_outputs(stack.require_stack(aws, aws.options.stack_name)).get("EventsTableName")
    if not table:
        raise UsageError("The stack has no EventsTableName output.")
    items = query_events(
        aws, table, since=window, rule=rule, min_severity=severity, limit=limit, account=account
    )
    if ui.json_mode:
        for item in items:
            ui.json({k: v for k, v in item.items() if k != "raw"})
        return 0
    ui.table(
        COLUMNS,
        [
            (
                i.get("event_time"),
                i.get("account_id"),
                i.get("rule_id"),
                i.get("severity"),
                i.get("event_name"),
                i.get("principal_arn"),
                i.get("source_ip"),
                i.get("aws_region"),
            )
            for i in items
        ],
    )
    ui.info(
        f"{len(items)} event(s) in the last {since}" + (f" (limit {limit})" if len(items) >= limit else "")
    )
    return 0
