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
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from scipy import special

from ..errors import AuditConfigError
from ._checks import VERDICT_RANK
from ._effects import Effect, check_rule, check_threshold, paired_effect
from ._futility import settle_chance, stop_point
from ._sequential import (
    FIXED_SEEDS_CAP,
    SequentialDesign,
    decide,
    follow_up_confidence,
    look_confidences,
    seeds_to_settle,
)


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
    stopped: tuple[bool, ...] = ()  # per effect: its arm has stopped (at this look or before); its interval is final

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
    arm_stops: tuple = ()  # per arm (name, seeds per level it stopped at; None while it goes on)
    arms_of: tuple = ()  # per effect, the name of its arm
    arm_chances: tuple = ()  # per arm (name, chance max_seeds settles it) where futility stopped it
    folds: tuple = ()  # per effect, its fold allowance (below, above) at the look its interval is from

    def fold_note(self, j: int) -> str:
        """What effect j's interval reaches further for the fold its seeds may not have shown ("" for none)."""
        below, above = self.folds[j] if j < len(self.folds) else (0.0, 0.0)
        if below <= 0 and above <= 0:
            return ""
        return (f"its seeds may not have shown how B folds near a tie (the subgroups that set it trading places): "
                f"the interval reaches {below:.3g} further below and {above:.3g} further above "
                f"(docs/statistics.md, \"A folded bias\")")

    @property
    def seeds(self) -> int:
        return self.looks[-1].seeds

    def arm_outcomes(self) -> list[dict]:
        """Per arm: its name, the seeds per level it stopped at (None while it goes on) and its own verdict."""
        last = self.looks[-1]
        out = []
        for arm, at in self.arm_stops:
            own = [d for d, name in zip(last.decisions, self._arm_names()) if name == arm]
            verdict = _family_decision(own)
            if verdict == "continue":
                verdict = "undecided" if at is not None else "continue"
            out.append({"arm": arm, "seeds": at, "verdict": verdict})
        return out

    def _arm_names(self) -> list:
        return list(self.arms_of) if self.arms_of else [None] * len(self.looks[-1].effects)

    @property
    def effects(self) -> tuple[Effect, ...]:
        """Every effect of the family at the last look, with its family- and look-adjusted interval."""
        return self.looks[-1].effects

    @property
    def effect(self) -> Effect:
        return self.looks[-1].effect

    @functools.cached_property
    def fixed_seeds(self) -> int | None:
        """When undecided: the one "seeds needed" number (`seeds_to_settle`) for the deciding effect; else None."""
        if self.verdict != "undecided":
            return None
        return seeds_to_settle(self.effect, self.threshold, follow_up_confidence(self.confidence), self.family,
                               self.target_power)

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
        where = f"{name}the {last.confidence:.2%} CI [{lo:+.4g}, {hi:+.4g}] at {e.n} seeds"
        family = "" if self.family == 1 else f" (each of the {self.family} effects' CIs)"
        if self.verdict == "pass":
            return f"pass: every CI{family} lies inside +-{self.threshold:g} at {last.seeds} seeds"
        if self.verdict == "fail":
            return f"fail: {where} lies beyond +-{self.threshold:g}"
        if self.verdict == "continue":
            return (f"continue: {where} contains the threshold {self.threshold:g}; "
                    f"train up to {self.next_seeds} seeds per level")
        fixed = self.fixed_seeds
        need = (f"a follow-up audit on fresh seeds (confidence {follow_up_confidence(self.confidence):g}) would need "
                f"about {fixed} seeds per level to settle it with {self.target_power:.0%} chance if the effect is "
                f"{e.estimate:+.4g} (sd {e.sd:.3g}, test-set noise counted)" if fixed is not None else
                f"no new audit up to {FIXED_SEEDS_CAP} seeds settles it with {self.target_power:.0%} chance "
                "(an estimate this close to the threshold, or the test set's own noise)")
        need += self._test_set_floor(e)
        if self.design.looks == (self.design.max_seeds,):
            return f"undecided at {last.seeds} seeds: {where} contains the threshold {self.threshold:g}; {need}"
        chance = last.settle_chance
        if len(self.arm_stops) > 1:  # arms stop apart: where this effect's own arm stopped, and why
            chance = dict(self.arm_chances).get(self._arm_names()[last.critical])
        at = stop_point(e.n, self.design.max_seeds, chance, self.design.futility)
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


def _as_family(differences: object) -> list[np.ndarray]:
    """One 1-D array per effect. Rows may differ in length (a layer map's arms stop at their own seeds):
    a list of arrays, or a 2-D array whose shorter rows end in NaN."""
    if isinstance(differences, (list, tuple)) and differences and all(np.ndim(r) == 1 for r in differences):
        rows = [np.asarray(r, dtype=float) for r in differences]
    else:
        d = np.asarray(differences, dtype=float)
        if d.ndim == 1:
            d = d[None, :]
        if d.ndim != 2 or d.shape[0] < 1:
            raise AuditConfigError(f"differences need one row per effect and one column per seed (a 1-D array is "
                                   f"a family of one); got shape {d.shape}")
        rows = [row[: int(np.argmax(np.isnan(row)))] if np.isnan(row).any() else row for row in d]
    for j, row in enumerate(rows):
        if not np.all(np.isfinite(row)):
            raise AuditConfigError(f"differences of effect {j} must be finite, with NaN only after a row's last seed")
    return rows


