"""Estimators beyond one paired contrast: dose-response slope and the hierarchical bootstrap."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from ..errors import AuditConfigError
from ._effects import Effect, sign_flip_p_value
from ._estimand import Estimand
from ._test_noise import bias_replicates, image_weights


def dose_response(levels: Sequence[float], bias: np.ndarray, confidence: float = 0.95,
                  label: str = "dose-response slope") -> Effect:
    """Slope of bias on the level with seed fixed effects, and its t interval.

    `bias` is (n_levels, n_seeds). Seed fixed effects are the same as
    demeaning within each seed; the residual degrees of freedom are
    L*S - S - 1. This equals OLS of B on the level plus one dummy per seed.
    """
    x = np.asarray(levels, dtype=float)
    b = np.asarray(bias, dtype=float)
    n_levels, n_seeds = b.shape
    if n_levels < 3:
        raise AuditConfigError(f"a dose-response slope needs at least 3 levels, got {n_levels}")
    if len(set(x.tolist())) < 2:
        raise AuditConfigError("dose-response levels must take at least two distinct values")
    xc = x - x.mean()
    within = b - b.mean(axis=0, keepdims=True)  # remove each seed's own level of bias
    sxx = n_seeds * float((xc ** 2).sum())
    slope = float((xc[:, None] * within).sum() / sxx)
    resid = within - slope * xc[:, None]
    df = n_levels * n_seeds - n_seeds - 1
    se = math.sqrt(float((resid ** 2).sum()) / df / sxx) if df > 0 else math.inf
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se if df > 0 else math.inf
    p = float(2 * stats.t.sf(abs(slope) / se, df)) if se > 0 and math.isfinite(se) else (0.0 if slope else 1.0)
    # Per-seed slopes are the paired units, so sd/power read the same way as for contrasts.
    per_seed = ((xc[:, None] * b).sum(0) / float((xc ** 2).sum())).tolist()
    return Effect(estimate=slope, ci=(slope - half, slope + half), p_value=p, n=n_seeds,
                  differences=tuple(per_seed), confidence=confidence, method="OLS, seed fixed effects",
                  label=label, p_method="t")


def hierarchical_bootstrap(
    clean: Mapping[tuple, np.ndarray], perturbed: Mapping[tuple, np.ndarray], labels: np.ndarray,
    codes: np.ndarray, names: Sequence[str], level: object, reference: object, seeds: Sequence[int],
    n_boot: int = 2000, confidence: float = 0.95, seed: int = 0, estimand: Estimand = Estimand(),
    label: str = "hierarchical bootstrap", metric: str = "accuracy",
) -> Effect:
    """Percentile interval for tau that resamples seeds *and* test images.

    `clean[(level, seed)]` / `perturbed[...]` are per-image predictions and
    `codes[i]` is image i's index into the subgroup `names`. Each replicate
    draws seeds with replacement (pairs kept) and, independently, the test
    images within each subgroup with replacement; the same image draw serves
    every model, because all models were tested on the one test set. The bias
    of each model is the audit's `estimand`, so the point estimate is the
    audit's own effect.
    """
    rng = np.random.default_rng(seed)
    n_images = len(labels)
    codes = np.asarray(codes)
    weights = image_weights(codes, len(names), n_boot, rng)

    def bias(lev, s, w):
        # One weighted count per replicate row: (replicates x groups) metrics of this model.
        return bias_replicates(clean[(lev, s)], perturbed[(lev, s)], labels, codes, names, estimand, metric, w)

    diffs = np.stack([bias(level, s, weights) - bias(reference, s, weights) for s in seeds], axis=1)
    pick = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
    taus = np.take_along_axis(diffs, pick, axis=1).mean(axis=1)
    full = np.ones((1, n_images))
    point = np.array([(bias(level, s, full) - bias(reference, s, full))[0] for s in seeds])
    alpha = 1 - confidence
    lo, hi = np.quantile(taus, [alpha / 2, 1 - alpha / 2])
    return Effect(estimate=float(point.mean()), ci=(float(lo), float(hi)), p_value=sign_flip_p_value(point),
                  n=len(seeds), differences=tuple(point.tolist()), confidence=confidence,
                  method="hierarchical bootstrap (seeds and test images)", label=label)
