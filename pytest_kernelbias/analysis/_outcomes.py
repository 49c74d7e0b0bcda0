"""The outcomes table and the bias of one model.

One row per (level, seed, subgroup, perturbation): the clean metric, the
perturbed metric and the drop D = clean - perturbed. The bias of a model,
B(m), is whatever the audit's `Estimand` makes of those rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

from ..errors import AuditConfigError
from ..intervention import level_label
from ._effects import paired_effect
from ._estimand import Estimand


@dataclass(frozen=True)
class Outcome:
    level: object  # a kernel size or an Intervention
    seed: int
    subgroup: str
    perturbation: str
    clean: float
    perturbed: float

    @property
    def drop(self) -> float:
        return self.clean - self.perturbed

    def as_dict(self) -> dict:
        return {**asdict(self), "level": level_label(self.level), "drop": self.drop}


class Outcomes:
    """All per-model, per-subgroup measurements of an audit."""

    def __init__(self, rows: Iterable[Outcome] = ()):
        self.rows: list[Outcome] = list(rows)

    def add(self, row: Outcome) -> None:
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def _unique(self, attr: str) -> list:
        return sorted({getattr(r, attr) for r in self.rows})

    @property
    def levels(self) -> list:
        return list(dict.fromkeys(r.level for r in self.rows))  # audit order, reference first

    @property
    def seeds(self) -> list[int]:
        return self._unique("seed")

    def paired_seeds(self, level: object, reference: object) -> list[int]:
        """The seeds both levels have, in order: every seed, unless a layer map's arm stopped early."""
        have = {r.seed for r in self.rows if r.level == level}
        return [s for s in self.seeds if s in have and any(r.seed == s for r in self.rows if r.level == reference)]

    @property
    def subgroups(self) -> list[str]:
        return self._unique("subgroup")

    @property
    def perturbations(self) -> list[str]:
        return list(dict.fromkeys(r.perturbation for r in self.rows))

    def values(self, level: object, seed: int, perturbation: str, outcome: str = "drop") -> dict[str, float]:
        rows = [r for r in self.rows if r.level == level and r.seed == seed and r.perturbation == perturbation]
        return {r.subgroup: (r.drop if outcome == "drop" else r.perturbed) for r in rows}

    def bias(self, level: object, seed: int, perturbation: str, estimand: Estimand = Estimand()) -> float:
        """B(m) for the model (level, seed) under `perturbation`."""
        return estimand.bias_of(self.values(level, seed, perturbation, estimand.outcome))

    def table(self, perturbation: str | None = None) -> str:
        """Per level and subgroup: clean, perturbed and drop as mean ± sd over seeds."""
        pert = perturbation or self.perturbations[0]
        width = max(3, *(len(level_label(level)) for level in self.levels))
        lines = [f"  {'level':<{width}}  {'subgroup':<28} {'clean':>15} {'perturbed':>15} {'drop':>15}   ({pert})"]
        for level in self.levels:
            for g in self.subgroups:
                rows = [r for r in self.rows if r.level == level and r.subgroup == g and r.perturbation == pert]
                cells = []
                for vals in ([r.clean for r in rows], [r.perturbed for r in rows], [r.drop for r in rows]):
                    sd = np.std(vals, ddof=1) if len(vals) > 1 else 0.0
                    cells.append(f"{np.mean(vals):.3f} ± {sd:.3f}")
                lines.append(f"  {level_label(level):<{width}}  {g:<28} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15}")
        return "\n".join(lines)

    def change_by_group(self, level: object, reference: object, perturbation: str,
                        outcome: str = "drop") -> dict[str, float]:
        """Per subgroup, the mean over seeds of the paired change level - reference: who moved."""
        changes = {}
        for g in self.subgroups:
            diffs = [self.values(level, s, perturbation, outcome)[g]
                     - self.values(reference, s, perturbation, outcome)[g]
                     for s in self.paired_seeds(level, reference)]
            changes[g] = float(np.mean(diffs))
        return changes

    def as_records(self) -> list[dict]:
        return [r.as_dict() for r in self.rows]


def estimate_effects(
    outcomes: Outcomes,
    reference: object,
    perturbation: str | None = None,
    bias: str = "spread",
    contrast: Sequence[str] | None = None,
    outcome: str = "drop",
    confidence: float = 0.95,
    method: str = "t",
    *,
    estimand: Estimand | None = None,
) -> dict:
    """tau(k) = mean over seeds of B(k, s) - B(k0, s), for every level k != reference."""
    pert = perturbation or outcomes.perturbations[0]
    estimand = estimand or Estimand.of(bias, contrast, outcome)
    estimand.check_groups(outcomes.subgroups)
    outcome = estimand.outcome
    if reference not in outcomes.levels:
        raise AuditConfigError(f"reference level {reference} has no outcomes; levels are {outcomes.levels}")
    effects = {}
    for level in outcomes.levels:
        if level == reference:
            continue
        seeds = outcomes.paired_seeds(level, reference)
        ref = [outcomes.bias(reference, s, pert, estimand) for s in seeds]
        treated = [outcomes.bias(level, s, pert, estimand) for s in seeds]
        moved = outcomes.change_by_group(level, reference, pert, outcome)
        who = ", ".join(f"{g} {v:+.4f}" for g, v in sorted(moved.items(), key=lambda kv: -abs(kv[1])))
        context = (f"{outcomes.table(pert)}\n  paired change in {outcome} at {level_label(level)} vs "
                   f"{level_label(reference)}, "
                   f"largest first: {who}\n  per-seed bias differences: "
                   + " ".join(f"{t - r:+.4f}" for t, r in zip(treated, ref)))
        effects[level] = paired_effect(
            treated, ref, confidence=confidence, method=method, p_method="permutation",
            label=f"{level_label(level)} vs {level_label(reference)}: {estimand.label} under {pert}",
            context=context,
        )
    return effects


def subgroup_effects(outcomes: Outcomes, reference: object, perturbation: str, outcome: str = "drop",
                     confidence: float = 0.95, method: str = "t") -> dict:
    """level -> subgroup -> effect of the level on that subgroup's drop (tau_g)."""
    out = {}
    for level in outcomes.levels:
        if level == reference:
            continue
        seeds = outcomes.paired_seeds(level, reference)
        out[level] = {
            g: paired_effect(
                [outcomes.values(level, s, perturbation, outcome)[g] for s in seeds],
                [outcomes.values(reference, s, perturbation, outcome)[g] for s in seeds],
                confidence=confidence, method=method, p_method="permutation",
                label=f"{level_label(level)} vs {level_label(reference)}: {outcome} of {g} under {perturbation}")
            for g in outcomes.subgroups}
    return out


def pairwise_effects(outcomes: Outcomes, reference: object, perturbation: str, outcome: str = "drop",
                     confidence: float = 0.95, method: str = "t") -> dict:
    """level -> (g1, g2) -> difference-in-differences: the level's effect on D(g1) - D(g2)."""
    groups = outcomes.subgroups
    pairs = [(a, b) for i, a in enumerate(groups) for b in groups[i + 1:]]
    out = {}
    for level in outcomes.levels:
        if level == reference:
            continue
        out[level] = {}
        for pair in pairs:
            out[level][pair] = estimate_effects(outcomes, reference, perturbation, confidence=confidence,
                                                method=method, estimand=Estimand("contrast", pair, outcome))[level]
    return out
