"""The trail's log files in a time window, listed by their partition prefixes (never the whole bucket):
`AWSLogs/[<org>/]<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/`, the day folders listed in parallel.
Shared by `trailwatch hunt` and `trailwatch scan s3://... --since`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from trailwatch.errors import UsageError

LIST_THREADS = 16
_STAMP = re.compile(r"_(\d{8}T\d{4}Z)_")
_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")


def parse_moment(text: str, now: datetime) -> datetime:
    """``90d``/``12h``/``30m`` (ago), or an ISO date or time (UTC when no zone is given)."""
    from trailwatch.events import parse_since

    text = text.strip()
    if re.fullmatch(r"\d+\s*[smhdw]", text):
        return now - parse_since(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{text!r}: expected e.g. 90d, 12h or a date such as 2026-09-01.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def days_between(start: datetime, end: datetime) -> list[str]:
    """``YYYY/MM/DD`` of every UTC day from start to end."""
    day, last, out = start.astimezone(UTC).date(), end.astimezone(UTC).date(), []
    while day <= last:
        out.append(day.strftime("%Y/%m/%d"))
        day += timedelta(days=1)
    return out


def key_time(key: str) -> datetime | None:
    """The delivery time stamp in a CloudTrail log file name."""
    match = _STAMP.search(key.rsplit("/", 1)[-1])
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%MZ").replace(tzinfo=UTC)


def _children(s3: Any, bucket: str, prefix: str, owner: dict[str, str]) -> list[str]:
    """The names of the "folders" directly under ``prefix`` (Delimiter listing)."""
    names: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/", **owner
    ):
        for common in page.get("CommonPrefixes", []):
            names.append(common["Prefix"][len(prefix) :].rstrip("/"))
    return names


@dataclass(frozen=True)
class LogFile:
    key: str
    size: int


def discover_account_roots(
    s3: Any, bucket: str, prefix: str, accounts: Sequence[str], owner: dict[str, str]
) -> list[tuple[str, str]]:
    """(account, ``[prefix]AWSLogs/[org/]account/``) for each account in the bucket (or only ``accounts``)."""
    base = f"{prefix}AWSLogs/"
    roots: list[tuple[str, str]] = []
    for name in _children(s3, bucket, base, owner):
        if _ACCOUNT.match(name):
            roots.append((name, f"{base}{name}/"))
        elif _ORG.match(name):
            roots.extend(
                (acct, f"{base}{name}/{acct}/")
                for acct in _children(s3, bucket, f"{base}{name}/", owner)
                if _ACCOUNT.match(acct)
            )
    if accounts:
        wanted = set(accounts)
        roots = [(acct, root) for acct, root in roots if acct in wanted]
    return roots


def list_window(
    s3: Any,
    bucket: str,
    prefix: str,
    since: datetime,
    until: datetime,
    *,
    accounts: Sequence[str] = (),
    regions: Sequence[str] = (),
    owner: dict[str, str] | None = None,
    threads: int = LIST_THREADS,
) -> list[LogFile]:
    """Every log file of the window, by partition prefixes listed in parallel."""
    owner = owner or {}
    roots = discover_account_roots(s3, bucket, prefix, accounts, owner)
    with ThreadPoolExecutor(threads) as pool:
        if regions:
            pairs = [(root, region) for _, root in roots for region in regions]
        else:
            found = pool.map(
                lambda r: (r, _children(s3, bucket, f"{r}CloudTrail/", owner)), [r for _, r in roots]
            )
            pairs = [(root, region) for root, names in found for region in names]
        day_prefixes = [
            f"{root}CloudTrail/{region}/{day}/"
            for root, region in pairs
            for day in days_between(since, until)
        ]

        def one(day_prefix: str) -> list[LogFile]:
            out = []
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=day_prefix, **owner
            ):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    when = key_time(key)
                    if key.endswith(".json.gz") and when is not None and since <= when <= until:
                        out.append(LogFile(key, int(obj.get("Size", 0))))
            return out

        files = [f for chunk in pool.map(one, day_prefixes) for f in chunk]
    return sorted(files, key=lambda f: f.key)
