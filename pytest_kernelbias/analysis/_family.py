"""The family an audit's verdict rests on, each member a contrast of its levels' bias.

An ordinary audit's members are its levels against the reference: tau(k) = mean_s [B(k, s) - B(k0, s)]. A
factorial audit's (`intervention.factorial`) are the contrasts of its design: the cause's effect at each fix
level, the fix's at the reference cause, and their interaction, mean_s [B(a, b) - B(a, b0) - B(a0, b) +
B(a0, b0)], each a combination of the cells' effects against the reference cell. Every member's per-seed
differences, test-set replicates and allowances combine the same way, so every one goes through the one
decision procedure with the family's adjusted level, the finite test set counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..intervention import design_of
from ._checks import EffectKey
from ._effects import Effect
from ._outcomes import Outcomes

if TYPE_CHECKING:
    from ..spec import AuditSpec


@dataclass(frozen=True)
class Member:
    """One effect of the family: its key, its weights over the levels' effects against the reference (bias
    keys), its per-seed differences (those effects' differences so combined), and the label and context a
    failure message prints."""

    key: EffectKey
    weights: dict  # EffectKey(perturbation, level) of a level against the reference -> coefficient
    differences: np.ndarray
    label: str
    context: str

    def combine(self, values: Mapping) -> np.ndarray:
        """sum_k w_k values[k]: the member's (replicates, seeds) arrays from its levels' own."""
        return combine(self.weights, values)

    def level_weights(self, reference: object) -> dict:
        """The weights over levels, the reference's included (they sum to 0)."""
        out = {k.level: w for k, w in self.weights.items()}
        out[reference] = -sum(self.weights.values())
        return out


def family_members(spec: AuditSpec, bias: Mapping[EffectKey, Effect], outcomes: Outcomes) -> list[Member]:
    """The members in a stable order: per perturbation, each level (ordinary) or each contrast (factorial)."""
    design = design_of(spec.target.levels)
    if design is None:
        return [Member(k, {k: 1.0}, np.asarray(e.differences, float), e.label, e.context) for k, e in bias.items()]
    reference, estimand = spec.target.reference_level, spec.estimand
    members = []
    for pert in spec.data.perturbations:
        for contrast, cells in design.contrasts():
            weights = {EffectKey(pert, cell): w for cell, w in cells.items() if cell != reference}
            per_seed = combine(weights, {k: bias[k].differences for k in weights})
            context = (f"{outcomes.table(pert)}\n  {contrast}: per-seed contrasts of the bias: "
                       + " ".join(f"{d:+.4f}" for d in per_seed))
            members.append(Member(EffectKey(pert, contrast), weights, per_seed,
                                  f"{contrast}: {estimand.label} under {pert}", context))
    return members


def combine(weights: Mapping, values: Mapping) -> np.ndarray:
    """sum_k w_k values[k]."""
    return sum(w * np.asarray(values[k], float) for k, w in weights.items())
