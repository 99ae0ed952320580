"""The vendored CloudTrail records are the complete, unmodified set their SOURCES.md names, with the license
texts it points to: a clone runs the real-data tests, and the attribution travels with the data."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.conftest import SHARED_CLOUDTRAIL, shared_cloudtrail_files

SOURCES = SHARED_CLOUDTRAIL / "SOURCES.md"


def _table(heading_cells: tuple[str, ...]) -> dict[str, list[str]]:
    """Rows of the SOURCES.md table whose header starts with `heading_cells`, by file name."""
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in SOURCES.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            in_table = False
        elif tuple(cells[: len(heading_cells)]) == heading_cells:
            in_table = True
        elif in_table and not set(line) <= set("|- "):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


SOURCE_ROWS = _table(("file", "source repository @ commit"))
DIGESTS = {name: cells[0].strip("`") for name, cells in _table(("file", "sha256")).items()}


def test_sources_md_lists_every_file_once_with_a_digest() -> None:
    assert len(SOURCE_ROWS) == 7
    assert set(DIGESTS) == set(SOURCE_ROWS)
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in DIGESTS.values()), DIGESTS


def test_folder_holds_exactly_the_listed_files() -> None:
    assert {p.name for p in shared_cloudtrail_files()} == set(SOURCE_ROWS)


@pytest.mark.parametrize("name", sorted(SOURCE_ROWS))
def test_file_is_unmodified(name: str) -> None:
    data = (SHARED_CLOUDTRAIL / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == DIGESTS[name]


@pytest.mark.parametrize("name", sorted(SOURCE_ROWS))
def test_record_count_matches_sources_md(name: str) -> None:
    license_, records = SOURCE_ROWS[name][2], SOURCE_ROWS[name][3]
    assert license_ in {"Apache-2.0", "MIT"}
    assert len(json.loads((SHARED_CLOUDTRAIL / name).read_text())["Records"]) == int(records)


@pytest.mark.parametrize(
    ("file", "must_contain"),
    [
        ("LICENSE-Apache-2.0", "Apache License\n                           Version 2.0, January 2004"),
        ("LICENSE-MIT-Security-Datasets", "Copyright (c) 2021 Open Threat Research Forge"),
        ("NOTICE-stratus-red-team", "Copyright 2021-Present Datadog, Inc."),
    ],
)
def test_license_texts_travel_with_the_data(file: str, must_contain: str) -> None:
    path: Path = SHARED_CLOUDTRAIL / file
    assert must_contain in path.read_text()
    assert f"`{file}`" in SOURCES.read_text()


def test_the_records_are_read_from_inside_the_checkout(repo_root: Path) -> None:
    assert SHARED_CLOUDTRAIL.resolve().is_relative_to(repo_root.resolve())


def test_no_code_or_doc_points_beside_the_checkout(repo_root: Path) -> None:
    """A clone alone must work: no source, test, bench script or doc names the old data folder next to it."""
    outside = ("../" + "shared", "TRAILWATCH_" + "SHARED_DATA")
    files = [repo_root / name for name in ("README.md", "pyproject.toml", "main.yaml", ".ci/run")]
    for folder in ("cli", "lambda_src", "tests", "bench", "docs"):
        files += [
            p
            for p in (repo_root / folder).rglob("*")
            if p.suffix in {".py", ".md", ".toml", ".yaml"}
            and "data" not in p.relative_to(repo_root).parts[:2]
        ]
    hits = [str(p.relative_to(repo_root)) for p in files if any(o in p.read_text() for o in outside)]
    assert hits == []
