"""`trailwatch scan`: the processor's own parse and match, offline, over local CloudTrail files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from trailwatch.errors import EXIT_OK, EXIT_USAGE
from trailwatch.ui import UI, printable

SUFFIXES = (".json", ".json.gz")


class Unscannable(Exception):
    """An input that was not (fully) scanned: the message names it and says why."""


def expand_paths(paths: tuple[Path, ...]) -> Iterator[Path | Unscannable]:
    """Files as given, and `.json`/`.json.gz` files under directories (recursively, sorted).

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
            if name.endswith(SUFFIXES)
        ]
        yield from problems
        yield from sorted(found)


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


def scan_files(paths: tuple[Path, ...], matcher: Any) -> ScanResult:
    """Every input scanned on its own: one that cannot be read or parsed is reported and the scan goes on."""
    from trailwatch_processor import log_stream, logfile, records

    result = ScanResult()
    seen: set[str] = set()
    for path in expand_paths(paths):
        if isinstance(path, Unscannable):
            result.errors.append(str(path))
            continue
        stats = logfile.FileStats(records=0, parsed=0, matched=0, skipped_non_objects=0, fast_path=False)
        try:
            with open_regular(path) as raw:
                stream = log_stream.open_log(raw)
                for record, rules in logfile.iter_matches(stream, matcher, stats):
                    eid = records.event_id(record)
                    if eid in seen:
                        continue
                    seen.add(eid)
                    result.matches.append(_row(record, rules, eid, path))
        except Unscannable as exc:
            result.errors.append(str(exc))
            continue
        except (OSError, log_stream.LogFileError, EOFError) as exc:
            result.errors.append(f"{path}: {exc}")
            continue
        except Exception as exc:  # hostile content (deep nesting, huge numbers): report it, go on
            result.errors.append(f"{path}: cannot be parsed ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        finally:
            result.records += stats.records
        result.files += 1
    return result


def _row(record: dict[str, Any], rules: list[Any], eid: str, path: Path) -> dict[str, Any]:
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
        "file": str(path),
    }


def run_scan(ui: UI, paths: tuple[Path, ...], config_path: Path | None) -> int:
    from trailwatch_processor.config_load import load_default_config
    from trailwatch_processor.patterns import compile_config

    if config_path is not None:
        from trailwatch.configcmd import load_config

        config, _ = load_config(config_path)
    else:
        config = load_default_config()
    result = scan_files(paths, compile_config(config))
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
