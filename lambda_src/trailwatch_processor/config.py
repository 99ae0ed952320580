"""What a trailwatch config is: ``Config``, a tuple of ``Rule`` objects, and ``ConfigError`` naming every
fault by its path; the severities and the wildcard syntax the matcher and the literals share. Validating
one is config_schema.py's job, reading one from text or the bundled default config_load.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("info", "low", "medium", "high", "critical")
DEFAULT_SEVERITY = "medium"


class ConfigError(ValueError):
    """Invalid config; ``errors`` holds every fault as ``"<path>: <message>"``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    description: str
    pattern: dict = field(hash=False)
    exclude: tuple[dict, ...] = field(default=(), hash=False)
    # Metadata for the CLI (`trailwatch rules list/test`); the matcher never reads them.
    origin: str = field(default="yours", compare=False)
    filter_pattern: str | None = field(default=None, compare=False)
    tests: tuple[dict, ...] = field(default=(), hash=False, compare=False)


@dataclass(frozen=True)
class Config:
    rules: tuple[Rule, ...]
    source: str
    raw: dict = field(hash=False, compare=False)


def severity_rank(name: str) -> int:
    """0 (info) .. 4 (critical); ValueError for an unknown name."""
    try:
        return SEVERITIES.index(name)
    except ValueError:
        raise ValueError(f"unknown severity {name!r}; expected one of {', '.join(SEVERITIES)}") from None


def wildcard_segments(text: str) -> list[str]:
    """Split an (already validated) wildcard on unescaped stars, unescaping the literal parts."""
    segments, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            cur.append(text[i + 1])
            i += 2
            continue
        if ch == "*":
            segments.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    segments.append("".join(cur))
    return segments
