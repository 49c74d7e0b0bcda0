"""Multiplicity, dose-response, power, interval methods and verdict tiers, cross-checked."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kernelbias import AuditConfigError, KernelAuditWarning
from pytest_kernelbias.analysis._estimators import dose_response
from pytest_kernelbias.stats import (
    benjamini_hochberg,
    holm,
    minimum_detectable_effect,
    paired_effect,
    power,
    seeds_needed,
)

pvals = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=30)


@settings(max_examples=80, deadline=None)
@given(p=pvals)
def test_holm_and_bh_equal_statsmodels(p):
    from unittest import mock

    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    # statsmodels' Holm runs a full gc.collect() per call: 170 ms with torch loaded, the whole fast loop's
    # budget over 80 examples. Skipping it changes no number.
    with mock.patch("gc.collect", return_value=0):
        reference = multipletests(p, method="holm")[1]
    np.testing.assert_allclose(holm(p), reference, atol=1e-12)
    np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(n_levels=st.integers(3, 5), n_seeds=st.integers(2, 6), seed=st.integers(0, 1000))
def test_dose_response_slope_and_se_equal_ols_with_seed_dummies(n_levels, n_seeds, seed):
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(seed)
    levels = np.array([3, 5, 7, 9, 11][:n_levels], dtype=float)
    bias = 0.02 * levels[:, None] + rng.normal(0, 0.05, n_seeds)[None, :] + rng.normal(0, 0.02, (n_levels, n_seeds))
    eff = dose_response(levels, bias)
    x = np.repeat(levels, n_seeds)
    dummies = np.tile(np.eye(n_seeds), (n_levels, 1))
    fit = sm.OLS(bias.reshape(-1), np.column_stack([x, dummies])).fit()
    assert eff.estimate == pytest.approx(fit.params[0], abs=1e-10)
    half = (eff.ci[1] - eff.ci[0]) / 2
    lo, hi = fit.conf_int(alpha=0.05)[0]
    assert (eff.ci[0], eff.ci[1]) == pytest.approx((lo, hi), abs=1e-10)
    assert half > 0 and eff.p_value == pytest.approx(fit.pvalues[0], abs=1e-10)


@pytest.mark.parametrize("n,sd", [(3, 0.05), (6, 0.03), (10, 0.1)])
def test_minimum_detectable_effect_matches_statsmodels_power(n, sd):
    TTestPower = pytest.importorskip("statsmodels.stats.power").TTestPower
    mde = minimum_detectable_effect(sd, n)
    d = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
    assert mde == pytest.approx(d * sd, rel=1e-4)
    assert power(mde, sd, n) == pytest.approx(0.8, abs=1e-6)


def test_seeds_needed_is_the_first_n_with_enough_power():
    n = seeds_needed(0.05, 0.05)
    assert power(0.05, 0.05, n) >= 0.8 > power(0.05, 0.05, n - 1)


def test_permutation_interval_is_infinite_when_no_null_can_be_rejected():
    e = paired_effect([0.1, 0.2, 0.15, 0.12], [0, 0, 0, 0], method="permutation")
    assert e.ci == (-math.inf, math.inf)  # 2 / 2^4 = 0.125 > 0.05 for every null
    e6 = paired_effect([0.1, 0.2, 0.15, 0.12, 0.11, 0.13], [0] * 6, method="permutation")
    assert e6.ci[0] < e6.estimate < e6.ci[1] and 0 < e6.ci[0]


def test_warn_tier_passes_with_a_warning_that_names_what_could_not_be_detected():
    e = paired_effect([0.01, 0.06, -0.03, 0.04], [0, 0, 0, 0])
    assert abs(e.estimate) < 0.05 < e.magnitude_bounds()[1]
    assert e.verdict(0.05, "estimate") == "warn" and e.verdict(0.05) == "undecided"
    with pytest.warns(KernelAuditWarning, match=r"passed; could not have detected effects below 0\.\d+ with 4 seeds"):
        e.assert_below(0.05, "estimate")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e.assert_below(0.05, "estimate", warn=False)


@pytest.mark.parametrize("kw,match", [
    ({"treated": [0.1, 0.2, 0.3], "reference": [0, 0]}, "one value per seed"),
    ({"treated": [0.1, float("nan")], "reference": [0, 0]}, "NaN or inf"),
    ({"confidence": 1.0}, r"confidence must lie in \(0, 1\)"),
    ({"method": "jackknife"}, "method must be one of"),
])
def test_bad_statistical_input_is_a_clear_error(kw, match):
    args = {"treated": [0.1, 0.2], "reference": [0.0, 0.0], **kw}
    with pytest.raises(AuditConfigError, match=match):
        paired_effect(**args)


def _reference_power(effect: float, sd: float, n: int, alpha: float) -> float:
    """Power by a second route: integrate over the chi-square variable V = U^2 with scipy's own densities."""
    from scipy import integrate, stats

    df, d = n - 1, effect * np.sqrt(n) / sd
    c = stats.t.ppf(1 - alpha / 2, df)

    def f(v):
        s = c * np.sqrt(v / df)
        return stats.chi2.pdf(v, df) * (stats.norm.cdf(d - s) + stats.norm.cdf(-d - s))

    hi = stats.chi2.isf(1e-14, df)
    return integrate.quad(f, 0, hi, points=[df, (d / c) ** 2 * df], limit=500, epsabs=1e-12)[0]


@pytest.mark.parametrize("n", [2, 3, 4, 6, 10, 20])
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
@pytest.mark.parametrize("effect", [0.0, 0.5, 2.0, 8.0])
def test_power_is_exact_at_every_seed_count_against_a_chi_square_integral(n, alpha, effect):
    # Both are quadratures of the same expectation, each accurate to ~1e-10; 1e-7 leaves room for both.
    assert power(effect, 1.0, n, alpha) == pytest.approx(_reference_power(effect, 1.0, n, alpha), abs=1e-7)


def test_power_at_two_seeds_agrees_with_a_large_monte_carlo():
    # Paired t test on 2 differences with mean 8 and sd 1; exact power is 0.6253 (scipy's nct gives NaN here).
    rng = np.random.default_rng(12345)
    m = 2_000_000
    z = rng.standard_normal((m, 2)) + 8.0
    t = z.mean(1) / (z.std(1, ddof=1) / np.sqrt(2))
    from scipy import stats

    hit = np.mean(np.abs(t) > stats.t.ppf(0.975, 1))
    se = np.sqrt(hit * (1 - hit) / m)  # binomial standard error of the Monte Carlo share
    assert power(8.0, 1.0, 2) == pytest.approx(hit, abs=5 * se)


@pytest.mark.parametrize("n", [2, 3, 5, 12])
def test_minimum_detectable_effect_reaches_exactly_the_target_power_of_the_reference(n):
    mde = minimum_detectable_effect(1.0, n)
    assert _reference_power(mde, 1.0, n, 0.05) == pytest.approx(0.8, abs=1e-6)
