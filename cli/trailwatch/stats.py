"""Summary statistics shared by the demo (`trailwatch demo`) and the benchmarks (`bench/`)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (1..99) of ``values``, interpolated between samples ("inclusive" method).

    One value is its own every percentile; no values is a ValueError."""
    if not values:
        raise ValueError("percentile of no values")
    if not 1 <= q <= 99:
        raise ValueError(f"percentile {q}: expected 1..99")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
