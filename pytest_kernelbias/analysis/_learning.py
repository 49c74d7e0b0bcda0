"""Did the models learn the task? The audit's metric against its own chance level, with intervals.

An effect of k on the gap between subgroups means nothing when the models never learned the task:
near chance, drops and gaps are noise in how a guessing model's errors fall. Each audited model is
scored, overall and per subgroup, by what its metric rewards, against what a model that ignores the
image scores:

  * accuracy and error: clean accuracy against always predicting the most common class (the
    majority rate), with an exact Clopper-Pearson interval;
  * balanced accuracy: the mean per-class recall against 1 / C (every constant predictor's value),
    with a normal interval from the per-class binomial variances;
  * TPR and FPR: every constant predictor has TPR = FPR (both 0 or both 1), so learning is judged by
    balanced accuracy (TPR + 1 - FPR) / 2 against 0.5, the value of any constant predictor.

A subgroup in which the label never varies cannot be judged against chance (its majority rate is 1);
it is left out of the per-subgroup check, and `check_data` names it before training.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import KernelAuditWarning, ModelsDidNotLearnError


@dataclass(frozen=True)
class Learning:
    """One model's clean score against chance: overall and per subgroup, by the audit's metric."""

    label: str  # the model, e.g. "test_x kernel_size=7 seed 2/6"
    level: str  # its level's label
    accuracy: float  # clean accuracy, shown in every report beside the effects
    ci: tuple[float, float]  # interval of `score`
    majority: float  # accuracy of always predicting the most common class of the test set
    by_group: dict  # subgroup -> (score, ci low, ci high, chance); subgroups whose label never varies left out
    score: float = float("nan")  # what learning is judged by: accuracy, or balanced accuracy (see module doc)
    chance: float = float("nan")  # the score of a model that ignores the image
    judged_by: str = "accuracy"

    @property
    def at_chance(self) -> bool:
        """Its interval reaches down to the chance level: no evidence it learned anything."""
        return self.ci[0] <= self.chance

    def weak_groups(self) -> list[str]:
        return [g for g, (_, lo, _, chance) in self.by_group.items() if lo <= chance]


def judged_by(metric: str) -> str:
    """The score learning is judged by for an audit of `metric`."""
    return "accuracy" if metric in ("accuracy", "error") else "balanced accuracy"


def _exact(correct: int, total: int, confidence: float) -> tuple[float, float]:
    ci = stats.binomtest(correct, total).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def _score(pred: np.ndarray, labels: np.ndarray, by: str, confidence: float) -> tuple[float, float, float, float]:
    """(score, ci low, ci high, chance) of predictions `pred` of `labels` (one subgroup or all)."""
    correct = pred == labels
    if by == "accuracy":
        k, n = int(correct.sum()), len(labels)
        return (k / n, *_exact(k, n, confidence), float(np.bincount(labels).max() / n))
    classes = np.unique(labels)
    recalls = np.array([correct[labels == c].mean() for c in classes])
    counts = np.array([(labels == c).sum() for c in classes])
    score = float(recalls.mean())
    se = float(np.sqrt(np.sum(recalls * (1 - recalls) / counts)) / len(classes))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return score, score - z * se, score + z * se, 1.0 / len(classes)


def learning_of(label: str, level: str, clean: np.ndarray, labels: np.ndarray, codes: np.ndarray, names,
                confidence: float, metric: str = "accuracy") -> Learning:
    """Clean score of one model's predictions with its interval and chance level, overall and per subgroup."""
    clean, labels = np.asarray(clean), np.asarray(labels)
    by = judged_by(metric)
    by_group = {}
    for j, g in enumerate(names):
        mask = codes == j
        if len(np.unique(labels[mask])) > 1:  # a constant label has no chance level to beat
            by_group[g] = _score(clean[mask], labels[mask], by, confidence)
    score, lo, hi, chance = _score(clean, labels, by, confidence)
    majority = float(np.bincount(labels).max() / len(labels))
    return Learning(label, level, float((clean == labels).mean()), (lo, hi), majority, by_group, score, chance, by)


def check_learning(models: list[Learning], min_gain: float) -> None:
    """Refuse a verdict on models at chance; warn when models learned little or not for every subgroup."""
    at_chance = [m for m in models if m.at_chance]
    if at_chance:
        worst = min(at_chance, key=lambda m: m.ci[0] - m.chance)
        baseline = ("always predicting the majority class" if worst.judged_by == "accuracy"
                    else "any model that ignores the image")
        raise ModelsDidNotLearnError(
            f"{len(at_chance)} of {len(models)} models did not learn the task, so the audit gives no verdict: "
            f"e.g. {worst.label} has clean {worst.judged_by} {worst.score:.3f} (95% CI [{worst.ci[0]:.3f}, "
            f"{worst.ci[1]:.3f}]) against {worst.chance:.3f} for {baseline}. "
            "Train longer (TrainConfig(epochs=...)), tune the learning rate (lr=...), or use more training data")
    note = partial_learning(models, min_gain)
    if note is not None:
        warnings.warn(KernelAuditWarning(f"{note}; their drops and gaps may reflect guessing more than the kernel "
                                         "size"), stacklevel=4)


def partial_learning(models: list[Learning], min_gain: float) -> str | None:
    """The sentence every report shows beside a verdict on models that learned the task only partly (less
    than `min_gain` above chance, or some subgroup at chance), or None when every model learned it."""
    weak = [m for m in models if m.score - m.chance < min_gain or m.weak_groups()]
    if not weak:
        return None
    m = weak[0]
    groups = m.weak_groups()
    where = f"; subgroups at chance: {', '.join(groups)}" if groups else ""
    little = (f"{m.score:.3f} vs chance {m.chance:.3f}, less than {min_gain:g} above it"
              if m.score - m.chance < min_gain else f"{m.score:.3f} vs chance {m.chance:.3f}")
    return (f"{len(weak)} of {len(models)} models learned the task only partly (e.g. {m.label}: clean "
            f"{m.judged_by} {little}{where})")
