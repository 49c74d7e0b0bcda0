"""Paired causal effects over seeds, their intervals, and the assertion rules.

For levels k and k0 and seeds s = 1..n, the unit-level differences are
d_s = B(k, s) - B(k0, s). The effect is tau = mean(d). Its interval comes from
the paired t distribution (or a BCa bootstrap over seeds) and its p-value from
the exact sign-flip permutation test: under H0 (k does nothing), each d_s is
symmetric about 0, so all 2^n sign patterns are equally likely.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special, stats

from ..errors import AuditConfigError, AuditFailure, KernelAuditWarning
from ._checks import (  # noqa: F401 - their home, re-exported here where the analysis has always found them
    MAX_SEEDS,
    RULE_MEANING,
    RULES,
    Decision,
    check_confidence,
    check_rule,
    check_seeds,
    check_threshold,
    level_text,
)
from ._power import minimum_detectable_effect, seeds_needed

METHODS = ("t", "bootstrap", "permutation")


def t_half_width(sd: float, n: int, confidence: float, shared_variance: float = 0.0) -> float:
    """Half-width of the t interval of a mean of n differences with spread `sd`, plus a known variance
    `shared_variance` (the test set's), at Welch-Satterthwaite degrees of freedom."""
    df = satterthwaite_df(sd, n, shared_variance) if shared_variance > 0 else n - 1
    # special.stdtrit is stats.t.ppf without its argument checks: the calibration calls this millions of times.
    return float(special.stdtrit(df, 0.5 + confidence / 2)) * math.sqrt(sd * sd / n + shared_variance)


def satterthwaite_df(sd: float, n: int, shared_variance: float) -> float:
    """Degrees of freedom of sd^2 / n + shared_variance, where only sd^2 is estimated from n seeds.

    The shared (test-set) part is estimated from thousands of images, so it is treated as known:
    Welch-Satterthwaite gives (n - 1) * (total / seed part)^2, at least n - 1, capped at 10^6.
    """
    seed_part = sd * sd / n
    if seed_part <= 0:
        return 1e6
    return float(min(1e6, (n - 1) * ((seed_part + shared_variance) / seed_part) ** 2))


EXACT_LIMIT = 20  # up to 2^20 sign patterns are enumerated; beyond, a seeded Monte Carlo sample
MONTE_CARLO_DRAWS = 2**16


def _half_sums(d: np.ndarray) -> np.ndarray:
    """sum(s_i d_i) over every sign pattern s, as an outer sum of the two halves' pattern sums (2^n values)."""
    def all_sums(part: np.ndarray) -> np.ndarray:
        m = len(part)
        return ((((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1) * 2.0 - 1.0) @ part) if m else np.zeros(1)

    half = len(d) // 2
    return (all_sums(d[:half])[:, None] + all_sums(d[half:])[None, :]).ravel()


def smallest_p(n: int) -> float:
    """The smallest two-sided sign-flip p that n paired differences can give."""
    return 2.0 / 2**n if n <= EXACT_LIMIT else 1.0 / (MONTE_CARLO_DRAWS + 1)


def sign_flip_method(n: int) -> str:
    """How the sign-flip p of n differences is computed, as reports name it."""
    return "exact sign-flip" if n <= EXACT_LIMIT else f"Monte Carlo sign-flip ({MONTE_CARLO_DRAWS} draws)"


def sign_flip_p_value(differences: Sequence[float], null: float = 0.0) -> float:
    """Two-sided p of mean(d - null) under sign flips: exact by enumeration up to 20 seeds.

    Equal to `scipy.stats.permutation_test(..., permutation_type="samples")`. Beyond 20 seeds a
    seeded Monte Carlo sample of B patterns gives (1 + #{|flipped| >= |observed|}) / (B + 1),
    which counts the observed pattern, so it is never 0 nor below 1 / (B + 1).
    """
    d = np.asarray(differences, dtype=float) - null
    observed = abs(d.sum())
    if np.allclose(d, 0, atol=1e-15):
        return 1.0
    # A relative tolerance counts exact ties (e.g. the observed pattern's mirror) despite rounding.
    edge = observed * (1 - 1e-12) - 1e-15
    if len(d) <= EXACT_LIMIT:
        return float(np.mean(np.abs(_half_sums(d)) >= edge))
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(MONTE_CARLO_DRAWS, len(d)))
    return float((1 + np.count_nonzero(np.abs(signs @ d) >= edge)) / (MONTE_CARLO_DRAWS + 1))


def _sign_flip_interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    """The set of nulls the sign-flip test does not reject at 1 - confidence, by bisection on each side."""
    alpha = 1 - confidence
    mean, spread = float(d.mean()), float(np.ptp(d)) + 1e-12
    far = spread * 4 + abs(mean)
    if sign_flip_p_value(d, mean + far) > alpha:  # too few seeds: no null is ever rejected
        return (-math.inf, math.inf)

    def edge(outside: float, inside: float) -> float:
        for _ in range(60):
            mid = (outside + inside) / 2
            if sign_flip_p_value(d, mid) > alpha:
                inside = mid
            else:
                outside = mid
        return inside

    return edge(mean - far, mean), edge(mean + far, mean)


@dataclass(frozen=True)
class Effect:
    """A paired effect tau = mean(treated - reference) with its uncertainty.

    `ci` is a (low, high) interval at `confidence`; `p_value` is two-sided.
    `context` is the table that failure messages print above the effect line.
    """

    estimate: float
    ci: tuple[float, float]
    p_value: float
    n: int
    differences: tuple[float, ...]
    confidence: float = 0.95
    method: str = "t"
    label: str = "effect"
    context: str = ""
    p_method: str = "permutation"
    p_adjusted: float | None = None  # given when the effect is one of a family (Holm by default)
    # Variance of the estimate from the finite test set that the seeds' spread does not show (images shared by
    # every model; analysis/_test_noise.py); included in a "t" interval, 0 when not measured.
    shared_variance: float = 0.0
    # How far below and above the interval reaches beyond its sampling half-widths: the most the finite test
    # set can bias a max-min estimand on small subgroups (analysis/_test_noise.py, `bias_allowance`).
    allowance: tuple[float, float] = (0.0, 0.0)

    @property
    def sd(self) -> float:
        return float(np.std(self.differences, ddof=1))

    @property
    def alpha(self) -> float:
        return 1 - self.confidence

    @property
    def p_floor(self) -> float:
        """The smallest p this test can give at n seeds: 2 / 2^n for the exact sign flip (the observed signs and
        their mirror), 1 / (B + 1) for its Monte Carlo form, 0 for the paired t."""
        return smallest_p(self.n) if self.p_method == "permutation" else 0.0

    def p_note(self) -> str:
        """Why p says nothing at this seed count, when its floor lies above alpha; else ""."""
        if self.p_floor <= self.alpha:
            return ""
        return (f"p: {self.n} seeds allow no {self.p_name} p below {self.p_floor:.3g} (alpha {self.alpha:.3g}); the "
                "verdict reads the interval")

    def minimum_detectable_effect(self, target_power: float = 0.8) -> float:
        """Smallest |effect| this many seeds detect with `target_power` at this audit's alpha."""
        return minimum_detectable_effect(self.sd, self.n, self.alpha, target_power)

    def seeds_needed(self, effect: float, target_power: float = 0.8) -> int:
        """Seeds needed to detect `effect` with `target_power`, given the seed-to-seed spread seen here."""
        return seeds_needed(effect, self.sd, self.alpha, target_power)

    def verdict(self, threshold: float, rule: str = "evidence", warn: bool = True) -> Decision:
        """"fail" or "pass" by the rule; "undecided" under "evidence" when the interval straddles the threshold;
        "warn" when another rule passes but the interval reaches past the threshold.

        Every rule reads this effect's own interval, which for an audit is already adjusted for the family of
        effects and the looks (analysis/_decision.py), so no p-value condition is needed on top.
        """
        threshold = check_threshold(threshold)
        smallest, largest = self.magnitude_bounds()
        if rule == "evidence":
            check_rule(rule)
            return (Decision.FAIL if smallest > threshold else
                    Decision.PASS if largest <= threshold else Decision.UNDECIDED)
        if not self.passes(threshold, rule):
            return Decision.FAIL
        if warn and rule != "upper" and largest > threshold:
            return Decision.WARN
        return Decision.PASS

    def shape_note(self) -> str:
        """A warning when the differences look skewed enough to move the t interval's error rates, else "".

        Only from 8 seeds on: below that a sample skewness cannot tell skew +-2 from noise. Flagged
        when |G1| exceeds twice its standard error under normality; the calibration measured error
        rates of 10-16% (instead of <= 2.5%) under skew +-2 (docs/statistics.md, "Skew").
        """
        n = self.n
        if n < 8 or self.sd <= 0:
            return ""
        g1 = float(stats.skew(np.asarray(self.differences), bias=False))
        se = math.sqrt(6 * n * (n - 1) / ((n - 2) * (n + 1) * (n + 3)))
        if abs(g1) <= 2 * se:
            return ""
        return (f"the per-seed differences look skewed (sample skewness {g1:+.2f}, SE {se:.2f} at {n} seeds); the t "
                f"interval's error rates reach 10-16% at skew +-2: read a verdict near the threshold with care")

    def power_note(self, threshold: float) -> str:
        """What a passing audit could not have seen, e.g. "could not have detected effects below 0.07 with 4 seeds"."""
        mde = self.minimum_detectable_effect()
        if mde <= threshold:
            return f"could detect effects of {mde:.3g} (80% power) with {self.n} seeds"
        return (f"could not have detected effects below {mde:.3g} with {self.n} seeds "
                f"(80% power, alpha {self.alpha:g}); the CI [{self.ci[0]:+.3g}, {self.ci[1]:+.3g}] does not exclude "
                f"the threshold {threshold:g}")

    def magnitude_bounds(self) -> tuple[float, float]:
        """Smallest and largest |value| inside the interval."""
        lo, hi = self.ci
        smallest = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
        return smallest, max(abs(lo), abs(hi))

    def statistic(self, rule: str) -> float:
        """The quantity that `rule` compares with the threshold (for "evidence", its failing side)."""
        check_rule(rule)
        if rule == "estimate":
            return abs(self.estimate)
        smallest, largest = self.magnitude_bounds()
        return largest if rule == "upper" else smallest

    def passes(self, threshold: float, rule: str = "estimate") -> bool:
        """Not failed by `rule` (under "evidence" an undecided effect has not failed either)."""
        return self.statistic(rule) <= check_threshold(threshold)

    @property
    def p_name(self) -> str:
        """How p was computed: "exact sign-flip", "Monte Carlo sign-flip (... draws)" or "paired t"."""
        return sign_flip_method(self.n) if self.p_method == "permutation" else "paired t"

    def summary(self) -> str:
        lo, hi = self.ci
        p_name = self.p_name
        adj = f", adjusted p={self.p_adjusted:.4g}" if self.p_adjusted is not None else ""
        images = " + test-set noise" if self.shared_variance > 0 else ""
        return (f"{self.label}: effect {self.estimate:+.4f}, {level_text(self.confidence)} CI [{lo:+.4f}, {hi:+.4f}] "
                f"({self.method}{images}), p={self.p_value:.4g} ({p_name}){adj}, n={self.n} seeds")

    def failure_message(self, threshold: float, rule: str) -> str:
        stat = self.statistic(rule)
        lines = [
            f"kernel audit failed: {self.label}",
            f"  {rule} rule: {RULE_MEANING[rule]}; {stat:.4f} > threshold {threshold:g} by {stat - threshold:.4f}",
        ]
        if self.context:
            lines += ["", self.context, ""]
        lines.append("  " + self.summary())
        return "\n".join(lines)

    def assert_below(self, threshold: float, rule: str = "evidence", warn: bool = True) -> "Effect":
        """Raise `AuditFailure` (an AssertionError) with a readable table when the effect fails `rule` at `threshold`.

        A "warn" verdict (passed, but the interval reaches past the threshold)
        emits a `KernelAuditWarning` saying what the audit could not have detected.
        """
        verdict = self.verdict(threshold, rule, warn)
        if verdict == "fail":
            raise AuditFailure(self.failure_message(threshold, rule), verdict)
        if verdict == "undecided":
            warnings.warn(KernelAuditWarning(
                f"{self.label}: undecided; the CI [{self.ci[0]:+.3g}, {self.ci[1]:+.3g}] contains the threshold "
                f"{threshold:g}"), stacklevel=2)
        if verdict == "warn":
            warnings.warn(KernelAuditWarning(f"{self.label}: passed; {self.power_note(threshold)}"), stacklevel=2)
        return self

    def __repr__(self) -> str:
        return f"Effect({self.summary()})"


def _differences(treated, reference, confidence: float, method: str, p_method: str | None
                 ) -> tuple[np.ndarray, str]:
    """The per-seed differences, every input checked, and the p-value's method."""
    t = np.asarray(treated, dtype=float)
    r = np.asarray(reference, dtype=float)
    if t.ndim != 1 or r.ndim != 1 or len(t) != len(r):
        raise AuditConfigError(
            f"treated and reference need one value per seed each, in the same seed order; got {len(t)} and {len(r)}")
    check_seeds(len(t))
    check_confidence(confidence)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(r))):
        raise AuditConfigError("per-seed outcomes contain NaN or inf; a model's metric could not be computed "
                               "(an empty subgroup, or a metric undefined for it)")
    if method not in METHODS:
        raise AuditConfigError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    p_method = p_method or ("t" if method == "t" else "permutation")
    if p_method not in ("t", "permutation"):
        raise AuditConfigError(f"p_method must be 't' or 'permutation', got {p_method!r}")
    return t - r, p_method