def _shared(shared_variance: object, lengths: Sequence[int]) -> list[np.ndarray]:
    """The test-set variances, one array per effect: entry j - 1 is the one of the first j seeds."""
    m, width = len(lengths), max(lengths)
    if shared_variance is None:
        return [np.zeros(n) for n in lengths]
    if isinstance(shared_variance, (list, tuple)) and shared_variance and all(
            np.ndim(r) == 1 for r in shared_variance) and len(shared_variance) == m:
        v = [np.asarray(r, dtype=float) for r in shared_variance]
    else:
        a = np.asarray(shared_variance, dtype=float)
        if a.ndim == 1 and a.shape[0] == m and m != width:
            a = a[:, None]  # one value per effect, whatever the seed count
        try:
            a = np.broadcast_to(a, (m, width))
        except ValueError:
            raise AuditConfigError(f"shared_variance must be a number, one per effect, or (effects, seeds) = "
                                   f"{(m, width)}; got shape {a.shape}") from None
        v = list(a)
    v = [row[:n] for row, n in zip(v, lengths)]
    if any(len(row) < n for row, n in zip(v, lengths)) or not all(np.all(np.isfinite(r)) and (r >= 0).all() for r in v):
        raise AuditConfigError("shared_variance must be finite and >= 0 (a variance), one per seed of each effect")
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


def _check_design(rows: list[np.ndarray], design: SequentialDesign, family: int | None,
                  target_power: float) -> int:
    lengths = [len(r) for r in rows]
    if not all(design.min_seeds <= n <= design.max_seeds for n in lengths):
        raise AuditConfigError(f"sequential differences need one value per seed, between min_seeds="
                               f"{design.min_seeds} and max_seeds={design.max_seeds} of them per effect; got "
                               f"{', '.join(map(str, lengths))}")
    if not 0 < target_power < 1:
        raise AuditConfigError(f"target_power must lie in (0, 1), e.g. 0.8; got {target_power!r}")
    family = len(rows) if family is None else family
    if not isinstance(family, int) or family < len(rows):
        raise AuditConfigError(f"family must be a whole number >= the {len(rows)} effects given, got {family!r}")
    return family


def _arm_chance(effects: Sequence[Effect], decisions: Sequence[str], rows: Sequence[int], n: int,
                design: SequentialDesign, final_level: float, threshold: float, v: Sequence[np.ndarray]) -> float:
    """The chance max_seeds settles an unsettled arm: that every unsettled effect settles (the least settleable
    one's chance), or that one of them fails, which settles the arm alone, whichever is larger.

    An arm's effects come from the same models, so their spreads are alike: futility predicts with the pooled
    sd, not with each effect's own few-seed sd, which would stop an arm whenever one of its sds came out large
    by chance. Futility never changes a verdict, only stops training (analysis/_futility.py).
    """
    pooled = float(np.sqrt(np.mean([effects[j].sd ** 2 for j in rows])))
    open_ = [j for j in rows if decisions[j] == "continue"]

    def chance(j: int, beyond_only: bool) -> float:
        return settle_chance(effects[j].estimate, pooled, n, design.max_seeds, final_level, threshold,
                             float(v[j][n - 1]), beyond_only=beyond_only)

    return max(min(chance(j, False) for j in open_), max(chance(j, True) for j in open_))


def _stop_arms(active: list, members: dict, effects: list, decisions: list, n: int, design: SequentialDesign,
               final_level: float, threshold: float, v: list, stops: dict, given_up: dict) -> list[float]:
    """Stop (in `stops`) each active arm that settled, reached max_seeds, or is futile (also in `given_up`); the
    chances the arms going on have of settling by max_seeds."""
    chances = []
    for a in active:
        if _family_decision([decisions[j] for j in members[a]]) != "continue" or n == design.max_seeds:
            stops[a] = n
            continue
        chances.append(_arm_chance(effects, decisions, members[a], n, design, final_level, threshold, v))
        if chances[-1] < design.futility:
            stops[a], given_up[a] = n, chances[-1]  # futility: this arm ends undecided; the others go on
    return chances


def _named(m: int, label: str, labels, contexts, arms) -> tuple[list, list, list, dict]:
    """Each effect's label, context and arm, and each arm's effects (default: one arm, the whole family)."""
    names = list(labels) if labels is not None else [label if m == 1 else f"{label} {j}" for j in range(m)]
    notes = list(contexts) if contexts is not None else [""] * m
    arm_of = list(arms) if arms is not None else [0] * m
    if len(arm_of) != m:
        raise AuditConfigError(f"arms must name one arm per effect ({m}), got {len(arm_of)}")
    return names, notes, arm_of, {a: [j for j in range(m) if arm_of[j] == a] for a in dict.fromkeys(arm_of)}


