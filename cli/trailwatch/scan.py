"""`trailwatch scan`: the processor's own parse and match, offline, over local files and S3 objects.

Inputs are local files and folders (``.json``/``.json.gz`` under a folder, recursively) and
``s3://bucket/prefix`` URIs (every ``.json``/``.json.gz`` object whose key starts with the prefix, listed with
the paginator, or the one object named exactly). CloudTrail's digest files (``_CloudTrail-Digest_`` in the
name: no records) found in a folder or under a prefix are left out; named one by one, they are read (and
reported unreadable). An S3 object's GetObject body is read by the same streaming reader as a local file
(1 MiB reads: never the whole object in memory), ``READ_THREADS`` objects at a time; the results are merged
in input order (files and keys sorted by their path parts, as for a folder), so the output is the same as
for the same files downloaded: same rows, same summary, same exit code. An input that cannot be listed,
opened or parsed is reported and the scan goes on.

``--since``/``--until`` keep the files whose name's time stamp (CloudTrail's delivery time, UTC) is in the
window; an S3 prefix at or above ``AWSLogs/`` is then listed by its partitions (account, region, day) with
hunt's ``list_window``, never whole. Files named one by one are always scanned.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from trailwatch.errors import EXIT_OK, EXIT_USAGE, UsageError
from trailwatch.log_listing import key_time, list_window, parse_moment
from trailwatch.ui import UI, printable

if TYPE_CHECKING:
    from trailwatch.session import Options

SUFFIXES = (".json", ".json.gz")
DIGEST_MARK = "_CloudTrail-Digest_"  # CloudTrail's digest files (no records) in a folder are not scanned
S3_SCHEME = "s3://"
READ_THREADS = 8  # objects read at a time (botocore's default connection pool holds 10)


class Unscannable(Exception):
    """An input that was not (fully) scanned: the message names it and says why."""


@dataclass(frozen=True)
class Window:
    """Files whose name's delivery time stamp is from ``since`` to ``until`` (both included)."""

    since: datetime
    until: datetime

    def holds(self, name: str) -> bool:

        when = key_time(name)
        return when is not None and self.since <= when <= self.until


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"


def _wanted(name: str, window: Window | None) -> bool:
    """A file found in a folder or under a prefix is scanned: a log file's name, in the window if any."""
    return name.endswith(SUFFIXES) and DIGEST_MARK not in name and (window is None or window.holds(name))


def _walk_order(name: str) -> list[str]:
    """Sort key of a path or S3 key: by its parts, as ``sorted()`` orders the Paths of a folder."""
    return name.split("/")


def expand_paths(paths: tuple[Path, ...], window: Window | None = None) -> Iterator[Path | Unscannable]:
    """Files as given, and `.json`/`.json.gz` files under directories (recursively, sorted; digest files
    left out; in the window if any).

    A folder that cannot be listed is yielded as an Unscannable, never silently skipped."""
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        problems: list[Unscannable] = []

        def unlistable(err: OSError, problems: list[Unscannable] = problems) -> None:
            problems.append(Unscannable(f"{err.filename}: cannot list the folder ({err.strerror or err})"))

        found = [
            Path(folder, name)
            for folder, _, names in os.walk(path, onerror=unlistable)
            for name in names
            if _wanted(name, window)
        ]
        yield from problems
        yield from sorted(found)


