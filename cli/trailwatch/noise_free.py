"""The bundled pack (events.json) with its noise control taken out: every rule alerts on each event.

For the demo and the pipeline/proof harnesses, whose claim is "each expected event is stored once and
covered by exactly one alert, at once": the pack's dedup windows (CIS 4.1, 60 minutes) and threshold
(CIS 4.6, 3 failures per source IP) would hold those alerts back by design. Noise control itself is shown
by tests/e2e/test_noise_e2e.py. The rules, patterns and tests are the pack's, unchanged.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

NOISE_KEYS = ("dedup", "threshold")


def without_noise_control(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config document without ``dedup``/``threshold`` on its rules and without
    ``suppressions``."""
    out = copy.deepcopy(doc)
    out.pop("suppressions", None)
    for rule in out.get("rules", []):
        if isinstance(rule, dict):
            for key in NOISE_KEYS:
                rule.pop(key, None)
    return out


def bundled_config_without_noise() -> bytes:
    """events.json (the packaged default) without its noise control, as JSON bytes."""
    from trailwatch import resources

    doc = json.loads(resources.default_config_path().read_bytes())
    return (json.dumps(without_noise_control(doc), indent=2) + "\n").encode()


def write_bundled_config_without_noise(folder: Path) -> Path:
    """The same, written as ``folder/events-without-noise-control.json`` (for `--config` paths)."""
    path = folder / "events-without-noise-control.json"
    path.write_bytes(bundled_config_without_noise())
    return path
