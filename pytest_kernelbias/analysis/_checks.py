"""The checks every setting of an audit passes through (rule, threshold, seeds, interval level), with no
dependency but the package's errors: no numerics are needed to check a setting."""

from __future__ import annotations

import math
from enum import Enum
from typing import NamedTuple

from ..errors import AuditConfigError

RULES = ("evidence", "estimate", "upper", "lower")


class Decision(str, Enum):
    """What one effect's verdict reached. Each member equals its word ("pass" == Decision.PASS), so JSON
    reports, baselines and older code read it as text."""

    PASS = "pass"
    WARN = "warn"
    UNDECIDED = "undecided"
    FAIL = "fail"

    __str__ = str.__str__  # the word, in f-strings and messages, not "Decision.PASS"
    __format__ = str.__format__

    @property
    def rank(self) -> int:
        """Least to most severe: an audit's overall verdict is its effects' most severe one."""
        return VERDICT_RANK[self.value]


VERDICT_RANK = {"pass": 0, "warn": 1, "undecided": 2, "fail": 3}  # a decided verdict, least to most severe
OPEN = (Decision.WARN, Decision.UNDECIDED)  # passed with a reach past the threshold, or not settled: advice given


class EffectKey(NamedTuple):
    """Which effect of an audit: the perturbation it is measured under and the treated level (an arm of a
    layer map is its own level). A tuple, so ``all_effects[(perturbation, level)]`` finds it too."""

    perturbation: str
    level: object
RULE_MEANING = {
    "evidence": ("fails when the CI's smallest |value| > threshold, passes when its largest |value| <= threshold, "
                 "else undecided (a verdict either way needs evidence)"),
    "estimate": "fails when |estimate| > threshold",
    "upper": "fails when the CI's largest |value| > threshold (the effect must be shown small)",
    "lower": "fails when the CI's smallest |value| > threshold (fail only on evidence of harm)",
}


def level_text(confidence: float) -> str:
    """An interval's level in words: "95%", or "98.33%" for an adjusted level that rounding would hide."""
    text = f"{confidence:.0%}"
    return text if abs(float(text[:-1]) / 100 - confidence) < 1e-9 else f"{confidence:.2%}"


def check_confidence(confidence: object) -> float:
    """An interval level in (0, 1): the one check every setting and function taking a level uses."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise AuditConfigError(f"confidence must lie in (0, 1), e.g. 0.95; got {confidence!r}")
    return float(confidence)


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise AuditConfigError(f"rule must be one of {', '.join(map(repr, RULES))}, got {rule!r}")
    return rule


def check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0 \
            or not math.isfinite(threshold):
        raise AuditConfigError(f"threshold must be a finite number >= 0 (in metric units), got {threshold!r}")
    return float(threshold)


# Far above any audit's need (the width of a t interval shrinks as 1/sqrt(n); 1,000 seeds of a 1-minute model
# is 17 hours per level), and low enough that a mistyped count is refused before the plan lists its variants.
MAX_SEEDS = 1000


def check_seeds(n: int) -> int:
    if isinstance(n, int) and not isinstance(n, bool) and n > MAX_SEEDS:
        raise AuditConfigError(f"seeds={n} is more than {MAX_SEEDS} per level (each seed trains one model per level); "
                               f"use seeds='auto' (it stops once the interval settles) or a count up to {MAX_SEEDS}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise AuditConfigError(
            f"an audit needs at least 2 seeds per level to form an interval, got {n!r}; "
            # Called for the marker, run_audit and the command line alike, so the hint names each of them.
            "use N >= 2 seeds (6 or more gives an exact p below 0.05): seeds=N on @pytest.mark.kernel_audit or "
            "run_audit, or --kernel-audit-seeds=N (ini kernel_audit_seeds) where neither of those sets it"
        )
    return n