def parse_s3_uri(text: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket[/prefix]``."""
    bucket, _, prefix = text[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise UsageError(f"{text!r}: expected s3://BUCKET[/PREFIX].")
    return bucket, prefix


def _trail_lead(prefix: str) -> str | None:
    """The trail's key prefix (``list_window``'s) when ``prefix`` is at or above its ``AWSLogs/`` folder."""
    if prefix == "" or (prefix.endswith("/") and "AWSLogs/" not in prefix):
        return prefix
    if prefix.endswith("AWSLogs/") and prefix.count("AWSLogs/") == 1:
        return prefix.removesuffix("AWSLogs/")
    return None


def list_s3(s3: Any, bucket: str, prefix: str, window: Window | None = None) -> list[S3Object]:
    """The objects to scan under ``s3://bucket/prefix``, sorted as a folder's files; Unscannable if none."""
    uri = f"{S3_SCHEME}{bucket}/{prefix}"
    lead = _trail_lead(prefix) if window is not None else None
    if window is not None and lead is not None:
        keys = [f.key for f in list_window(s3, bucket, lead, window.since, window.until)]
    else:
        keys, seen_any = [], False
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                seen_any = True
                key = obj["Key"]
                name = key.rsplit("/", 1)[-1]
                if (key == prefix and not key.endswith("/")) or _wanted(name, window):  # "/": a folder marker
                    keys.append(key)
        if not seen_any:
            raise Unscannable(f"{uri}: no object under this prefix")
    return [S3Object(bucket, key) for key in sorted(keys, key=_walk_order)]


def open_regular(path: Path) -> IO[bytes]:
    """``path`` opened for reading only if it is a regular file: a FIFO or device would block or never end.

    Opened non-blocking first, so a FIFO swapped in after any earlier check cannot hang the scan either."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "special"
            raise Unscannable(f"{path}: not a regular file ({kind}), skipped")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@dataclass
class ScanResult:
    matches: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: int = 0
    records: int = 0


@dataclass
class FileOutcome:
    """One file's matches (in file order, not yet deduplicated), records read, and error if any."""

    matches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    records: int = 0
    error: str | None = None


def scan_one(
    name: str, opener: Callable[[], contextlib.AbstractContextManager[Any]], matcher: Any
) -> FileOutcome:
    """Read one file or object with the processor's streaming reader; any failure becomes its error."""
    import botocore.exceptions
    from trailwatch_processor import log_stream, logfile, records

    outcome = FileOutcome()
    stats = logfile.FileStats(records=0, parsed=0, matched=0, skipped_non_objects=0, fast_path=False)
    try:
        with opener() as raw:
            stream = log_stream.open_log(raw)
            for record, rules in logfile.iter_matches(stream, matcher, stats):
                eid = records.event_id(record)
                outcome.matches.append((eid, _row(record, rules, eid, name)))
    except Unscannable as exc:
        outcome.error = str(exc)
    except (
        OSError,
        log_stream.LogFileError,
        EOFError,
        botocore.exceptions.ClientError,
        botocore.exceptions.BotoCoreError,
    ) as exc:
        outcome.error = f"{name}: {exc}"
    except Exception as exc:  # hostile content (deep nesting, huge numbers): report it, go on
        outcome.error = f"{name}: cannot be parsed ({type(exc).__name__}: {str(exc)[:200]})"
    finally:
        outcome.records = stats.records
    return outcome


def _s3_opener(s3: Any, obj: S3Object) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """GetObject's streaming body, closed after reading (its connection goes back to the pool)."""
    return lambda: contextlib.closing(s3.get_object(Bucket=obj.bucket, Key=obj.key)["Body"])


def _inputs(texts: Sequence[str], s3: Any, window: Window | None) -> Iterator[Path | S3Object | Unscannable]:
    """Every file and object to scan, in input order; inputs that cannot be listed as Unscannable."""
    import botocore.exceptions

    for text in texts:
        if not text.startswith(S3_SCHEME):
            yield from expand_paths((Path(text),), window)
            continue
        bucket, prefix = parse_s3_uri(text)
        if s3 is None:
            raise UsageError(f"{text}: s3:// inputs need an S3 client.")
        try:
            yield from list_s3(s3, bucket, prefix, window)
        except Unscannable as exc:
            yield exc
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            yield Unscannable(f"{text}: cannot be listed ({exc})")