def _interval(d: np.ndarray, mean: float, sd: float, degenerate: bool, method: str, confidence: float,
              shared_variance: float) -> tuple[float, float]:
    """The sampling interval of the mean difference by `method` (see `paired_effect`)."""
    if method == "t" or (method == "bootstrap" and degenerate):
        half = t_half_width(sd, len(d), confidence, shared_variance)
        return mean - half, mean + half  # BCa is undefined for a constant sample; t gives the point
    if method == "bootstrap":
        if len(d) < 10:
            warnings.warn(KernelAuditWarning(
                f"a BCa bootstrap over {len(d)} seeds under-covers its nominal level (calibration in "
                "docs/statistics.md); prefer method='t' at this seed count"), stacklevel=4)
        res = stats.bootstrap((d,), np.mean, confidence_level=confidence, method="BCa",
                              n_resamples=9999, random_state=np.random.default_rng(0))
        return float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (mean, mean) if degenerate else _sign_flip_interval(d, confidence)


def _checked_allowance(allowance: tuple[float, float]) -> tuple[float, float]:
    below, above = (float(a) for a in allowance)
    if not (math.isfinite(below) and math.isfinite(above) and below >= 0 and above >= 0):
        raise AuditConfigError(f"allowance must be two finite numbers >= 0 (below, above), got {allowance!r}")
    return below, above


