"""Power of a paired audit: what it could have detected, and how many seeds a target needs.

Power is that of the two-sided paired t test on n seed differences with
standard deviation `sd`: the statistic is noncentral t with n - 1 degrees of
freedom and noncentrality effect * sqrt(n) / sd.
"""

from __future__ import annotations

import math

from scipy import optimize, stats

from ..errors import AuditConfigError


def power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Probability that a two-sided paired t test at `alpha` rejects when the true effect is `effect`."""
    if n < 2:
        raise AuditConfigError(f"power needs at least 2 seeds, got {n}")
    if sd <= 0:
        return 1.0 if effect != 0 else alpha
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) * math.sqrt(n) / sd
    value = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    if not math.isfinite(value):
        # scipy's noncentral t gives NaN far in the tail (large nc, df = 1): the power is then ~0 or ~1.
        value = 1.0 if nc > crit else alpha
    return min(1.0, max(0.0, value))


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, target_power: float = 0.8) -> float:
    """The smallest |effect| detected with `target_power`, given the seed-to-seed `sd` of differences."""
    if sd <= 0 or not math.isfinite(sd):
        return 0.0 if sd == 0 else math.inf
    hi = sd
    while power(hi, sd, n, alpha) < target_power:
        hi *= 2
        if hi > 1e6 * sd:
            return math.inf
    return float(optimize.brentq(lambda e: power(e, sd, n, alpha) - target_power, 0.0, hi, xtol=1e-10 * sd))


def seeds_needed(effect: float, sd: float, alpha: float = 0.05, target_power: float = 0.8,
                 max_seeds: int = 10_000) -> int:
    """The fewest seeds (>= 2) whose paired t test detects `effect` with `target_power`."""
    if effect == 0:
        raise AuditConfigError("a target effect of 0 cannot be detected with any number of seeds")
    n = 2
    while power(effect, sd, n, alpha) < target_power:
        n += 1
        if n > max_seeds:
            return max_seeds
    return n
