"""Did the models learn the task? Clean accuracy against the majority-class rate, with exact intervals.

An effect of k on the gap between subgroups means nothing when the models
never learned the task: near chance, drops and gaps are noise in how a
guessing model's errors fall. Each audited model's clean accuracy, overall and
per subgroup, is compared with what always predicting the test set's (or the
subgroup's) most common class would score, using a Clopper-Pearson interval.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import KernelAuditWarning, ModelsDidNotLearnError


@dataclass(frozen=True)
class Learning:
    """One model's clean accuracy against chance: overall and per subgroup."""

    label: str  # the model, e.g. "test_x kernel_size=7 seed 2/6"
    level: str  # its level's label
    accuracy: float
    ci: tuple[float, float]
    majority: float  # accuracy of always predicting the most common class of the test set
    by_group: dict  # subgroup -> (accuracy, ci low, ci high, majority rate)

    @property
    def at_chance(self) -> bool:
        """Its interval reaches down to the majority rate: no evidence it learned anything."""
        return self.ci[0] <= self.majority

    def weak_groups(self) -> list[str]:
        return [g for g, (_, lo, _, maj) in self.by_group.items() if lo <= maj]


def _interval(correct: int, total: int, confidence: float) -> tuple[float, float]:
    ci = stats.binomtest(correct, total).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def learning_of(label: str, level: str, clean: np.ndarray, labels: np.ndarray, codes: np.ndarray, names,
                confidence: float) -> Learning:
    """Clean accuracy of one model's predictions with its interval, overall and per subgroup."""
    correct = np.asarray(clean) == np.asarray(labels)
    by_group = {}
    for j, g in enumerate(names):
        mask = codes == j
        k, n = int(correct[mask].sum()), int(mask.sum())
        majority = float(np.bincount(labels[mask]).max() / n)
        by_group[g] = (k / n, *_interval(k, n, confidence), majority)
    k, n = int(correct.sum()), len(correct)
    return Learning(label, level, k / n, _interval(k, n, confidence), float(np.bincount(labels).max() / n), by_group)


def check_learning(models: list[Learning], min_gain: float) -> None:
    """Refuse a verdict on models at chance; warn when models learned little or not for every subgroup."""
    at_chance = [m for m in models if m.at_chance]
    if at_chance:
        worst = min(at_chance, key=lambda m: m.ci[0] - m.majority)
        raise ModelsDidNotLearnError(
            f"{len(at_chance)} of {len(models)} models did not learn the task, so the audit gives no verdict: "
            f"e.g. {worst.label} has clean accuracy {worst.accuracy:.3f} (95% CI [{worst.ci[0]:.3f}, "
            f"{worst.ci[1]:.3f}]) against {worst.majority:.3f} for always predicting the majority class. "
            "Train longer (TrainConfig(epochs=...)), tune the learning rate (lr=...), or use more training data")
    weak = [m for m in models if m.accuracy - m.majority < min_gain or m.weak_groups()]
    if weak:
        m = weak[0]
        groups = m.weak_groups()
        where = f"; subgroups at chance: {', '.join(groups)}" if groups else ""
        warnings.warn(KernelAuditWarning(
            f"{len(weak)} of {len(models)} models learned the task only partly (e.g. {m.label}: clean accuracy "
            f"{m.accuracy:.3f} vs majority rate {m.majority:.3f}, less than {min_gain:g} above it{where}); "
            "their drops and gaps may reflect guessing more than the kernel size"), stacklevel=4)