def paired_effect(
    treated: Sequence[float],
    reference: Sequence[float],
    confidence: float = 0.95,
    method: str = "t",
    label: str = "effect",
    context: str = "",
    p_method: str | None = None,
    shared_variance: float = 0.0,
    allowance: tuple[float, float] = (0.0, 0.0),
) -> Effect:
    """The paired effect of treated vs reference outcomes, one pair per seed.

    `allowance` (below, above) widens the interval by the most the test set can bias the estimand (small
    subgroups; `analysis/_test_noise.bias_allowance`), so it covers the population's effect.

    `shared_variance` is the variance of the estimate that the seeds' spread cannot show (the finite
    test set every model shares, `analysis/_test_noise.py`). A "t" interval adds it to sd^2 / n, with
    Welch-Satterthwaite degrees of freedom; the other intervals resample seeds only and leave it out.

    `method` chooses the interval: ``"t"`` (paired t, as
    `scipy.stats.ttest_rel(...).confidence_interval`), ``"bootstrap"`` (BCa
    over seeds via `scipy.stats.bootstrap`) or ``"permutation"`` (the nulls the
    exact sign-flip test does not reject; infinite when too few seeds for any
    rejection). The p-value is two-sided: paired t for ``"t"``, exact sign-flip
    otherwise, unless `p_method` (``"t"`` or ``"permutation"``) says which.
    """
    d, p_method = _differences(treated, reference, confidence, method, p_method)
    below, above = _checked_allowance(allowance)
    n, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    degenerate = sd <= 1e-15 * max(1.0, abs(mean))
    if isinstance(shared_variance, bool) or not isinstance(shared_variance, (int, float)) \
            or not (math.isfinite(shared_variance) and shared_variance >= 0):
        raise AuditConfigError(f"shared_variance must be a finite number >= 0, got {shared_variance!r}")
    shared_variance = float(shared_variance) if method == "t" else 0.0
    ci = _interval(d, mean, sd, degenerate, method, confidence, shared_variance)
    if p_method == "t":
        # The one-sample t test of `scipy.stats.ttest_1samp(d, 0)`, computed directly (tests compare the two).
        p = 1.0 if degenerate and mean == 0 else (
            0.0 if degenerate else float(2 * special.stdtr(n - 1, -abs(mean) / (sd / math.sqrt(n)))))
    else:
        p = sign_flip_p_value(d)
    ci = (ci[0] - below, ci[1] + above)
    return Effect(estimate=mean, ci=ci, p_value=p, n=n, differences=tuple(d.tolist()), confidence=confidence,
                  method=method, label=label, context=context, p_method=p_method, shared_variance=shared_variance,
                  allowance=(below, above))
