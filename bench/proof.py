"""Prove it: load, faults and bad input through the whole local pipeline.

    python bench/proof.py [--scale 1.0] [--only load,faults,...] [--markdown docs/proof.md] [--verbose]

The scenarios, the harness and the counts they report live in `bench/proof_scenarios.py`; this is the
command line around them.

The last line reads `scenarios=<n> lost=<total> duplicated=<total>`. Exit 1 when any scenario fails a
check (lost, duplicated, unexpected, or an input whose documented outcome did not happen).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# `python bench/proof.py` puts bench/ first on sys.path: the scenarios are the sibling module.
from proof_scenarios import SCENARIOS, markdown, run, summary, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="load size factor (1.0: 500 x 2,000)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenario names")
    parser.add_argument("--markdown", type=Path, help="write the table (markdown) to this file")
    parser.add_argument("--verbose", action="store_true", help="print the emulator's and function's logs")
    parser.add_argument(
        "--memory-limit-mb",
        type=float,
        default=12_000,
        help="stop the run when the harness and the function's workers use more (default 12,000 MB)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not 0 < args.scale <= 10:
        parser.error(
            f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}"
            if unknown
            else "--scale: 0 < s <= 10"
        )
    log = (lambda m: print(m, file=sys.stderr)) if args.verbose else None
    started = time.monotonic()
    rows, h = run(names, args.scale, log, args.memory_limit_mb)
    elapsed = time.monotonic() - started
    print(table(rows))
    for r in rows:
        if r.notes or r.failures:
            print(f"  {r.scenario}: {'; '.join(r.notes + r.failures)}")
    if h.outcomes:
        for o in h.outcomes:
            print(f"  bad input: {o.name}: documented {o.documented}, observed {o.observed}")
    if args.markdown:
        command = "python bench/proof.py" + (f" --scale {args.scale}" if args.scale != 1.0 else "")
        args.markdown.write_text(markdown(rows, h.outcomes, command, elapsed) + "\n")
    print(summary(rows))
    return 0 if rows and all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
