"""Files shipped inside the installed packages: the template and the default config."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import trailwatch_processor

CONFIG_NAME = "default_events.json"


def template_text() -> str:
    """The stack template `main.yaml` (packaged as trailwatch/resources/main.yaml, works from a wheel)."""
    return resources.files("trailwatch").joinpath("resources", "main.yaml").read_text(encoding="utf-8")


def default_config_path() -> Path:
    """The default monitored-events config (the processor package's copy of top-level events.json)."""
    return Path(trailwatch_processor.__file__).resolve().parent / CONFIG_NAME
