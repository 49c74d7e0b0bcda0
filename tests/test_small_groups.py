"""On small subgroups the finite test set biases a max-min estimand; the interval's allowance bounds that
bias, so it covers the population's effect (issue 35, item 1). The coverage itself is measured in
benchmarks/calibration_small_groups.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_kernelbias.analysis._estimand import Estimand
from pytest_kernelbias.analysis._test_noise import ALLOWANCE_DRAWS, bias_allowance, effect_allowances
from pytest_kernelbias.stats import paired_effect

SPREAD = Estimand()
NAMES = ["a", "b"]


def _replicates(sd: np.ndarray, seed: int = 0) -> np.ndarray:
    """Image-resampling stand-ins with exactly these per-subgroup standard deviations."""
    z = np.random.default_rng(seed).standard_normal((400, len(sd)))
    z = (z - z.mean(0)) / z.std(0, ddof=1)
    return z * sd


@pytest.mark.parametrize("s1, s2", [(0.02, 0.02), (0.05, 0.01), (0.004, 0.006)])
def test_equal_subgroups_get_the_folded_normal_mean_of_their_noise(s1, s2):
    """Groups that may coincide: E|e1 - e2| = sqrt(2 (s1^2 + s2^2) / pi), within 4 Monte Carlo SEs."""
    got = bias_allowance(np.array([0.1, 0.1]), _replicates(np.array([s1, s2])), NAMES, SPREAD)
    s = math.hypot(s1, s2)
    expected = s * math.sqrt(2 / math.pi)
    se = s * math.sqrt(1 - 2 / math.pi) / math.sqrt(ALLOWANCE_DRAWS)
    assert abs(got - expected) < 4 * se


def test_subgroups_far_apart_need_no_allowance_and_a_linear_contrast_never_does():
    far = bias_allowance(np.array([0.1, 0.5]), _replicates(np.array([0.02, 0.02])), NAMES, SPREAD)
    assert far < 1e-3  # 0.4 apart, moved 3 sds (0.06) each: still 0.28 apart, 10 noise sds
    contrast = Estimand.of("contrast", ("a", "b"))
    assert bias_allowance(np.array([0.1, 0.1]), _replicates(np.array([0.05, 0.05])), NAMES, contrast) == 0.0


def test_a_bias_allowance_bounds_the_bias_it_is_for():
    """Population values 0.10 and 0.11 (within noise), noise sd 0.03: the test-set spread's mean bias, computed
    by direct simulation, lies within [0, allowance]."""
    rng = np.random.default_rng(1)
    truth, sd = np.array([0.10, 0.11]), np.array([0.03, 0.03])
    seen = truth + sd * rng.standard_normal((20000, 2))
    bias = float(np.mean(seen.max(1) - seen.min(1)) - 0.01)
    allowances = [bias_allowance(v, _replicates(sd, i), NAMES, SPREAD) for i, v in enumerate(seen[:200])]
    assert 0 < bias <= min(allowances) + 4 * 0.03 / math.sqrt(20000)


def test_the_spread_widens_down_by_the_treated_levels_allowance_and_up_by_the_references():
    rows = effect_allowances(np.array([0.01, 0.03]), np.array([0.02, 0.04]), SPREAD)
    assert np.allclose(rows, [[0.01, 0.02], [0.02, 0.03]])  # means over the first j seeds
    both = effect_allowances(np.array([0.01, 0.03]), np.array([0.02, 0.04]), Estimand.of("to_reference", "a"))
    assert np.allclose(both, [[0.03, 0.03], [0.05, 0.05]])
    e = paired_effect([0.3, 0.31, 0.29], [0.2, 0.2, 0.2], allowance=(0.02, 0.03))
    plain = paired_effect([0.3, 0.31, 0.29], [0.2, 0.2, 0.2])
    assert e.ci == pytest.approx((plain.ci[0] - 0.02, plain.ci[1] + 0.03)) and e.estimate == plain.estimate