def scan_inputs(
    texts: Sequence[str],
    matcher: Any,
    *,
    s3: Any = None,
    window: Window | None = None,
    threads: int = READ_THREADS,
) -> ScanResult:
    """Every input scanned on its own: one that cannot be read or parsed is reported and the scan goes on.

    S3 objects are read in a pool of ``threads``; local files in this thread. Outcomes are merged in input
    order, so which file an event reported twice is attributed to does not depend on timing."""

    _ = matcher.literals  # computed once, before the threads share the matcher
    result = ScanResult()
    seen: set[str] = set()
    pool = ThreadPoolExecutor(threads)
    try:
        pending: list[Future[FileOutcome] | Path | Unscannable] = []
        for item in _inputs(texts, s3, window):
            if isinstance(item, S3Object):
                pending.append(pool.submit(scan_one, str(item), _s3_opener(s3, item), matcher))
            else:
                pending.append(item)
        for entry in pending:
            if isinstance(entry, Unscannable):
                result.errors.append(str(entry))
                continue
            if isinstance(entry, Path):
                path = entry
                outcome = scan_one(str(path), lambda path=path: open_regular(path), matcher)
            else:
                outcome = entry.result()
            result.records += outcome.records
            if outcome.error is not None:
                result.errors.append(outcome.error)
                continue
            result.files += 1
            for eid, row in outcome.matches:
                if eid not in seen:
                    seen.add(eid)
                    result.matches.append(row)
    finally:  # on an error or Ctrl-C, objects not yet started are not read any more
        pool.shutdown(wait=True, cancel_futures=True)
    return result


def _row(record: dict[str, Any], rules: list[Any], eid: str, name: str) -> dict[str, Any]:
    from trailwatch_processor import records
    from trailwatch_processor.config import severity_rank

    arn, _ = records.principal(record)
    primary = max(rules, key=lambda r: severity_rank(r.severity)) if rules else None
    return {
        "eventID": eid,
        "eventName": record.get("eventName"),
        "eventTime": record.get("eventTime"),
        "eventSource": record.get("eventSource"),
        "awsRegion": record.get("awsRegion"),
        "sourceIPAddress": record.get("sourceIPAddress"),
        "principal": arn,
        "rules": [r.id for r in rules],
        "severity": primary.severity if primary else None,
        "file": name,
    }


def make_window(since: str | None, until: str | None) -> Window | None:
    """``--since``/``--until`` (``7d``, ``12h``, an ISO date or time) as a Window, or None if neither."""
    if since is None and until is None:
        return None
    if since is None:
        raise UsageError("--until needs --since (e.g. --since 7d --until 2d).")

    now = datetime.now(UTC)
    start, end = parse_moment(since, now), parse_moment(until, now) if until else now
    if start > end:
        raise UsageError(f"--since {since} is after --until {until or 'now'}.")
    return Window(start, end)


def run_scan(
    ui: UI,
    paths: Sequence[str | Path],
    config_path: Path | None,
    *,
    options: Options | None = None,
    since: str | None = None,
    until: str | None = None,
) -> int:
    from trailwatch_processor.config_load import load_default_config
    from trailwatch_processor.patterns import compile_config

    texts = [str(p) for p in paths]
    for text in texts:
        if text.startswith(S3_SCHEME):
            parse_s3_uri(text)  # a malformed URI is a usage error before anything is read
    window = make_window(since, until)
    if config_path is not None:
        from trailwatch.configcmd import load_config

        config, _ = load_config(config_path)
    else:
        config = load_default_config()
    s3 = None
    if any(text.startswith(S3_SCHEME) for text in texts):
        from trailwatch.session import Aws, Options

        s3 = Aws(options or Options()).client("s3")  # no credentials or region: exit 2 before any read
    result = scan_inputs(texts, compile_config(config), s3=s3, window=window)
    for message in result.errors:
        ui.error(f"unreadable input: {printable(message)}")
    if ui.json_mode:
        for row in result.matches:
            ui.json(row)
    else:
        ui.table(
            ["time", "rules", "severity", "event", "principal", "source ip", "event id"],
            [
                (
                    m["eventTime"],
                    m["rules"],
                    m["severity"],
                    m["eventName"],
                    m["principal"],
                    m["sourceIPAddress"],
                    m["eventID"],
                )
                for m in result.matches
            ],
        )
    ui.info(
        f"{len(result.matches)} matching event(s) in {result.records} record(s) of {result.files} file(s)"
        + (f"; {len(result.errors)} unreadable" if result.errors else "")
    )
    return EXIT_USAGE if result.errors else EXIT_OK
