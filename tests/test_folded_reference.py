"""A layer map whose shared reference's bias may fold: found from the subgroups that set B (they trade places,
or their order is not shown), and from that seed on the family's looks run at alpha / FOLD_GUARD."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_kernelbias.analysis._decision import FOLD_GUARD
from pytest_kernelbias.analysis._estimand import Estimand
from pytest_kernelbias.analysis._sequential import look_confidences
from pytest_kernelbias.stats import SequentialDesign, run_sequential

NAMES = ["a", "b", "c"]


def test_the_spread_may_fold_where_its_max_or_min_subgroup_changes():
    y = np.array([[0.9, 0.1, 0.0],   # max a, min c, far apart: the order is shown from two seeds on
                  [0.8, 0.3, 0.1],
                  [0.2, 0.1, 0.3],   # max c, min b: the roles change, the fold is seen
                  [0.3, 0.1, 0.0]])
    spread = Estimand()
    assert list(spread.roles(y, NAMES)) == [0 * 3 + 2, 0 * 3 + 2, 2 * 3 + 1, 0 * 3 + 2]
    assert spread.first_fold(y, NAMES, 0.6) == 3
    assert spread.first_fold(y[:2], NAMES, 0.6) is None  # a prefix decides alone: a look never sees a later seed
    # Where roles hold, B is one linear contrast of every model (the definition, checked another way).
    assert np.allclose(spread.bias(y[:2], NAMES), y[:2, 0] - y[:2, 2])


def _one_sided_t(d: np.ndarray) -> float:
    return float(np.mean(d) / (np.std(d, ddof=1) / math.sqrt(len(d))))


def test_a_near_tie_may_fold_before_the_seeds_show_it():
    """Two subgroups whose drops differ by less than their noise: the same roles in every seed so far, but the
    runner-up contrast's one-sided t is below its critical value, so the fold is not ruled out."""
    y = np.array([[0.30, 0.29, 0.0], [0.31, 0.26, 0.0], [0.33, 0.30, 0.0]])
    assert len(set(Estimand().roles(y, NAMES).tolist())) == 1
    d = y[:, 0] - y[:, 1]  # the top pair; the bottom pair (b - c, about 0.28 each seed) is plainly ordered
    for confidence in (0.8, 0.9, 0.99):
        expected = next((n for n in (2, 3) if _one_sided_t(d[:n]) < stats.t.ppf(confidence, n - 1)), None)
        assert Estimand().first_fold(y, NAMES, confidence) == expected
    assert Estimand().first_fold(y, NAMES, 0.99) == 2  # t(1) at 99% is 31.8: two seeds cannot show the order


def test_a_fixed_contrast_never_folds_and_to_reference_folds_when_its_pick_changes():
    y = np.array([[0.3, 0.1, 0.0], [0.0, 0.1, 0.3], [0.1, 0.3, 0.0]])
    assert Estimand.of("contrast", ("a", "b")).first_fold(y, NAMES) is None
    to_a = Estimand.of("to_reference", "a")
    assert list(to_a.roles(y, NAMES)) == [2, 2, 1]  # |y - y_a| largest: c, c, b
    assert to_a.first_fold(y, NAMES, 0.5) == 3


def _half_width(d: np.ndarray, confidence: float) -> float:
    n = len(d)
    return stats.t.ppf(1 - (1 - confidence) / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)


def test_looks_from_the_fold_on_run_at_half_the_alpha_and_earlier_looks_are_untouched():
    rng = np.random.default_rng(3)
    d = rng.normal(0.02, 0.05, (2, 8))
    design = SequentialDesign(3, 8, futility=0)  # a threshold at the mean: no look settles, every look is taken
    plain = run_sequential(d, design, 0.02, "evidence", 0.95, p_method="t", arms=[0, 1])
    guarded = run_sequential(d, design, 0.02, "evidence", 0.95, p_method="t", arms=[0, 1], fold_from=5)
    assert [g.seeds for g in guarded.looks] == list(range(3, 9))
    wide = look_confidences(design, 1 - 0.05 / FOLD_GUARD, 2)
    for i, (p, g) in enumerate(zip(plain.looks, guarded.looks)):
        assert g.confidence == (wide[i] if g.seeds >= 5 else p.confidence)
        for row, e in zip(d, g.effects):
            lo, hi = e.ci
            assert math.isclose((hi - lo) / 2, _half_width(row[:g.seeds], g.confidence), rel_tol=1e-9)
    assert "half the alpha" in guarded.fold_note and "seed 5" in guarded.fold_note
    assert plain.fold_note == "" and run_sequential(d, design, 0.02, fold_from=9, arms=[0, 1]).fold_note == ""


@pytest.mark.slow
def test_the_guard_holds_the_family_wise_error_where_the_plain_map_exceeds_it():
    """Three arms at tau = threshold against a reference of two tied subgroups (B = |sigma (z1 - z2)|, the
    fold), seeds="auto" 3..16: every settled verdict is wrong. On the same draws the guarded error must
    be below the plain one and within 5% + 2.33 Monte Carlo SE (one-sided 1%)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import calibration_folded_reference as bench
    audits = 1500
    cell = bench._cell(audits, 3, 0.04, 2, "boundary", SequentialDesign(3, 16), seed=11)
    plain, guarded = cell["plain"]["familywise_error"], cell["guarded"]["familywise_error"]
    assert cell["folded"] > 0.95  # the reference folds in nearly every audit: the guard's case
    assert guarded < plain
    assert guarded <= 0.05 + 2.33 * math.sqrt(0.05 * 0.95 / audits)
