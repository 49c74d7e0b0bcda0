"""Can the design decide? The smallest p and the narrowest interval an audit's design can produce.

With n seeds the exact sign-flip p of any set of differences is at least
2 / 2^n (only the observed pattern and its mirror reach the observed |sum|
when every difference has one sign). A verdict family of m effects adjusted by
Holm multiplies the smallest p by m; Benjamini-Hochberg and no correction leave
it (when all m effects reach it). Rule "lower" fails only with an adjusted p
below alpha, so a design whose smallest adjusted p is not below alpha can never
fail, whatever the data.
"""

from __future__ import annotations

import math

from scipy import stats

from ..errors import AuditConfigError
from ._effects import EXACT_LIMIT, MONTE_CARLO_DRAWS

_CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}


def smallest_p(n: int) -> float:
    """The smallest two-sided sign-flip p that n paired differences can give."""
    return 2.0 / 2**n if n <= EXACT_LIMIT else 1.0 / (MONTE_CARLO_DRAWS + 1)


def smallest_adjusted_p(n: int, family: int, correction: str) -> float:
    """The smallest adjusted p in a family of `family` effects, each on n seeds."""
    p = smallest_p(n)
    return min(1.0, family * p) if correction == "holm" else p


def seeds_to_decide(family: int, correction: str, alpha: float) -> int:
    """The fewest seeds whose smallest adjusted p lies below alpha."""
    n = 2
    while smallest_adjusted_p(n, family, correction) >= alpha:
        n += 1
    return n


def check_can_fail(rule: str, seeds: int, treated: int, perturbations: int, correction: str,
                   confidence: float) -> None:
    """Refuse a rule-"lower" design that can never fail, with the numbers and the fix."""
    if rule != "lower":
        return
    family, alpha = treated * perturbations, 1 - confidence
    best = smallest_adjusted_p(seeds, family, correction)
    if best < alpha:
        return
    what = f"{treated} treated level{'s' if treated > 1 else ''}" + (
        f" x {perturbations} perturbations" if perturbations > 1 else "")
    fewer = " (or fewer effects in the family)" if family > 1 and correction == "holm" else ""
    raise AuditConfigError(
        f"rule='lower' with {seeds} seeds and {what} under {_CORRECTION_NAMES[correction]} can never fail: the "
        f"smallest adjusted p is {best:.4g} >= alpha {alpha:.4g}; use >= {seeds_to_decide(family, correction, alpha)} "
        f"seeds{fewer}, or rule='estimate'")


def narrowest_half_width(sd: float, n: int, confidence: float) -> float:
    """Half-width of the paired t interval of n differences with standard deviation `sd`."""
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)


def seeds_to_pass_upper(sd: float, threshold: float, confidence: float, max_seeds: int = 10_000) -> int | None:
    """The fewest seeds whose t interval around an effect of 0 fits inside +-threshold, given `sd`."""
    if threshold <= 0:
        return None
    for n in range(2, max_seeds + 1):
        if narrowest_half_width(sd, n, confidence) <= threshold:
            return n
    return None
