"""`trailwatch scan`: the processor's own parse and match, offline, over local CloudTrail files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trailwatch.errors import EXIT_OK, EXIT_USAGE
from trailwatch.ui import UI

SUFFIXES = (".json", ".json.gz")


def expand_paths(paths: tuple[Path, ...]) -> Iterator[Path]:
    """Files as given, and `.json`/`.json.gz` files under directories (recursively, sorted)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        else:
            yield path


@dataclass
class ScanResult:
    matches: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: int = 0
    records: int = 0


def scan_files(paths: tuple[Path, ...], matcher: Any) -> ScanResult:
    from trailwatch_processor import logfile, records

    result = ScanResult()
    seen: set[str] = set()
    for path in expand_paths(paths):
        stats = logfile.FileStats(records=0, parsed=0, matched=0, skipped_non_objects=0, fast_path=False)
        try:
            with path.open("rb") as raw:
                stream = logfile.open_log(raw)
                for record, rules in logfile.iter_matches(stream, matcher, stats):
                    eid = records.event_id(record)
                    if eid in seen:
                        continue
                    seen.add(eid)
                    result.matches.append(_row(record, rules, eid, path))
        except (OSError, logfile.LogFileError, EOFError) as exc:
            result.errors.append(f"{path}: {exc}")
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
    from trailwatch_processor.config import load_default_config
    from trailwatch_processor.patterns import compile_config

    if config_path is not None:
        from trailwatch.configcmd import load_config

        config, _ = load_config(config_path)
    else:
        config = load_default_config()
    result = scan_files(paths, compile_config(config))
    for message in result.errors:
        ui.error(f"unreadable input: {message}")
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
