"""Futility for seeds="auto": stop early as undecided when max_seeds is unlikely to settle an effect.

An undecided look normally trains another round. When the effect sits so close to the threshold,
at the spread seen, that even max_seeds would very probably leave the interval across it, those
rounds are wasted: the audit ends "undecided" now and says how many seeds a fixed design needs.

The chance is the *predictive* probability that the interval at max_seeds settles (lies inside,
or entirely beyond, the threshold): the final mean is m_N = (n m_n + (N - n) m_rest) / N, and with
the true effect unknown (flat prior around the current mean m_n, spread sd taken as seen)
m_N ~ Normal(m_n, sd^2 (N - n) / (N n)). The final half-width is t(N - 1) sd / sqrt(N) at the last
look's level. Using the current mean as the truth instead (conditional power) would stop far more
often at 3 seeds, where the mean is least known; the predictive chance widens with that uncertainty.

Why stopping for futility keeps the error rates: a false pass or a false failure needs an interval
that settles on the wrong side. Futility only ever replaces "train more" by "undecided", never by a
verdict, so it removes chances to settle and can only lower both error rates (non-binding futility).
What it costs is power: some audits that would have settled late end undecided; the calibration
(docs/statistics.md, "Sequential seeds") gives both, per cell.
"""

from __future__ import annotations

import math

from scipy import special

from ..errors import AuditConfigError
from ._effects import t_half_width

DEFAULT_FUTILITY = 0.1  # stop when the chance that max_seeds settles the effect is under 10%


def check_futility(value: object) -> float:
    """A futility level in [0, 1): 0 never stops early for futility."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise AuditConfigError(f"futility must be a number in [0, 1) (stop when the chance that max_seeds settles "
                               f"the verdict is below it; 0 never stops early), got {value!r}; e.g. futility=0.1")
    return float(value)


def chance_text(chance: float) -> str:
    """A settle chance in words: one decimal of a percent, and "< 0.1%" rather than a misleading "0.0%"."""
    return "< 0.1%" if chance < 0.0005 else f"{chance:.1%}"


def stop_point(seeds: int, max_seeds: int, chance: float | None, futility: float) -> str:
    """Where an undecided audit stopped, in words: at max_seeds, or earlier for futility and why."""
    if seeds == max_seeds:
        return f"max_seeds={seeds}"
    return (f"{seeds} of max_seeds={max_seeds} seeds (futility: max_seeds would settle it with chance "
            f"{chance_text(chance)}, under {futility:g})")


def settle_chance(estimate: float, sd: float, n: int, max_seeds: int, final_confidence: float,
                  threshold: float, shared_variance: float = 0.0, beyond_only: bool = False) -> float:
    """Predictive probability that the t interval of max_seeds differences settles against `threshold`.

    `estimate` and `sd` are the mean and sample sd of the first `n` differences. Settled means the
    interval at `final_confidence` lies inside [-threshold, threshold] or entirely beyond it.
    `shared_variance` is the test-set variance the final interval adds (it does not shrink with seeds).
    `beyond_only`: the chance it settles beyond the threshold (a fail, which settles a whole family).
    """
    if n >= max_seeds:
        return 0.0
    if not (math.isfinite(sd) and sd > 0):
        return 1.0  # no spread seen yet: no basis to stop early
    half = t_half_width(sd, max_seeds, final_confidence, shared_variance)
    spread = sd * math.sqrt((max_seeds - n) / (max_seeds * n))
    a = abs(estimate)
    norm = special.ndtr
    inside = 0.0
    if threshold > half:  # |m_N| <= threshold - half
        inside = float(norm((threshold - half - a) / spread) - norm((half - threshold - a) / spread))
    beyond = float(norm((a - threshold - half) / spread) + norm((-threshold - half - a) / spread))
    return min(1.0, beyond if beyond_only else inside + beyond)
