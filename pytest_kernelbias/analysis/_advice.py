"""What to do about an effect left at "warn" or "undecided", in advice that keeps the audit's error rates.

Rerunning with more seeds on the seeds already seen re-decides on data that chose to continue, and that
raises the error at the threshold. Each verdict of one audit errs on a side with chance at most
alpha / 2 (analysis/_decision.py). One follow-up audit on fresh seeds, judged alone at half the alpha
(confidence 1 - alpha / 2: at most alpha / 4 a side), keeps each error of the two together at most
3 alpha / 4 whatever they share (the test set), since P(wrong verdict of either) is at most the sum; the
margin absorbs a first audit that spends a little more than alpha / 2 (3 seeds with test-set noise,
benchmarks/calibration_followup.py). That is the one move advised; an undecided follow-up is final.
The seed count it needs is the one "seeds needed" number (`seeds_to_settle`): the chance to settle
the effect if tau equals its estimate, test-set noise counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._effects import Effect
from ._sequential import FIXED_SEEDS_CAP, follow_up_confidence, seeds_to_settle, settle_chances

TARGET = 0.8  # the chance to settle the follow-up is sized for


@dataclass(frozen=True)
class FollowUp:
    """Where a follow-up audit stands: the family it belongs to and the seeds already used."""

    confidence: float  # the audit's family-wise level
    family: int  # effects in the verdict's family
    next_seed: int  # the first seed no model of this audit used
    is_follow_up: bool  # this audit already started past seed 0 (seed_offset > 0)


def _bounds(e: Effect, threshold: float) -> str:
    lo, hi = e.ci
    past = [f"its {name} bound {b:+.3g} lies {abs(b) - threshold:.3g} beyond {'+' if b > 0 else '-'}{threshold:g}"
            for name, b in (("lower", lo), ("upper", hi)) if abs(b) > threshold]
    return f" ({'; '.join(past)})" if past else ""


def next_step(e: Effect, threshold: float, follow: FollowUp) -> str:
    """The move that settles the effect and keeps the error rates, with the seeds it needs."""
    if follow.is_follow_up:
        return ("this audit is already a follow-up on fresh seeds: another would spend more error than alpha allows, "
                "so the verdict stays undecided at this rate (more test images narrow what seeds cannot)")
    level = follow_up_confidence(follow.confidence)
    need = seeds_to_settle(e, threshold, level, follow.family, TARGET)
    alpha = (1 - level) / follow.family
    if need is None:
        limit = settle_chances(e.estimate, 0.0, e.shared_variance, np.array([2]), threshold, 1 - alpha,
                               max(e.allowance))[0]
        if (e.shared_variance > 0 or max(e.allowance) > 0) and limit < TARGET:
            return ("no number of seeds settles it: the test set's own noise and its small-subgroup allowance keep "
                    f"the interval wider than the estimate's distance {abs(abs(e.estimate) - threshold):.3g} to the "
                    "threshold; more test images per subgroup would")
        return (f"no follow-up up to {FIXED_SEEDS_CAP} seeds settles it with {TARGET:.0%} chance: the estimate lies "
                f"{abs(abs(e.estimate) - threshold):.3g} from the threshold")
    return (f"a follow-up audit on fresh seeds (seed_offset={follow.next_seed}, seeds={need}, confidence={level:g}) "
            f"settles it with {TARGET:.0%} chance if the effect is {e.estimate:+.4f} (test-set noise counted); "
            "judged alone at that level, it keeps each error rate of the two under alpha; not seeds=N on these "
            "seeds, which re-decides on seeds already seen")


def _allowance_words(e: Effect) -> str:
    """What the interval holds for the small-subgroup bias of a max-min estimand, when anything."""
    below, above = e.allowance
    if max(below, above) < 5e-4:
        return ""
    return (f"; the interval holds a small-subgroup bias allowance of -{below:.3g} / +{above:.3g} (the test set can "
            "bias a max-min estimand that much on subgroups this small; more test images per subgroup shrink it)")


def open_note(e: Effect, verdict: str, threshold: float, follow: FollowUp) -> str:
    """Why an effect is "warn" or "undecided": which bound crosses the threshold and by how much, and the next
    step that keeps the error rates, in one sentence for warnings and reports."""
    lo, hi = e.ci
    settle = next_step(e, threshold, follow) + _allowance_words(e)
    if verdict == "undecided":
        return (f"the {e.confidence:.2%} CI [{lo:+.3g}, {hi:+.3g}] reaches both within and beyond "
                f"+-{threshold:g}{_bounds(e, threshold)}, so {e.n} seeds show neither; {settle}")
    return f"passed; {e.power_note(threshold)}{_bounds(e, threshold)}; {settle}"
