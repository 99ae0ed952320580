"""Hypothesis profiles: `dev` (the default, for the edit-test loop) and `ci` (`.ci/run`:
`pytest --hypothesis-profile=ci`).

A property test states its full example count with `examples(n)`: `ci` runs all `n`, `dev` a third of
them (never fewer than 25), so the fast tier stays fast and CI keeps the depth the test was written for.
"""

from __future__ import annotations

from hypothesis import settings

DEV, CI = "dev", "ci"
DEV_FRACTION = 3
DEV_FLOOR = 25

settings.register_profile(DEV, print_blob=True)
settings.register_profile(CI, print_blob=True)


def examples(full: int) -> int:
    """`max_examples` for a property test whose full count is `full`, under the loaded profile."""
    if settings.get_current_profile_name() == CI:
        return full
    return min(full, max(DEV_FLOOR, full // DEV_FRACTION))
