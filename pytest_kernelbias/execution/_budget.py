"""A time budget for seeds="auto": the largest max_seeds whose training fits, chosen before any model trains.

The budget is turned into a seed count from the first estimate (one timed training step per level, times
the recipe's steps; `_estimate.first_estimate`) and nothing else: no outcome has been seen, so the
sequential design is fixed in advance exactly as if the user had written that max_seeds, and its error
rates hold. The estimate is kept in the cache folder and the cache's contents do not enter the count,
so a rerun with the same cache runs the same design and gives the same verdict.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ..errors import AuditConfigError
from ._records import read_memo, write_memo

_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$")


def parse_budget(value: object) -> float | None:
    """Seconds from "10m", "90s", "1.5h" or a number of seconds; None for no budget."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _PATTERN.match(str(value).lower())
        if match is None:
            raise AuditConfigError(f"budget {value!r} is not a duration; write e.g. '10m', '90s', '1.5h' or a number "
                                   "of seconds")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise AuditConfigError(f"budget must be a positive duration, got {value!r}")
    return seconds


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def fit_max_seeds(budget: float, per_seed: float, done_seeds: int, min_seeds: int, max_seeds: int) -> int:
    """The most seeds per level whose training fits `budget`, within [min_seeds, max_seeds].

    `per_seed` is the estimated seconds to train one more seed of every level (the reference and each
    treated level, or a map's arms); `done_seeds` seeds per level are already in the cache (free).
    A budget that cannot fit min_seeds is refused with what min_seeds would take.
    """
    fits = done_seeds + int(budget // per_seed) if per_seed > 0 else max_seeds
    if fits < min_seeds:
        need = (min_seeds - done_seeds) * per_seed
        raise AuditConfigError(f"budget {minutes(budget)} fits {max(fits, 0)} seeds per level, fewer than "
                               f"min_seeds={min_seeds}, which would take about {minutes(need)} here (first "
                               f"estimate: {minutes(per_seed)} per seed of every level); raise the budget, give a "
                               "fixed seeds=N without a budget, or lower min_seeds (>= 2)")
    return min(fits, max_seeds)



def read_estimate(path: Path | None) -> float | None:
    """A kept first estimate (seconds per seed of every level), or None: none kept, or damaged (timed again)."""
    kept = read_memo(path)
    value = kept.get("per_seed") if isinstance(kept, dict) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def write_estimate(path: Path | None, per_seed: float) -> None:
    """Keep the estimate for reruns; None keeps nothing."""
    write_memo(path, {"per_seed": per_seed})
