"""`trailwatch rules test` / `rules list`: the tests beside each rule, run through the processor's matcher.

A rule's ``tests`` entry is ``{"name"?, "record": {...} | "file": "path", "expect": "match" | "no-match"}``.
``file`` is resolved relative to the config file (the Lambda never reads it) and holds one CloudTrail record,
or a CloudTrail log file ``{"Records": [...]}``: then ``match`` means some record matches the rule and
``no-match`` that none does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from trailwatch.ui import UI

EXPECT_MATCH = "match"
EXPECT_NO_MATCH = "no-match"


@dataclass(frozen=True)
class RuleTestResult:
    rule: str
    test: str
    expected: str
    got: str  # "match", "no-match" or "error: ..."

    @property
    def passed(self) -> bool:
        return self.got == self.expected


def _records(test: dict, base: Path) -> list[Any]:
    """The records a test names; OSError/ValueError when its file cannot be read."""
    if "record" in test:
        return [test["record"]]
    path = base / test["file"]
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("Records"), list):
        return list(data["Records"])
    return [data]


def _test_name(test: dict, index: int) -> str:
    if "name" in test:
        return str(test["name"])
    if "file" in test:
        return f"#{index + 1} {test['file']}"
    return f"#{index + 1}"


def run_tests(config: Any, base: Path) -> list[RuleTestResult]:
    """Every test of every rule, in config order, matched with `patterns.compile_config` (as the Lambda)."""
    from trailwatch_processor.patterns import compile_config

    matcher = compile_config(config)
    results: list[RuleTestResult] = []
    for rule in config.rules:
        for index, test in enumerate(rule.tests):
            name = _test_name(test, index)
            try:
                records = _records(test, base)
            except (OSError, ValueError, RecursionError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                results.append(RuleTestResult(rule.id, name, test["expect"], f"error: {reason}"))
                continue
            hit = any(any(r.id == rule.id for r in matcher.match(rec)) for rec in records)
            results.append(
                RuleTestResult(rule.id, name, test["expect"], EXPECT_MATCH if hit else EXPECT_NO_MATCH)
            )
    return results


def failures(results: list[RuleTestResult]) -> list[RuleTestResult]:
    return [r for r in results if not r.passed]


def table_rows(results: list[RuleTestResult]) -> list[list[str]]:
    return [[r.rule, r.test, r.expected, r.got, "ok" if r.passed else "FAIL"] for r in results]


TABLE_HEADERS = ["rule", "test", "expected", "got", "result"]


def run_test_command(ui: UI, path: Path) -> int:
    """`rules test`: print the table; 0 when every test passes, 1 otherwise."""
    from trailwatch.configcmd import load_config

    config, _ = load_config(path)
    results = run_tests(config, path.resolve().parent)
    ui.table(TABLE_HEADERS, table_rows(results))
    untested = [r.id for r in config.rules if not r.tests]
    failed = failures(results)
    summary = f"{len(results)} test(s) of {len(config.rules) - len(untested)} rule(s): {len(failed)} failed"
    if untested:
        ui.info(f"{summary}; {len(untested)} rule(s) without tests: {_some(untested)}")
    else:
        ui.info(summary)
    if failed:
        ui.error(f"{len(failed)} rule test(s) failed in {path}.")
        return 1
    if not results:  # nothing failed because nothing ran: say so rather than "all pass"
        ui.warn(f"no rule of {path} carries tests: nothing was checked.")
        return 0
    ui.success("All rule tests pass.")
    return 0


UNTESTED_SHOWN = 10


def _some(ids: list[str]) -> str:
    """The first ids of a list, and how many more (an import of 46 Sigma rules must not print them all)."""
    shown = ", ".join(ids[:UNTESTED_SHOWN])
    return f"{shown} and {len(ids) - UNTESTED_SHOWN} more" if len(ids) > UNTESTED_SHOWN else shown


def _origin(rule: Any, config: Any, bundled: bool) -> str:
    if bundled and rule.id in config.raw.get("monitored_events", []):
        return "shipped"  # the shorthand rules of the bundled config carry no origin field
    return str(rule.origin)


def run_list_command(ui: UI, path: Path, bundled: bool) -> int:
    """`rules list`: every rule with severity, origin and test count."""
    from trailwatch.configcmd import load_config

    config, _ = load_config(path)
    rows = [[r.id, r.severity, _origin(r, config, bundled), len(r.tests), r.title] for r in config.rules]
    ui.table(["rule", "severity", "origin", "tests", "title"], rows)
    return 0


@click.group("rules")
def rules() -> None:
    """Rules as code: list the rules of a config, run the tests beside them, import Sigma rules."""


@rules.command("test")
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
def test_command(config: Path | None) -> None:
    """Run every rule's tests through the processor's matcher; exit 1 when one fails.

    \b
    Example:
      trailwatch rules test my-events.json
    """
    from trailwatch import resources

    raise click.exceptions.Exit(run_test_command(UI(), config or resources.default_config_path()))


@rules.command("list")
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
def list_command(config: Path | None) -> None:
    """Every rule with its severity, origin (shipped, sigma, filter_pattern, yours) and test count.

    \b
    Example:
      trailwatch rules list
    """
    from trailwatch import resources

    path = config or resources.default_config_path()
    bundled = path.resolve() == resources.default_config_path().resolve()
    raise click.exceptions.Exit(run_list_command(UI(), path, bundled))


def _add_import_sigma() -> None:
    """`rules import-sigma` lives in its own module (pySigma is imported only when it runs)."""
    from trailwatch.sigma_import import import_sigma

    rules.add_command(import_sigma)


_add_import_sigma()
