"""The one decision procedure: a family of effects' per-seed differences in, the verdict out.

Fixed audits (one look: `SequentialDesign(n, n)`), `seeds="auto"` audits and the calibration all call
`run_sequential`; nothing else turns intervals into verdicts.

Family-wise control at the threshold. A family of m effects (treated levels x perturbations) gets,
at look k of K, intervals at the two-sided level 1 - a_k(alpha / m) (`look_alphas(..., family=m)`):
the alpha is split over the effects (Bonferroni) and then over the looks (the design's boundary), so
all m x K intervals cover their effects together with probability >= 1 - alpha. A verdict is read
from those intervals alone:

  * "fail" once some effect's interval lies wholly beyond +-threshold: if every |tau_j| <= threshold,
    that needs an interval to miss its tau_j, so P(fail) <= alpha / 2 (one side of a miss);
  * "pass" once every interval lies inside +-threshold: if some |tau_j| >= threshold, its interval
    must miss on the side of tau_j, so P(pass) <= alpha / 2 as well;
  * otherwise the audit trains on, or ends "undecided" (max_seeds, or futility).

The intervals are the effects' own `ci`, so any later reading (another threshold, another rule) of an
audit's effects keeps the same family-wise guarantee. The sign-flip p-values the effects carry test
tau = 0 and are Holm-adjusted for the report only; no verdict reads them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special

from ..errors import AuditConfigError
from ._effects import Effect, check_rule, check_threshold, paired_effect
from ._futility import settle_chance, stop_point
from ._sequential import FIXED_SEEDS_CAP, SequentialDesign, decide, fixed_design_seeds, look_confidences

VERDICT_RANK = {"pass": 0, "warn": 1, "undecided": 2, "fail": 3}


@dataclass(frozen=True)
class Look:
    """One look: the seeds per level so far, the per-effect interval level, every effect and the decision."""

    seeds: int
    confidence: float
    effects: tuple[Effect, ...]
    decisions: tuple[str, ...]  # per effect: "pass", "fail" or "continue"
    decision: str  # the family's: "fail" if any fails, "pass" if all pass, else "continue"
    settle_chance: float | None = None  # unsettled, before max_seeds: the chance max_seeds settles the least settleable
    critical: int = 0  # index of the effect the decision turns on (`_critical`)

    @property
    def effect(self) -> Effect:
        return self.effects[self.critical]


@dataclass(frozen=True)
class SequentialPath:
    """The record of one family's decision, look by look.

    `verdict` is "pass" or "fail" (settled at `seeds`), "undecided" (max_seeds reached, or stopped
    early for futility; `fixed_seeds` says what a fixed design would need) or "continue" (the
    differences ran out before max_seeds: train up to `next_seeds` per level and call again).
    """

    design: SequentialDesign
    threshold: float
    rule: str
    looks: tuple[Look, ...]
    verdict: str
    next_seeds: int | None = None
    confidence: float = 0.95
    family: int = 1
    target_power: float = 0.8

    @property
    def seeds(self) -> int:
        return self.looks[-1].seeds

    @property
    def effects(self) -> tuple[Effect, ...]:
        """Every effect of the family at the last look, with its family- and look-adjusted interval."""
        return self.looks[-1].effects

    @property
    def effect(self) -> Effect:
        return self.looks[-1].effect

    @functools.cached_property
    def fixed_seeds(self) -> int | None:
        """When undecided: seeds per level a fixed design needs for the deciding effect; else None."""
        if self.verdict != "undecided":
            return None
        return fixed_design_seeds(self.effect, self.threshold, self.confidence, self.family, self.target_power)

    @property
    def rule_verdict(self) -> str:
        """What the rule says of the last look's intervals: the worst of `Effect.verdict` over the family.

        Equal to `verdict` when settled. When undecided, "evidence" says "undecided", "upper" says
        "fail" (not shown small), "lower" says "warn", "estimate" judges each |estimate|.
        """
        return max((e.verdict(self.threshold, self.rule) for e in self.effects), key=VERDICT_RANK.__getitem__)

    @property
    def reason(self) -> str:
        """Why the procedure stopped (or asks for more seeds), in words for the report."""
        last = self.looks[-1]
        e = last.effect
        lo, hi = e.ci
        name = "" if self.family == 1 else f"{e.label}: "
        where = f"{name}the {last.confidence:.2%} CI [{lo:+.4g}, {hi:+.4g}] at {last.seeds} seeds"
        family = "" if self.family == 1 else f" (each of the {self.family} effects' CIs)"
        if self.verdict == "pass":
            return f"pass: every CI{family} lies inside +-{self.threshold:g} at {last.seeds} seeds"
        if self.verdict == "fail":
            return f"fail: {where} lies beyond +-{self.threshold:g}"
        if self.verdict == "continue":
            return (f"continue: {where} contains the threshold {self.threshold:g}; "
                    f"train up to {self.next_seeds} seeds per level")
        fixed = self.fixed_seeds
        many = f"{fixed} or more" if fixed == FIXED_SEEDS_CAP else f"about {fixed}"
        need = (f"a fixed design needs {many} seeds per level to tell |effect| {abs(e.estimate):.4g} from "
                f"the threshold with {self.target_power:.0%} power at the spread seen (sd {e.sd:.3g})"
                if fixed is not None else "no fixed design can tell an estimate on the threshold from it")
        need += self._test_set_floor(e)
        if self.design.looks == (self.design.max_seeds,):
            return f"undecided at {last.seeds} seeds: {where} contains the threshold {self.threshold:g}; {need}"
        at = stop_point(last.seeds, self.design.max_seeds, last.settle_chance, self.design.futility)
        return f"undecided at {at}: {where} contains the threshold {self.threshold:g}; {need}"


    def _test_set_floor(self, e: Effect) -> str:
        """What the finite test set alone adds to the interval at max_seeds, when it is what keeps it unsettled."""
        if e.shared_variance <= 0:
            return ""
        final = look_confidences(self.design, self.confidence, self.family)[-1]
        floor = float(special.ndtri(0.5 + final / 2)) * math.sqrt(e.shared_variance)
        text = f"; the test set's own noise adds +-{floor:.3g} at any seed count"
        if floor >= abs(self.threshold - abs(e.estimate)):
            text += ", more than the distance to the threshold: more test images, not seeds, would settle it"
        return text


def _as_family(differences: object) -> np.ndarray:
    d = np.asarray(differences, dtype=float)
    if d.ndim == 1:
        d = d[None, :]
    if d.ndim != 2 or d.shape[0] < 1:
        raise AuditConfigError(f"differences need one row per effect and one column per seed (a 1-D array is a "
                               f"family of one); got shape {d.shape}")
    return d


def _shared(shared_variance: object, shape: tuple[int, int]) -> np.ndarray:
    """The test-set variances as (effects, seeds): column j - 1 is the one of the first j seeds."""
    if shared_variance is None:
        return np.zeros(shape)
    v = np.asarray(shared_variance, dtype=float)
    if v.ndim == 1 and v.shape[0] == shape[0] and shape[0] != shape[1]:
        v = v[:, None]  # one value per effect, whatever the seed count
    try:
        v = np.broadcast_to(v, shape)
    except ValueError:
        raise AuditConfigError(f"shared_variance must be a number, one per effect, or (effects, seeds) = {shape}; "
                               f"got shape {v.shape}") from None
    if not np.all(np.isfinite(v)) or (v < 0).any():
        raise AuditConfigError("shared_variance must be finite and >= 0 (a variance)")
    return v


def _critical(effects: Sequence[Effect], decisions: Sequence[str], threshold: float) -> int:
    """The first failing effect; else the unsettled one nearest the threshold (it needs the most seeds)."""
    if "fail" in decisions:
        return list(decisions).index("fail")
    pool = [j for j, dec in enumerate(decisions) if dec == "continue"] or list(range(len(effects)))
    return min(pool, key=lambda j: abs(abs(effects[j].estimate) - threshold))


def _family_decision(decisions: list[str]) -> str:
    if "fail" in decisions:
        return "fail"
    return "pass" if all(d == "pass" for d in decisions) else "continue"


def run_sequential(differences: object, design: SequentialDesign, threshold: float, rule: str = "evidence",
                   confidence: float = 0.95, family: int | None = None, target_power: float = 0.8,
                   p_method: str = "permutation", label: str = "effect", *, method: str = "t",
                   shared_variance: object = None, labels: Sequence[str] | None = None,
                   contexts: Sequence[str] | None = None) -> SequentialPath:
    """Decide a family of effects from their per-seed differences d_s = B(k, s) - B(k0, s), in seed order.

    `differences` has one row per effect (a 1-D array is a family of one) and one column per seed.
    Every look forms each effect's `paired_effect` at the family- and look-adjusted level from
    `look_confidences(design, confidence, family)`, with `shared_variance` (test-set noise; see
    analysis/_test_noise.py) added to a "t" interval. A fixed design is `SequentialDesign(n, n)`.
    Looks past the seeds given are not taken: without a decision the verdict is "continue".
    `family` defaults to the number of rows (a larger one spends alpha on effects decided elsewhere).
    """
    d = _as_family(differences)
    m, n_seeds = d.shape
    family = m if family is None else family
    threshold, rule = check_threshold(threshold), check_rule(rule)
    if not design.min_seeds <= n_seeds <= design.max_seeds:
        raise AuditConfigError(f"sequential differences need one value per seed, between min_seeds="
                               f"{design.min_seeds} and max_seeds={design.max_seeds} of them; got shape {d.shape}")
    if not 0 < target_power < 1:
        raise AuditConfigError(f"target_power must lie in (0, 1), e.g. 0.8; got {target_power!r}")
    if not isinstance(family, int) or family < m:
        raise AuditConfigError(f"family must be a whole number >= the {m} effects given, got {family!r}")
    v = _shared(shared_variance, d.shape)
    names = list(labels) if labels is not None else [label if m == 1 else f"{label} {j}" for j in range(m)]
    notes = list(contexts) if contexts is not None else [""] * m
    levels = look_confidences(design, confidence, family)
    taken: list[Look] = []

    def record(verdict: str, next_seeds: int | None = None) -> SequentialPath:
        return SequentialPath(design, threshold, rule, tuple(taken), verdict, next_seeds, confidence, family,
                              target_power)

    for n, level in zip(design.looks, levels):
        if n > n_seeds:
            return record("continue", next_seeds=n)
        effects = tuple(paired_effect(d[j, :n], np.zeros(n), confidence=level, method=method, label=names[j],
                                      context=notes[j], p_method=p_method, shared_variance=float(v[j, n - 1]))
                        for j in range(m))
        decisions = [decide(e.ci, rule, threshold) for e in effects]
        decision = _family_decision(decisions)
        chance = None
        if decision == "continue" and n < design.max_seeds:
            # The family's effects come from the same models, so their spreads are alike: futility predicts
            # with the pooled sd (m (n - 1) degrees of freedom), not with each effect's own 3-seed sd, which
            # would stop a family whenever one of its sds came out large by chance. Futility never changes a
            # verdict, only stops training (analysis/_futility.py), so this cannot move an error rate.
            pooled = float(np.sqrt(np.mean([e.sd ** 2 for e in effects])))
            chance = min(settle_chance(e.estimate, pooled, n, design.max_seeds, levels[-1], threshold,
                                       float(v[j, n - 1]))
                         for j, (e, dec) in enumerate(zip(effects, decisions)) if dec == "continue")
        taken.append(Look(n, level, effects, tuple(decisions), decision, chance,
                          _critical(effects, decisions, threshold)))
        if decision != "continue":
            return record(decision)
        if chance is not None and chance < design.futility:
            return record("undecided")
    return record("undecided")