def _rooms(rows: list[np.ndarray], allowance, fold_allowance) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per effect (seeds, 2): the test set's allowance and the fold's (the interval reaches by their sum)."""
    zero = [np.zeros((len(r), 2)) for r in rows]
    base = zero if allowance is None else [np.asarray(a, float) for a in allowance]
    return base, zero if fold_allowance is None else [np.asarray(a, float) for a in fold_allowance]


def _at_look(d: np.ndarray, level: float, method: str, label: str, context: str, p_method: str, shared: float,
             room: np.ndarray, fold: np.ndarray) -> Effect:
    """One effect at one look. Its interval reaches by the test set's allowance plus the fold's; the Effect keeps
    the test set's as its own `allowance` (a floor no seed count lowers, which the advice reads), the fold's,
    which more seeds shrink, is in `SequentialPath.folds`."""
    e = paired_effect(d, np.zeros(len(d)), confidence=level, method=method, label=label, context=context,
                      p_method=p_method, shared_variance=float(shared), allowance=tuple(room + fold))
    return replace(e, allowance=tuple(map(float, room)))


def run_sequential(differences: object, design: SequentialDesign, threshold: float, rule: str = "evidence",
                   confidence: float = 0.95, family: int | None = None, target_power: float = 0.8,
                   p_method: str = "permutation", label: str = "effect", *, method: str = "t",
                   shared_variance: object = None, allowance: Sequence[np.ndarray] | None = None,
                   labels: Sequence[str] | None = None, contexts: Sequence[str] | None = None,
                   arms: Sequence[object] | None = None, fold_allowance: Sequence[np.ndarray] | None = None
                   ) -> SequentialPath:
    """Decide a family of effects from their per-seed differences d_s = B(k, s) - B(k0, s), in seed order.

    `differences` has one row per effect (a 1-D array is a family of one) and one value per seed.
    Every look forms each effect's `paired_effect` at the family- and look-adjusted level (`look_confidences`),
    with `shared_variance` (test-set noise, analysis/_test_noise.py) added to a "t" interval, `allowance` and
    `fold_allowance` (per effect (seeds, 2), below and above: _test_noise.py, _fold.py) widening it. A fixed design is
    `SequentialDesign(n, n)`; looks past the seeds given are not taken (verdict "continue"). `family` defaults
    to the number of rows (a larger one spends alpha on effects decided elsewhere).

    `arms` names each row's arm (default: one arm, the whole family). An arm stops at the first look its own
    effects settle (one fails, or all pass) or futility gives it up; its effects then keep that look's
    intervals, and only unsettled arms need more seeds, so rows may differ in length (`arm_stops` says
    where each arm stopped). That is still one family: every interval of every look covers jointly, so
    whichever look an arm stops at, the verdict ("fail" when any effect's interval lies beyond the
    threshold, "pass" when all lie inside, else "undecided") keeps both error rates at alpha / 2.
    """
    rows = _as_family(differences)
    m = len(rows)
    family = _check_design(rows, design, family, target_power)
    threshold, rule = check_threshold(threshold), check_rule(rule)
    v = _shared(shared_variance, [len(r) for r in rows])
    room, fold = _rooms(rows, allowance, fold_allowance)
    names, notes, arm_of, members = _named(m, label, labels, contexts, arms)
    levels = look_confidences(design, confidence, family)
    taken: list[Look] = []
    stops: dict[object, int] = {}
    given_up: dict[object, float] = {}  # arms futility stopped, with their chance of settling by max_seeds
    effects: list[Effect | None] = [None] * m
    folds = [(0.0, 0.0)] * m
    decisions = ["continue"] * m

    def record(verdict: str, next_seeds: int | None = None) -> SequentialPath:
        return SequentialPath(design, threshold, rule, tuple(taken), verdict, next_seeds, confidence, family,
                              target_power, tuple((a, stops.get(a)) for a in members), tuple(arm_of),
                              tuple(given_up.items()), tuple(folds))

    for n, level in zip(design.looks, levels):
        active = [a for a in members if a not in stops]
        if any(len(rows[j]) < n for a in active for j in members[a]):
            return record("continue", next_seeds=n)
        for j in (j for a in active for j in members[a]):
            effects[j] = _at_look(rows[j][:n], level, method, names[j], notes[j], p_method, v[j][n - 1],
                                  room[j][n - 1], fold[j][n - 1])
            decisions[j], folds[j] = decide(effects[j].ci, rule, threshold), tuple(map(float, fold[j][n - 1]))
        chances = _stop_arms(active, members, effects, decisions, n, design, levels[-1], threshold, v, stops,
                             given_up)
        done = len(stops) == len(members)
        decision = _family_decision(decisions) if done else "continue"
        taken.append(Look(n, level, tuple(effects), tuple(decisions), decision, min(chances) if chances else None,
                          _critical(effects, decisions, threshold), tuple(arm_of[j] in stops for j in range(m))))
        if done:
            return record(decision if decision != "continue" else "undecided")
    return record("undecided")
