"""The seeds' fold allowance: how much of a level's mean B its seeds so far may not have shown.

B = max_g Y - min_g Y of one model folds where the subgroups that set it trade places between models: with
the roles of the seed-mean values fixed, B = L + F, where L (the contrast of those roles) is linear and its
mean is B(mean values), and F >= 0 is the fold part, positive only on the models whose roles differ. Near a
tie half the models may carry F, so a few seeds that all happen to fall on one side show a mean F near 0
while E[F] is about E|noise contrast|, and a t interval on the differences then sits too high or low with
a narrow width: the failure no widening of alpha reaches (docs/statistics.md, "A folded bias").

The allowance bounds that unseen part: E[F] under normal seed noise of the measured covariance, at the
seed-mean values compressed toward their mean by up to `FOLD_COMPRESSION` standard errors (the nearest
tie the seeds allow), less the mean F the seeds did show. ~0 where the subgroups are far apart or the fold
was seen; the whole E[F] of a tie where the seeds happened to miss it.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from ._estimand import Estimand
from ._outcomes import Outcomes
from ._test_noise import signed_sums

FOLD_COMPRESSION = 3.0  # standard errors of each subgroup's seed mean it may move toward the others
FOLD_DRAWS = 4000
FOLD_SEED = 20261207


@functools.lru_cache(maxsize=64)
def _standard(draws: int, groups: int) -> np.ndarray:
    """The fixed standard normal draws (seeded: the allowance is a function of the data alone)."""
    z = np.random.default_rng(FOLD_SEED).standard_normal((draws, groups))
    z.flags.writeable = False
    return z


def _noise(y: np.ndarray, draws: int) -> np.ndarray:
    """Normal draws with the seeds' covariance across subgroups (rank n - 1 at n seeds: PSD square root)."""
    cov = np.atleast_2d(np.cov(y, rowvar=False))
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    return _standard(draws, len(vals)) @ root.T


def fold_allowance(y: np.ndarray, names: Sequence[str], estimand: Estimand) -> float:
    """The unseen fold part of the mean B over these models (rows of `y`, one per seed; columns subgroups)."""
    y = np.asarray(y, dtype=float)
    if estimand.form == "contrast" or len(y) < 2:
        return 0.0
    mean = y.mean(axis=0)
    se = y.std(axis=0, ddof=1) / np.sqrt(len(y))
    center = float(mean.mean())
    moved = np.where(mean > center, np.maximum(center, mean - FOLD_COMPRESSION * se),
                     np.minimum(center, mean + FOLD_COMPRESSION * se))
    parts = estimand.bias(moved + _noise(y, FOLD_DRAWS), names) - estimand.bias(moved, names)
    expected, resolution = float(parts.mean()), 2 * float(parts.std()) / np.sqrt(FOLD_DRAWS)
    seen = float(estimand.bias(y, names).mean() - estimand.bias(mean, names))
    # The spread's fold part is >= 0; "to_reference" keeps a sign, so its unseen part may go either way.
    unseen = expected - seen if estimand.form in ("spread", "between_groups") else abs(expected - seen)
    # Below the draws' own resolution (2 Monte Carlo SE) it is noise, not a fold: none.
    return unseen if unseen > resolution else 0.0


def fold_allowances(y: np.ndarray, names: Sequence[str], estimand: Estimand) -> np.ndarray:
    """`fold_allowance` of the first n seeds, for n = 1..len(y): shape (seeds,), each judged on its prefix."""
    return np.array([fold_allowance(y[:n], names, estimand) for n in range(1, len(y) + 1)])


def effect_fold_allowances(outcomes: Outcomes, keys: Sequence[tuple], reference: object,
                           estimand: Estimand) -> list[np.ndarray]:
    """Per bias effect (perturbation, level) against `reference`: `contrast_fold_allowances` with weights
    +1 on the level and -1 on the reference."""
    return contrast_fold_allowances(outcomes, [(pert, {level: 1.0, reference: -1.0}) for pert, level in keys],
                                    reference, estimand)


def contrast_fold_allowances(outcomes: Outcomes, contrasts: Sequence[tuple], reference: object,
                             estimand: Estimand) -> list[np.ndarray]:
    """Per contrast (perturbation, weights over levels summing to 0): (seeds, 2), how far below and above its
    interval over the first j paired seeds must reach for the folds those seeds may not have shown.

    An unseen fold of a level's B means its true mean is higher: a negative-weight level's part goes below, a
    positive-weight level's above (for the spread; a signed form's goes on both sides). Each level's is computed
    once per (perturbation, seeds), so a layer map's arms share the reference's.
    """
    names, known, out = outcomes.subgroups, {}, []

    def allowances(level, pert, seeds):
        key = (level, pert, tuple(seeds))
        if key not in known:
            y = np.array([[outcomes.values(level, s, pert, estimand.outcome)[g] for g in names] for s in seeds])
            known[key] = fold_allowances(y, names, estimand)
        return known[key]

    for pert, weights in contrasts:
        treated = next(level for level in weights if level != reference)
        seeds = outcomes.paired_seeds(treated, reference)
        high, low = signed_sums({lv: allowances(lv, pert, seeds) for lv in weights}, weights)
        if estimand.form in ("spread", "between_groups"):
            out.append(np.stack([low, high], axis=1))
        else:
            out.append(np.stack([low + high, low + high], axis=1))
    return out
