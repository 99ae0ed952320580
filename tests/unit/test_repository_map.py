"""The repository explains itself: docs/architecture.md names every module of the three packages, and no
code, test or doc points at the project's issue tracker or at files outside the checkout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lambda_src/trailwatch_processor", "cli/trailwatch", "cli/trailwatch/local")
SOURCES = ("lambda_src", "cli", "tests", "bench", "docs", "README.md")


def _modules() -> list[Path]:
    return sorted(p for folder in PACKAGES for p in (ROOT / folder).glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_architecture_names_every_module(module: Path) -> None:
    assert module.name in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _texts() -> list[Path]:
    out: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        out += [path] if path.is_file() else [*path.rglob("*.py"), *path.rglob("*.md")]
    return sorted(out)


# "issue 15", "Issue 18's", "issue #3", "the issue's acceptance"; a path beside the checkout
POINTERS = re.compile(r"\bissue\s*#?\d+|\bthe issue's\b|\.\./shared\b", re.IGNORECASE)


def test_nothing_points_at_issues_or_outside_the_checkout() -> None:
    me = Path(__file__).resolve()
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _texts()
        if path.resolve() != me
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if POINTERS.search(line)
    ]
    assert not hits, "\n".join(hits)
