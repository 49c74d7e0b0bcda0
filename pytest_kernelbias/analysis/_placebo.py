"""Placebo checks: audits whose true effect is zero by construction.

- subgroup-shuffle: subgroup labels are permuted on the test set and every
  model's per-subgroup metrics recomputed from its stored predictions; the
  level can no longer act differently on the (now random) groups.
- A/A: the reference level against itself on fresh seeds (trained in the audit).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np

from ..evaluation import group_metric
from ._effects import Effect, paired_effect
from ._estimand import Estimand
from ._outcomes import Outcome, Outcomes, estimate_effects


def shuffle_placebo(predictions: Mapping[tuple, Mapping[str, np.ndarray]], labels: np.ndarray,
                    codes: np.ndarray, names: Sequence[str], reference: object, level: object, perturbation: str,
                    estimand: Estimand = Estimand(), confidence: float = 0.95, method: str = "t", seed: int = 0,
                    metric: str = "accuracy") -> Effect:
    """The audit's effect recomputed after permuting subgroup membership across the test images.

    `codes[i]` is image i's index into `names`, as `group_metric` takes it.
    """
    codes = np.random.default_rng(seed).permutation(codes)  # same group sizes, random membership
    shuffled = Outcomes()
    for (lev, s), preds in predictions.items():
        clean, pert = group_metric(np.stack([preds["clean"], preds[perturbation]]), labels, codes, len(names), metric)
        for j, g in enumerate(names):
            shuffled.add(Outcome(lev, s, g, perturbation, float(clean[j]), float(pert[j])))
    effect = estimate_effects(shuffled, reference, perturbation, confidence=confidence, method=method,
                              estimand=estimand)[level]
    return replace(effect, label="placebo subgroup-shuffle: " + effect.label, context="")


def aa_placebo(reference_bias: Sequence[float], fresh_bias: Sequence[float], confidence: float = 0.95,
               method: str = "t", label: str = "placebo A/A") -> Effect:
    """The reference level against itself: seeds 0..n-1 vs fresh seeds n..2n-1, paired by position."""
    return paired_effect(fresh_bias, reference_bias, confidence=confidence, method=method,
                         p_method="permutation", label=label)
