"""Test-set noise: the part of an effect's variance that the spread over seeds cannot show.

Every model of an audit is scored on the same finite test set T, a sample of the population the claim
is about. With d_s(T) = B(k, s; T) - B(k0, s; T) = d_s + e_s(T), the estimate's variance is

    Var(mean_s d_s(T)) = Var(d_s) / n + Var(common part of e) + Var(seed-specific part of e) / n.

The sample variance of the d_s(T) over seeds already holds Var(d_s) and the seed-specific part; only
the common part, the images' shared luck that moves every seed's difference alike, is missing. It is
measured by resampling test images within each subgroup with the seeds held fixed (one image draw
serves every model, so the image part stays paired across levels): over B replicates,

    common = Var_b(mean_s d_s^b) - mean_b(var_s(d_s^b - d_s)) / n,

the total image variance of the mean less its seed-specific share; clipped at 0. A "t" interval then
uses sd^2 / n + common (`paired_effect(shared_variance=...)`). The calibration (benchmarks/calibration.py,
part 2) checks its coverage on two-level data.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..evaluation import group_metric
from ._estimand import Estimand

IMAGE_REPLICATES = 400  # relative Monte Carlo SE of a variance from B replicates: sqrt(2 / B), 7% here
IMAGE_SEED = 20261202


def image_weights(codes: np.ndarray, n_groups: int, replicates: int = IMAGE_REPLICATES,
                  seed: int | np.random.Generator = IMAGE_SEED) -> np.ndarray:
    """(replicates, images) resample counts: each subgroup's images drawn with replacement, sizes kept.

    `seed` may be a Generator that goes on drawing afterwards (the hierarchical bootstrap's seed draws).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    codes = np.asarray(codes)
    weights = np.zeros((replicates, len(codes)))
    rows = np.arange(replicates)[:, None]
    for j in range(n_groups):
        idx = np.flatnonzero(codes == j)
        if len(idx):
            np.add.at(weights, (rows, idx[rng.integers(0, len(idx), size=(replicates, len(idx)))]), 1.0)
    return weights


def bias_replicates(clean: np.ndarray, perturbed: np.ndarray, labels: np.ndarray, codes: np.ndarray,
                    names: Sequence[str], estimand: Estimand, metric: str, weights: np.ndarray) -> np.ndarray:
    """B of one model under each row of `weights`: shape (replicates,)."""
    n = len(names)
    y = estimand.values(group_metric(clean, labels, codes, n, metric, weights=weights),
                        group_metric(perturbed, labels, codes, n, metric, weights=weights))
    return estimand.bias(y, names)


def difference_replicates(predictions: Mapping[tuple, Mapping[str, np.ndarray]], level: object, reference: object,
                          perturbation: str, seeds: Sequence[int], labels: np.ndarray, codes: np.ndarray,
                          names: Sequence[str], estimand: Estimand, metric: str,
                          weights: np.ndarray) -> np.ndarray:
    """(replicates, seeds) paired differences d_s^b, one image draw per replicate shared by every model."""
    def bias(lev, s):
        preds = predictions[(lev, s)]
        return bias_replicates(preds["clean"], preds[perturbation], labels, codes, names, estimand, metric, weights)

    return np.stack([bias(level, s) - bias(reference, s) for s in seeds], axis=1)


def shared_variances(replicates: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The common test-set variance of the mean of the first j differences, for j = 1..n (index j - 1).

    `replicates` is (B, n) from `difference_replicates`, `point` the n differences on the full test set.
    Index 0 (one seed) has no seed-specific share to remove and is the plain image variance.
    """
    reps, point = np.asarray(replicates, float), np.asarray(point, float)
    errors = reps - point[None, :]
    out = np.empty(reps.shape[1])
    for j in range(1, reps.shape[1] + 1):
        total = float(np.var(reps[:, :j].mean(axis=1), ddof=1))
        specific = float(np.var(errors[:, :j], axis=1, ddof=1).mean()) if j > 1 else 0.0
        out[j - 1] = max(total - specific / j, 0.0)
    return out


ALLOWANCE_DRAWS = 2000  # Monte Carlo draws per model: relative SE of the allowance about 1/sqrt(2000) x its cv
ALLOWANCE_SEED = 20261207
COMPRESSION = 3.0  # standard errors each subgroup's value may move toward the others (a 99.7% box per subgroup)


def bias_allowance(point: np.ndarray, replicates: np.ndarray, names: Sequence[str], estimand: Estimand) -> float:
    """How far the finite test set can push one model's B away from its population value, at worst.

    `point` is the model's value Y per subgroup on the test set, `replicates` (B, subgroups) the same under
    image resampling, whose spread is each subgroup's test-set noise sd. B is a max minus a min: with noise
    e, E[B(D + e)] - B(D) lies in [0, E[B(e)]] (B is convex and subadditive), largest when the subgroups'
    population values coincide. The allowance is that bias at the values most compressed toward their
    mean that the data allow (each moved by up to COMPRESSION noise sds), with normal noise of the measured
    sds: ~0 when the groups are far apart, E[B(e)] when they may coincide. A linear contrast has none.
    """
    if estimand.form == "contrast":
        return 0.0
    point = np.asarray(point, dtype=float)
    sd = np.asarray(replicates, dtype=float).std(axis=0, ddof=1)
    center = float(point.mean())
    moved = np.where(point > center, np.maximum(center, point - COMPRESSION * sd),
                     np.minimum(center, point + COMPRESSION * sd))
    draws = moved + sd * np.random.default_rng(ALLOWANCE_SEED).standard_normal((ALLOWANCE_DRAWS, len(point)))
    return float(abs(estimand.bias(draws, names).mean() - estimand.bias(moved, names)))


def model_allowances(predictions: Mapping[tuple, Mapping[str, np.ndarray]], level: object, perturbation: str,
                     seeds: Sequence[int], labels: np.ndarray, codes: np.ndarray, names: Sequence[str],
                     estimand: Estimand, metric: str, weights: np.ndarray) -> np.ndarray:
    """`bias_allowance` of each seed's model at `level` under `perturbation`: shape (seeds,)."""
    n = len(names)
    ones = np.ones((1, len(labels)))
    out = []
    for s in seeds:
        preds = predictions[(level, s)]

        def values(w):
            return estimand.values(group_metric(preds["clean"], labels, codes, n, metric, weights=w),
                                   group_metric(preds[perturbation], labels, codes, n, metric, weights=w))
        out.append(bias_allowance(values(ones)[0], values(weights), names, estimand))
    return np.asarray(out)


def effect_allowances(level_allowance: np.ndarray, reference_allowance: np.ndarray, estimand: Estimand) -> np.ndarray:
    """(seeds, 2): how far below and above the interval of the mean over the first j seeds must reach, for the
    effect of a level against the reference (`contrast_allowances` with weights +1 and -1)."""
    return contrast_allowances({"level": level_allowance, "reference": reference_allowance},
                               {"level": 1.0, "reference": -1.0}, estimand)


def signed_sums(per_level: Mapping[object, np.ndarray], weights: Mapping[object, float]) -> tuple:
    """(sum of w x value over the positive weights, sum of |w| x value over the negative ones): how far a
    contrast's levels can push its estimate up and down when each level's value bounds its own bias."""
    n = len(next(iter(per_level.values())))
    high = sum((w * np.asarray(per_level[lv], float) for lv, w in weights.items() if w > 0), np.zeros(n))
    low = sum((-w * np.asarray(per_level[lv], float) for lv, w in weights.items() if w < 0), np.zeros(n))
    return high, low


def contrast_allowances(per_level: Mapping[object, np.ndarray], weights: Mapping[object, float],
                        estimand: Estimand) -> np.ndarray:
    """(seeds, 2): how far below and above the interval of a contrast sum_c w_c B(c) over the first j seeds
    must reach, from each level's per-seed model allowances.

    For the spread each model's bias is >= 0 and at most its allowance too high, so the estimate is at most the
    positive-weight levels' allowances too high (reach below) and the negative-weight ones' too low (reach
    above); other forms' bias has either sign, so both sides get every level's.
    """
    j = np.arange(1, len(next(iter(per_level.values()))) + 1)
    high, low = signed_sums({level: np.cumsum(np.asarray(per_level[level], float)) / j for level in weights}, weights)
    if estimand.form in ("spread", "between_groups"):
        return np.stack([high, low], axis=1)
    return np.stack([high + low, high + low], axis=1)
