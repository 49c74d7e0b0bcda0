"""Sequential seeds: train a minimum, then add rounds of seeds only while the verdict is undecided.

The audit plans K looks at n_1 < n_2 < ... < n_K = max_seeds seeds per level. At look k it forms
the paired t interval of the first n_k differences at a per-look level 1 - a_k, stops with "pass"
when that interval lies inside [-threshold, threshold] and with "fail" when it lies entirely beyond
it, and otherwise trains one more round. At max_seeds an unsettled interval is "undecided"; so is
one that max_seeds would very probably leave unsettled (futility, `_futility.settle_chance`).

Why the intervals stay valid when the audit stops early: the per-look levels are chosen so that the
K intervals cover the true effect *simultaneously* with probability >= confidence. Any stopping rule
(this one, or a user stopping by hand at a planned look) only picks one of those intervals, so the
interval it reports covers with at least that probability, and a wrong verdict needs a miss.

Boundaries (all two-sided, on the t statistic of the n_k differences):
  * "bonferroni": a_k = alpha / K. Valid for any interval by the union bound; wastes the strong
    correlation of nested looks.
  * "pocock" (default): one common a_k for every look, calibrated so that the K t intervals of
    normal differences jointly miss with probability alpha. Under normal differences the joint law
    of the K t statistics at the true effect does not depend on the mean or the spread (they are
    scale-free functions of the same draws), so this calibration is exact for the unknown variance
    at any n >= 2, up to Monte Carlo error: it is done on 2^17 seeded null paths and aimed 2 Monte
    Carlo SE below alpha. It gave the fewest mean seeds of the three on the calibration grid
    (docs/statistics.md, "Sequential seeds").
  * "obrien-fleming": the Wang-Tsiatis shape with Delta = 0 (z boundary C * sqrt(N / n_k)),
    calibrated the same way: almost no alpha early, close to the fixed design at max_seeds.

A family of m effects (treated levels x perturbations) is Bonferroni-adjusted first (alpha / m per
effect), then spread over the looks, so the m x K intervals jointly cover with >= confidence. The
family's decision from these intervals is made in `_decision.run_sequential`, the one procedure.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from ..errors import AuditConfigError
from ._effects import MAX_SEEDS, Effect, check_confidence, check_rule, check_threshold
from ._futility import DEFAULT_FUTILITY, check_futility

BOUNDARIES = ("pocock", "obrien-fleming", "bonferroni")
# Wang-Tsiatis shape parameter: the z boundary at look k is C * (n_k / N) ** (Delta - 1/2).
_DELTA = {"pocock": 0.5, "obrien-fleming": 0.0}
MAX_LOOKS = 50  # the calibration holds a (paths x looks) array; more looks would also add little
FIXED_SEEDS_CAP = 10_000  # as `seeds_needed`: a design past this is reported as "10000 or more"
CALIBRATION_PATHS = 2**17
CALIBRATION_SEED = 20261129


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def looks(min_seeds: int, max_seeds: int, round_size: int) -> tuple[int, ...]:
    """The planned seed counts per level: min_seeds, then one round more each time, ending at max_seeds.

    A last round shorter than round_size is kept so the final look is always max_seeds,
    e.g. looks(3, 10, 3) == (3, 6, 9, 10).
    """
    if not _whole(min_seeds) or min_seeds < 2:
        raise AuditConfigError(f"min_seeds must be a whole number >= 2 (an interval needs 2 seeds per level), "
                               f"got {min_seeds!r}; use min_seeds=3 or more")
    if not _whole(max_seeds) or max_seeds < min_seeds:
        raise AuditConfigError(f"max_seeds must be a whole number >= min_seeds={min_seeds}, got {max_seeds!r}; "
                               "raise max_seeds or lower min_seeds (max_seeds == min_seeds is a fixed design)")
    if max_seeds > MAX_SEEDS:
        raise AuditConfigError(f"max_seeds={max_seeds} is more than {MAX_SEEDS} per level (each seed trains one "
                               f"model per level); use max_seeds up to {MAX_SEEDS}")
    if not _whole(round_size) or round_size < 1:
        raise AuditConfigError(f"round_size must be a whole number >= 1 (seeds added per level per round), "
                               f"got {round_size!r}; use round_size=1 or more")
    counts = list(range(min_seeds, max_seeds + 1, round_size))
    if counts[-1] != max_seeds:
        counts.append(max_seeds)
    if len(counts) > MAX_LOOKS:
        fewer = math.ceil((max_seeds - min_seeds) / (MAX_LOOKS - 1))
        raise AuditConfigError(f"{len(counts)} looks from {min_seeds} to {max_seeds} seeds by {round_size} is more "
                               f"than {MAX_LOOKS}; use round_size >= {fewer}")
    return tuple(counts)


@dataclass(frozen=True)
class SequentialDesign:
    """seeds='auto': train min_seeds, add round_size seeds per level while undecided, stop at max_seeds."""

    min_seeds: int
    max_seeds: int
    round_size: int = 1
    boundary: str = "pocock"
    futility: float = DEFAULT_FUTILITY  # stop undecided when max_seeds would settle it with less chance (_futility)

    def __post_init__(self) -> None:
        looks(self.min_seeds, self.max_seeds, self.round_size)  # validates, naming the fix
        object.__setattr__(self, "futility", check_futility(self.futility))
        if self.boundary not in BOUNDARIES:
            raise AuditConfigError(f"boundary must be one of {', '.join(map(repr, BOUNDARIES))}, "
                                   f"got {self.boundary!r}")

    @property
    def looks(self) -> tuple[int, ...]:
        return looks(self.min_seeds, self.max_seeds, self.round_size)


def _null_t(counts: tuple[int, ...], paths: int, seed: int) -> np.ndarray:
    """|t| of the first n_k of `paths` standard-normal sequences at each look, shape (paths, K).

    A round of r draws enters the running mean and sum of squares only through its sum, N(0, r),
    and its within-round sum of squares, chi2(r - 1), independent of each other: two draws per
    round and path instead of r, so memory does not grow with max_seeds.
    """
    rng = np.random.default_rng([seed, *counts])
    total, squares = np.zeros(paths), np.zeros(paths)
    out = np.empty((paths, len(counts)))
    previous = 0
    for k, n in enumerate(counts):
        r, previous = n - previous, n
        round_sum = rng.standard_normal(paths) * math.sqrt(r)
        within = rng.chisquare(r - 1, paths) if r > 1 else 0.0
        total += round_sum
        squares += within + round_sum**2 / r
        mean = total / n
        ss = np.maximum(squares - n * mean**2, 1e-300)  # > 0 for continuous draws; guards rounding
        out[:, k] = np.abs(mean) * math.sqrt(n) / np.sqrt(ss / (n - 1))
    return out


def _alphas_for(c: float, counts: np.ndarray, delta: float) -> np.ndarray:
    """Per-look two-sided alpha of the Wang-Tsiatis z boundary C * (n_k / N) ** (delta - 1/2)."""
    return 2 * special.ndtr(-c * (counts / counts[-1]) ** (delta - 0.5))


@functools.lru_cache(maxsize=64)
def _calibrated(counts: tuple[int, ...], alpha: float, boundary: str) -> tuple[float, ...]:
    """The boundary whose K t intervals jointly miss with probability alpha - 2 Monte Carlo SE."""
    k = len(counts)
    if k == 1:
        return (alpha,)  # one look is the fixed design
    if boundary == "bonferroni":
        return (alpha / k,) * k
    target = alpha - 2 * math.sqrt(alpha * (1 - alpha) / CALIBRATION_PATHS)
    if target <= alpha / k:  # a family so large that Monte Carlo cannot resolve it: the union bound holds
        return (alpha / k,) * k
    abs_t = _null_t(counts, CALIBRATION_PATHS, CALIBRATION_SEED)
    n, df, delta = np.asarray(counts, float), np.asarray(counts, float) - 1, _DELTA[boundary]

    def crossing(c: float) -> float:
        # |T_k| beyond the t quantile of level a_k at any look = that look's interval misses.
        return float(np.mean(np.any(abs_t > special.stdtrit(df, 1 - _alphas_for(c, n, delta) / 2), axis=1)))

    lo = float(special.ndtri(1 - alpha / 2)) * (n[0] / n[-1]) ** (0.5 - delta)  # misses at least alpha
    hi = lo
    while crossing(hi) > target:
        hi *= 1.5
    for _ in range(60):  # crossing() is monotone in C; bisect to the smallest C within the target
        mid = (lo + hi) / 2
        if crossing(mid) > target:
            lo = mid
        else:
            hi = mid
    return tuple(float(a) for a in _alphas_for(hi, n, delta))


def _check_level(confidence: float, family: int) -> float:
    check_confidence(confidence)
    if not _whole(family) or family < 1:
        raise AuditConfigError(f"family must be a whole number >= 1 (effects adjusted together), got {family!r}")
    return (1 - confidence) / family


def look_alphas(design: SequentialDesign, confidence: float = 0.95, family: int = 1) -> tuple[float, ...]:
    """Two-sided alpha of the interval at each look, for `family` effects jointly covering at `confidence`."""
    return _calibrated(design.looks, _check_level(confidence, family), design.boundary)


def look_confidences(design: SequentialDesign, confidence: float = 0.95, family: int = 1) -> tuple[float, ...]:
    """The confidence level of the interval at each look: 1 - `look_alphas`."""
    return tuple(1 - a for a in look_alphas(design, confidence, family))


def decide(interval: tuple[float, float], rule: str, threshold: float) -> str:
    """"pass", "fail" or "continue" at one look, from that look's (adjusted) interval.

    Stopping does not depend on the rule: "pass" when the largest |value| in the interval is within
    the threshold (the effect is shown inside it; then every rule passes), "fail" when the smallest
    |value| is beyond it (shown beyond; every rule fails, and |estimate| lies beyond too, so the
    "estimate" rule agrees). The rule matters only for what an unsettled interval means at the end.
    """
    check_rule(rule)
    threshold = check_threshold(threshold)
    lo, hi = interval
    if max(abs(lo), abs(hi)) <= threshold:
        return "pass"
    smallest = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
    return "fail" if smallest > threshold else "continue"


def final_verdict(interval: tuple[float, float], rule: str, threshold: float) -> str:
    """The verdict at max_seeds: "pass" or "fail" when the interval settles it, else "undecided"."""
    decision = decide(interval, rule, threshold)
    return "undecided" if decision == "continue" else decision


def settle_chances(estimate: float, sd: float, shared_variance: float, seeds: np.ndarray, threshold: float,
                   confidence: float, allowance: float = 0.0) -> np.ndarray:
    """The chance a fixed design of each seed count settles (its t interval at `confidence` lies wholly inside or
    wholly beyond +-threshold) when tau equals `estimate`, at the per-seed `sd` and the test set's common
    variance seen: the estimate drawn normal around tau with standard error sqrt(sd^2/n + shared), the interval
    its own half-width (the audit's t quantile at Welch-Satterthwaite degrees of freedom) plus the small-subgroup
    `allowance`, which no seed count shrinks."""
    n = np.asarray(seeds, dtype=float)
    seed_part = sd * sd / n
    var = seed_part + shared_variance
    with np.errstate(divide="ignore", invalid="ignore"):  # as satterthwaite_df, vectorized over n
        df = np.where(seed_part > 0, np.minimum(1e6, (n - 1) * (var / seed_part) ** 2), 1e6)
    se = np.sqrt(var)
    half = special.stdtrit(df, 0.5 + confidence / 2) * se + allowance
    cdf = special.ndtr
    with np.errstate(divide="ignore", invalid="ignore"):  # se = 0 (identical seeds): the cdfs are steps, +-inf
        inside = np.clip(cdf((threshold - half - estimate) / se) - cdf((half - threshold - estimate) / se), 0, None)
        beyond = cdf((-threshold - half - estimate) / se) + 1 - cdf((threshold + half - estimate) / se)
    return inside + beyond


def follow_up_confidence(confidence: float) -> float:
    """The family-wise level a follow-up on fresh seeds is judged at: half the first audit's alpha
    (analysis/_advice.py says why)."""
    return 1 - (1 - confidence) / 2


def seeds_to_settle(effect: Effect, threshold: float, confidence: float = 0.95, family: int = 1,
                    target_power: float = 0.8) -> int | None:
    """The one "seeds needed" number: seeds per level a new fixed audit on fresh seeds needs to settle this
    effect (pass or fail by the evidence rule, at the family's one-look level) with `target_power` chance if
    tau equals the estimate, counting the test set's noise (`settle_chances`). None when no count up to
    FIXED_SEEDS_CAP reaches it (an estimate on the threshold, or test-set noise wider than its distance)."""
    threshold = check_threshold(threshold)
    alpha = _check_level(confidence, family)
    if not math.isfinite(effect.sd):
        return None
    seeds = np.arange(2, FIXED_SEEDS_CAP + 1)
    chances = settle_chances(effect.estimate, effect.sd, effect.shared_variance, seeds, threshold, 1 - alpha,
                             max(effect.allowance))
    reach = np.flatnonzero(chances >= target_power)
    return int(seeds[reach[0]]) if len(reach) else None
