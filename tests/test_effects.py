import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pytest_kernelbias import AuditConfigError
from pytest_kernelbias.analysis._effects import MONTE_CARLO_DRAWS, sign_flip_method, sign_flip_p_value
from pytest_kernelbias.stats import paired_effect

finite = st.floats(-1, 1, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(finite, finite), min_size=2, max_size=12), conf=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_t_interval_equals_scipy_ttest_rel(pairs, conf):
    t, r = map(np.array, zip(*pairs))
    d = t - r
    if np.std(d) < 1e-9:  # scipy returns nan for a zero-variance sample
        return
    e = paired_effect(t, r, confidence=conf)
    ref = stats.ttest_rel(t, r).confidence_interval(confidence_level=conf)
    assert e.estimate == pytest.approx(d.mean(), abs=1e-12)
    assert e.ci == pytest.approx((ref.low, ref.high), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(d=st.lists(st.floats(-1, 1, allow_nan=False).filter(lambda v: abs(v) > 1e-6), min_size=2, max_size=9))
def test_p_value_is_the_exact_sign_flip_p(d):
    d = np.array(d)
    observed = abs(d.mean())
    flips = [abs((d * np.array(s)).mean()) for s in itertools.product([1, -1], repeat=len(d))]
    exact = np.mean([f >= observed - 1e-12 for f in flips])
    assert paired_effect(d, np.zeros_like(d), method="permutation").p_value == pytest.approx(exact)
    assert paired_effect(d, np.zeros_like(d), p_method="permutation").p_value == pytest.approx(exact)


def test_smallest_exact_p_is_two_over_two_to_the_n():
    assert paired_effect([1, 2, 3, 4, 5, 6], [0] * 6, method="permutation").p_value == pytest.approx(2 / 2**6)


@pytest.mark.parametrize("rule,threshold,passes", [
    ("estimate", 0.10, True), ("estimate", 0.09, False),
    ("upper", 0.10, False), ("upper", 0.20, True),
    ("lower", 0.0, False), ("lower", 0.06, True),
])
def test_rules_compare_the_right_quantity(rule, threshold, passes):
    # differences 0.08, 0.10, 0.12: estimate 0.10, CI about [0.050, 0.150]
    e = paired_effect([0.08, 0.10, 0.12], [0, 0, 0])
    assert e.ci[0] == pytest.approx(0.0503, abs=1e-3) and e.ci[1] == pytest.approx(0.1497, abs=1e-3)
    assert e.passes(threshold, rule) is passes


def test_lower_rule_treats_an_interval_covering_zero_as_no_evidence():
    e = paired_effect([0.3, -0.1, 0.2], [0, 0, 0])
    assert e.ci[0] < 0 < e.ci[1]
    assert e.statistic("lower") == 0.0 and e.passes(0.0, "lower")


def test_failure_message_says_by_how_much_and_how_sure():
    e = paired_effect([0.08, 0.10, 0.12], [0, 0, 0], label="k=9 vs 3", context="  TABLE", p_method="permutation")
    with pytest.raises(AssertionError) as info:
        e.assert_below(0.05, rule="estimate")
    msg = str(info.value)
    assert "0.1000 > threshold 0.05 by 0.0500" in msg and "TABLE" in msg
    assert "95% CI [+0.0503, +0.1497]" in msg and "p=0.25" in msg and "n=3 seeds" in msg


def test_bootstrap_interval_contains_the_estimate():
    rng = np.random.default_rng(1)
    d = rng.normal(0.1, 0.05, 10)
    e = paired_effect(d, np.zeros(10), method="bootstrap")
    assert e.ci[0] < e.estimate < e.ci[1]


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_seeds_is_a_clear_error(n):
    with pytest.raises(AuditConfigError, match="at least 2 seeds"):
        paired_effect([0.1] * n, [0.0] * n)


@pytest.mark.parametrize("kw,match", [({"rule": "mean"}, "rule must be one of"), ({"threshold": -1}, "threshold")])
def test_bad_rule_or_threshold_is_a_clear_error(kw, match):
    e = paired_effect([0.1, 0.2], [0, 0])
    with pytest.raises(AuditConfigError, match=match):
        e.assert_below(kw.get("threshold", 0.1), kw.get("rule", "estimate"))


def _brute_force_p(d) -> float:
    """Every sign pattern written out by itertools: the share whose |sum| reaches the observed |sum|."""
    import itertools

    d = np.asarray(d, dtype=float)
    obs = abs(d.sum())
    sums = [abs(np.dot(s, d)) for s in itertools.product((-1.0, 1.0), repeat=len(d))]
    return float(np.mean(np.asarray(sums) >= obs - 1e-12))


@pytest.mark.parametrize("n", [2, 3, 5, 8, 11, 13])
def test_sign_flip_p_is_exact_by_enumeration(n):
    d = np.random.default_rng(n).normal(0.3, 1.0, n)
    assert sign_flip_p_value(d) == pytest.approx(_brute_force_p(d), abs=1e-15)


@pytest.mark.slow
def test_sign_flip_p_is_still_enumerated_at_twenty_seeds():
    from scipy import stats

    d = np.random.default_rng(20).normal(0.4, 1.0, 20)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                 alternative="two-sided").pvalue
    # Both enumerate the same 2^20 patterns; only ties at the observed value could differ, by 1/2^20 each.
    assert sign_flip_p_value(d) == pytest.approx(ref, abs=2 / 2**20)
    assert sign_flip_method(20) == "exact sign-flip"


def test_beyond_twenty_seeds_the_monte_carlo_p_counts_the_observed_pattern():
    d = np.full(30, 0.5)  # every flip but none and all-flipped has a smaller |sum|: exact p = 2 / 2^30
    p = sign_flip_p_value(d)
    assert p >= 1 / (MONTE_CARLO_DRAWS + 1) and p > 0
    assert "Monte Carlo" in sign_flip_method(30)
