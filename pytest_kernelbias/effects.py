"""Paired causal effects over seeds, their intervals, and the assertion rules.

For levels k and k0 and seeds s = 1..n, the unit-level differences are
d_s = B(k, s) - B(k0, s). The effect is tau = mean(d). Its interval comes from
the paired t distribution (or a BCa bootstrap over seeds) and its p-value from
the exact sign-flip permutation test: under H0 (k does nothing), each d_s is
symmetric about 0, so all 2^n sign patterns are equally likely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import stats

from .errors import AuditConfigError

RULES = ("estimate", "upper", "lower")
RULE_MEANING = {
    "estimate": "fails when |estimate| > threshold",
    "upper": "fails when the CI's largest |value| > threshold (the effect must be shown small)",
    "lower": "fails when the CI's smallest |value| > threshold (fail only on evidence of harm)",
}


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise AuditConfigError(f"rule must be one of {', '.join(map(repr, RULES))}, got {rule!r}")
    return rule


def check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0 \
            or not math.isfinite(threshold):
        raise AuditConfigError(f"threshold must be a finite number >= 0 (in metric units), got {threshold!r}")
    return float(threshold)


def check_seeds(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise AuditConfigError(
            f"an audit needs at least 2 seeds per level to form an interval, got {n!r}; "
            "set --kernel-audit-seeds=N (N >= 2; 6 or more gives an exact p below 0.05)"
        )
    return n


def sign_flip_p_value(differences: Sequence[float]) -> float:
    """Exact two-sided p of the mean under all 2^n sign flips (scipy's permutation_test)."""
    d = np.asarray(differences, dtype=float)
    if np.allclose(d, 0):
        return 1.0
    res = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", alternative="two-sided", n_resamples=np.inf
    )
    return float(min(1.0, res.pvalue))


@dataclass
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
    verdicts: list = field(default_factory=list, repr=False)

    @property
    def sd(self) -> float:
        return float(np.std(self.differences, ddof=1))

    def magnitude_bounds(self) -> tuple[float, float]:
        """Smallest and largest |value| inside the interval."""
        lo, hi = self.ci
        smallest = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
        return smallest, max(abs(lo), abs(hi))

    def statistic(self, rule: str) -> float:
        """The quantity that `rule` compares with the threshold."""
        check_rule(rule)
        if rule == "estimate":
            return abs(self.estimate)
        smallest, largest = self.magnitude_bounds()
        return largest if rule == "upper" else smallest

    def passes(self, threshold: float, rule: str = "estimate") -> bool:
        return self.statistic(rule) <= check_threshold(threshold)

    def summary(self) -> str:
        lo, hi = self.ci
        return (f"{self.label}: effect {self.estimate:+.4f}, {self.confidence:.0%} CI [{lo:+.4f}, {hi:+.4f}] "
                f"({self.method}), p={self.p_value:.4g} (exact sign-flip), n={self.n} seeds")

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

    def assert_below(self, threshold: float, rule: str = "estimate") -> "Effect":
        """Raise AssertionError with a readable table when the effect passes `threshold`."""
        threshold = check_threshold(threshold)
        ok = self.passes(threshold, rule)
        self.verdicts.append((threshold, rule, ok))
        if not ok:
            raise AssertionError(self.failure_message(threshold, rule))
        return self

    def __repr__(self) -> str:
        return f"Effect({self.summary()})"


def paired_effect(
    treated: Sequence[float],
    reference: Sequence[float],
    confidence: float = 0.95,
    method: str = "t",
    label: str = "effect",
    context: str = "",
) -> Effect:
    """The paired effect of treated vs reference outcomes, one pair per seed.

    `method` chooses the interval: ``"t"`` (paired t, as
    `scipy.stats.ttest_rel(...).confidence_interval`) or ``"bootstrap"`` (BCa
    over seeds via `scipy.stats.bootstrap`). The p-value is the exact sign-flip
    permutation p in both cases.
    """
    t = np.asarray(treated, dtype=float)
    r = np.asarray(reference, dtype=float)
    if t.shape != r.shape or t.ndim != 1:
        raise AuditConfigError(f"treated and reference need one value per seed each, got {t.shape} and {r.shape}")
    check_seeds(len(t))
    if not (0 < confidence < 1):
        raise AuditConfigError(f"confidence must lie in (0, 1), got {confidence}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(r))):
        raise AuditConfigError("per-seed outcomes contain NaN or inf; a model's metric could not be computed")
    d = t - r
    n = len(d)
    mean = float(d.mean())
    if method == "t":
        se = float(d.std(ddof=1)) / math.sqrt(n)
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
        ci = (mean - half, mean + half)
    elif method == "bootstrap":
        if np.allclose(d, d[0]):
            ci = (mean, mean)  # BCa is undefined for a degenerate sample
        else:
            res = stats.bootstrap((d,), np.mean, confidence_level=confidence, method="BCa",
                                  n_resamples=9999, random_state=np.random.default_rng(0))
            ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    else:
        raise AuditConfigError(f"method must be 't' or 'bootstrap', got {method!r}")
    return Effect(estimate=mean, ci=ci, p_value=sign_flip_p_value(d), n=n, differences=tuple(d.tolist()),
                  confidence=confidence, method=method, label=label, context=context)
