"""Power of a paired audit: what it could have detected, and how many seeds a target needs.

Power is that of the two-sided paired t test on n seed differences with
standard deviation `sd`: the statistic is noncentral t with n - 1 degrees of
freedom and noncentrality effect * sqrt(n) / sd, integrated exactly (see `power`).
"""

from __future__ import annotations

import math

from scipy import integrate, optimize, stats

from ..errors import AuditConfigError


def power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Probability that a two-sided paired t test at `alpha` rejects when the true effect is `effect`.

    Exact at every n >= 2: with T = (Z + d) / (U / sqrt(df)), Z standard normal,
    U chi-distributed with df = n - 1 and d = effect * sqrt(n) / sd,
    power = E_U[Phi(d - c U / sqrt(df)) + Phi(-d - c U / sqrt(df))] for the
    critical value c, integrated over U. (scipy's noncentral t returns NaN
    far in the tail at df = 1 or 2, where this integral stays accurate.)
    """
    if n < 2:
        raise AuditConfigError(f"power needs at least 2 seeds, got {n}")
    if not 0 < alpha < 1:
        raise AuditConfigError(f"alpha must lie in (0, 1), got {alpha!r}")
    if sd <= 0:
        return 1.0 if effect != 0 else alpha
    df = n - 1
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    d = abs(effect) * math.sqrt(n) / sd
    scale = crit / math.sqrt(df)

    log_norm = (df / 2 - 1) * math.log(2) + math.lgamma(df / 2)  # the chi density's normalising constant

    def integrand(u: float) -> float:
        # Plain math (not scipy's per-call machinery): quad evaluates this a few hundred times.
        if u <= 0:
            return 0.0
        density = math.exp((df - 1) * math.log(u) - u * u / 2 - log_norm)
        return density * 0.5 * (math.erfc(-(d - scale * u) / math.sqrt(2)) + math.erfc((d + scale * u) / math.sqrt(2)))

    # Beyond chi.isf(1e-16) the density's mass is below 1e-16; the kink sits where d = scale * u.
    top = float(stats.chi.isf(1e-16, df))
    kinks = sorted({min(max(d / scale, 0.0), top), float(stats.chi.median(df))})
    value, _ = integrate.quad(integrand, 0.0, top, points=kinks, limit=200, epsabs=1e-13, epsrel=1e-11)
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
