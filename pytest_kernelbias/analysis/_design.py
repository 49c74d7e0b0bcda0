"""Can the design decide? The smallest p and the narrowest interval an audit's design can produce.

With n seeds the exact sign-flip p of any set of differences is at least
2 / 2^n (only the observed pattern and its mirror reach the observed |sum|
when every difference has one sign). A family of m effects adjusted by Holm
multiplies the smallest p by m; Benjamini-Hochberg and no correction leave it.
The sign-flip interval at a per-effect level 1 - a is finite only when
2 / 2^n < a, so a design with fewer seeds can never settle a verdict on it.
"""

from __future__ import annotations

from ..errors import AuditConfigError
from ._effects import smallest_p, t_half_width

_CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}


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


def check_can_decide(rule: str, interval: str, seeds: int, family: int, effect_confidence: float) -> None:
    """Refuse a design whose intervals can never settle a verdict, with the numbers and the fix.

    Every rule but "estimate" reads the family-adjusted interval. A t or bootstrap interval narrows
    with any data, but the sign-flip interval (interval="permutation") is infinite while the smallest
    sign-flip p, 2 / 2^n, is not below the per-effect alpha: then nothing can fail (rules "lower",
    "evidence") and nothing can pass ("upper", "evidence").
    """
    if rule == "estimate" or interval != "permutation":
        return
    alpha = 1 - effect_confidence
    best = smallest_p(seeds)
    if best < alpha:
        return
    need = 2
    while smallest_p(need) >= alpha:
        need += 1
    what = "fail" if rule == "lower" else ("pass" if rule == "upper" else "fail or pass")
    family_text = f" (alpha {alpha * family:.3g} split over {family} effects)" if family > 1 else ""
    raise AuditConfigError(
        f"rule={rule!r} with interval='permutation' and {seeds} seeds can never {what}: the smallest sign-flip p "
        f"is {best:.4g} >= the per-effect alpha {alpha:.4g}{family_text}, so every interval is infinite; use >= "
        f"{need} seeds (max_seeds with seeds='auto'), fewer effects in the family, or interval='t'")


def narrowest_half_width(sd: float, n: int, confidence: float) -> float:
    """Half-width of the paired t interval of n differences with standard deviation `sd`."""
    return t_half_width(sd, n, confidence)


def seeds_to_pass_upper(sd: float, threshold: float, confidence: float, max_seeds: int = 10_000) -> int | None:
    """The fewest seeds whose t interval around an effect of 0 fits inside +-threshold, given `sd`."""
    if threshold <= 0:
        return None
    for n in range(2, max_seeds + 1):
        if narrowest_half_width(sd, n, confidence) <= threshold:
            return n
    return None
