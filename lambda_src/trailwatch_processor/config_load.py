"""Reading a config: JSON text (UTF-8, at most ``MAX_CONFIG_BYTES``) -> a validated ``Config``
(config_schema.py), or a ``ConfigError``; and the bundled default config.

The decoder refuses what JSON allows but a config must not hold: a duplicate key (JSON would silently keep
only the last), ``NaN``/``Infinity``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import Config, ConfigError
from .config_schema import validate_config

MAX_CONFIG_BYTES = 1_048_576


def parse_config(data: bytes | str, source: str = "config") -> Config:
    """Decode JSON text (UTF-8) and validate it; decode faults name line and column."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{source}: config larger than {MAX_CONFIG_BYTES} bytes"])
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    else:
        text = data
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    def constant(name: str) -> float:
        raise ValueError(f"{name} is not valid JSON")

    try:
        raw = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from None
    except RecursionError:
        raise ConfigError([f"{source}: JSON nested too deeply"]) from None
    except ValueError as exc:
        raise ConfigError([f"{source}: invalid JSON: {exc}"]) from None
    if duplicates:
        keys = ", ".join(repr(k) for k in dict.fromkeys(duplicates))
        raise ConfigError(
            [f"{source}: duplicate object key(s) {keys}: JSON would silently keep only the last"]
        )
    return validate_config(raw, source)


def default_config_path() -> Path:
    return Path(__file__).resolve().with_name("default_events.json")


def load_default_config() -> Config:
    """The bundled default (``default_events.json`` next to this module; == top-level ``events.json``)."""
    path = Path(__file__).with_name("default_events.json")
    return parse_config(path.read_bytes(), source="default_events.json")
