"""The one decision procedure (analysis/_decision.py): family-adjusted intervals, the family's verdict, test-set
noise in the interval, and an audit deciding exactly what `run_sequential` decides for its family.

Simulated rates are checked against binomial bounds (3 SE: exceeded by chance about 0.1% of the time);
the generators are seeded, so each check is deterministic.
"""
import math

import numpy as np
import pytest
from scipy import stats

from pytest_kernelbias import AuditConfigError, AuditFailure, AuditSpec, KernelAuditWarning, run_audit
from pytest_kernelbias.analysis._analyze import analyze
from pytest_kernelbias.analysis._estimand import Estimand
from pytest_kernelbias.analysis._test_noise import difference_replicates, image_weights, shared_variances
from pytest_kernelbias.stats import SequentialDesign, run_sequential
from tests.test_pipeline import TRAIN, _made_up, tiny_cnn


def test_a_fixed_family_has_bonferroni_t_intervals_computed_by_scipy():
    rng = np.random.default_rng(0)
    for m, n in ((1, 4), (3, 6), (8, 10)):
        d = rng.normal(0.02, 0.03, (m, n))
        path = run_sequential(d, SequentialDesign(n, n), 0.05, "evidence")
        for row, e in zip(d, path.effects):
            q = stats.t.ppf(1 - 0.05 / (2 * m), n - 1)
            half = q * row.std(ddof=1) / math.sqrt(n)
            assert e.ci == pytest.approx((row.mean() - half, row.mean() + half), abs=1e-14)
            assert e.confidence == pytest.approx(1 - 0.05 / m)


def test_the_family_fails_on_any_effect_and_passes_only_when_every_effect_is_shown_small():
    inside, beyond, across = [0.0, 0.001, -0.001, 0.0], [0.2, 0.21, 0.19, 0.2], [0.0, 0.1, -0.05, 0.12]
    design = SequentialDesign(4, 4)
    assert run_sequential([inside, inside], design, 0.05).verdict == "pass"
    assert run_sequential([inside, beyond], design, 0.05).verdict == "fail"
    assert run_sequential([inside, across], design, 0.05).verdict == "undecided"
    assert run_sequential([across, beyond], design, 0.05).verdict == "fail"
    path = run_sequential([inside, across], design, 0.05, "upper")
    assert path.rule_verdict == "fail"
    assert run_sequential([inside, across], design, 0.05, "lower").rule_verdict == "warn"


@pytest.mark.parametrize("m", [3, 4])
def test_a_family_at_the_threshold_keeps_both_error_rates(m):
    """Every |tau_j| = threshold, correlated effects (a shared reference): P(fail) and P(pass) <= 5%."""
    audits, rng = 1500, np.random.default_rng(10 + m)
    for design in (SequentialDesign(6, 6), SequentialDesign(3, 10)):
        shared, own = rng.standard_normal((audits, 1, 10)), rng.standard_normal((audits, m, 10))
        signs = np.where(np.arange(m) % 2, -1.0, 1.0)[:, None]  # half at +threshold, half at -threshold
        verdicts = [run_sequential(signs * 0.05 + 0.03 * (shared[a] + own[a])[:, :design.max_seeds] / math.sqrt(2),
                                   design, 0.05, p_method="t").verdict for a in range(audits)]
        bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / audits)
        assert verdicts.count("fail") / audits <= bound and verdicts.count("pass") / audits <= bound


def _run_arms(rows, design, threshold=0.05, **kw):
    return run_sequential(rows, design, threshold, p_method="t", arms=["a", "a", "b"][:len(rows)], **kw)


def test_a_settled_arm_stops_and_keeps_its_interval_while_the_others_take_more_seeds():
    rng = np.random.default_rng(3)
    design = SequentialDesign(3, 9, 3, futility=0.0)  # no futility stop: arm b goes on while unsettled
    settled = [0.3 + 0.01 * rng.standard_normal(3), 0.31 + 0.01 * rng.standard_normal(3)]  # arm a fails at once
    open_arm = 0.05 + 0.05 * rng.standard_normal(9)  # arm b sits on the threshold
    path = _run_arms([*settled, open_arm], design)
    assert dict(path.arm_stops) == {"a": 3, "b": path.seeds} and path.seeds > 3
    assert [e.n for e in path.effects] == [3, 3, path.seeds]
    assert path.verdict == "fail"  # one arm shown beyond the threshold fails the family, whatever the others do
    assert path.looks[0].stopped == (True, True, False) and path.looks[0].decision == "continue"
    # Arm a's rows beyond its stop are never read: the procedure decides where each arm stops.
    longer = _run_arms([np.r_[r, [9.0] * 6] for r in settled] + [open_arm], design)
    assert [e.ci for e in longer.effects] == [e.ci for e in path.effects]
    # An arm's path is its own: the same intervals as deciding that arm alone in a family of the same size.
    alone = run_sequential([open_arm], design, 0.05, p_method="t", family=3)
    assert path.effects[2].ci == alone.effects[0].ci and path.effects[2].n == alone.effects[0].n
    outcomes = {a["arm"]: a for a in path.arm_outcomes()}
    assert outcomes["a"] == {"arm": "a", "seeds": 3, "verdict": "fail"} and outcomes["b"]["seeds"] == path.seeds


def test_the_arms_ask_only_for_the_seeds_they_still_need():
    design = SequentialDesign(3, 9, 3, futility=0.0)
    settled = [[0.3, 0.31, 0.29], [0.3, 0.32, 0.3]]
    open_arm = [0.0, 0.1, -0.05]
    path = _run_arms([*settled, open_arm], design)
    assert path.verdict == "continue" and path.next_seeds == 6 and dict(path.arm_stops) == {"a": 3, "b": None}
    with pytest.raises(AuditConfigError, match="one arm per effect"):
        run_sequential([open_arm, open_arm], design, 0.05, arms=["a"])
    with pytest.raises(AuditConfigError, match="between min_seeds=3 and max_seeds=9"):
        _run_arms([[0.3, 0.3], open_arm, open_arm], design)
    nan_padded = np.array([[0.3, 0.31, 0.29, np.nan], [0.3, 0.32, 0.3, np.nan], [0.0, 0.1, -0.05, 0.02]])
    by_look = SequentialDesign(3, 9, 1, futility=0.0)
    ragged = [*settled, [0.0, 0.1, -0.05, 0.02]]
    assert [e.ci for e in _run_arms(nan_padded, by_look).looks[0].effects] == \
        [e.ci for e in _run_arms(ragged, by_look).looks[0].effects]


@pytest.mark.parametrize("arms", [2, 3])
def test_a_map_whose_arms_stop_apart_keeps_both_error_rates_at_the_threshold(arms):
    """Every arm at |tau| = threshold, differences sharing the reference's noise: P(fail), P(pass) <= 5%."""
    audits, rng, design = 1500, np.random.default_rng(40 + arms), SequentialDesign(3, 12, 3)
    ref, own = rng.standard_normal((audits, 12)), rng.standard_normal((audits, arms, 12))
    signs = np.where(np.arange(arms) % 2, -1.0, 1.0)[:, None]
    verdicts = [run_sequential(signs * 0.05 + 0.03 * (own[a] - ref[a]) / math.sqrt(2), design, 0.05, p_method="t",
                               arms=list(range(arms))).verdict for a in range(audits)]
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / audits)
    assert verdicts.count("fail") / audits <= bound and verdicts.count("pass") / audits <= bound


def test_shared_variance_widens_the_t_interval_with_satterthwaite_degrees_of_freedom():
    d = np.array([0.01, 0.03, 0.02, 0.05])
    v = 4e-4
    path = run_sequential(d, SequentialDesign(4, 4), 0.05, shared_variance=v)
    e = path.effect
    seed_part = d.var(ddof=1) / 4
    df = 3 * ((seed_part + v) / seed_part) ** 2
    half = stats.t.ppf(0.975, df) * math.sqrt(seed_part + v)
    assert e.ci == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-14) and e.shared_variance == v
    with pytest.raises(AuditConfigError, match="shared_variance must be"):
        run_sequential(d, SequentialDesign(4, 4), 0.05, shared_variance=[1e-4, 2e-4])


def test_the_common_test_set_variance_matches_fresh_test_sets_from_the_population():
    """Seeds' models fixed, the test set redrawn: the bootstrap's total image variance of the mean difference
    matches the spread over 300 fresh test sets, and its common part matches the covariance across seeds.

    Tolerance: a sample variance of 300 draws has relative SE sqrt(2 / 299) = 8%; 4 SE is 33%.
    """
    rng = np.random.default_rng(3)
    n_img, seeds = 400, 4
    acc = {(lev, s): (0.85 + 0.01 * s, 0.75 - 0.03 * (lev == 9) + 0.01 * s) for lev in (3, 9) for s in range(seeds)}

    def test_set():
        labels = rng.integers(0, 2, n_img)
        codes = (np.arange(n_img) % 2).astype(np.intp)
        w = rng.random(n_img)  # difficulty shared by every model: the images' common luck
        preds = {}
        for (lev, s), (clean, pert) in acc.items():
            own = np.where(rng.random(n_img) < 0.5, w, rng.random(n_img))
            shift = np.where(codes == 1, 0.05, 0.0)
            preds[(lev, s)] = {"clean": np.where(own < clean, labels, 1 - labels),
                               "p": np.where(own < pert - shift, labels, 1 - labels)}
        return preds, labels, codes

    estimand, means, per_seed, estimates = Estimand(), [], [], []
    for _ in range(300):
        preds, labels, codes = test_set()
        full = difference_replicates(preds, 9, 3, "p", range(seeds), labels, codes, ["a", "b"], estimand,
                                     "accuracy", np.ones((1, n_img)))[0]
        means.append(full.mean())
        per_seed.append(full)
        if len(estimates) < 40:
            reps = difference_replicates(preds, 9, 3, "p", range(seeds), labels, codes, ["a", "b"], estimand,
                                         "accuracy", image_weights(codes, 2))
            estimates.append((np.var(reps.mean(axis=1), ddof=1), shared_variances(reps, full)[-1]))
    per_seed = np.asarray(per_seed)
    total, common = np.var(means, ddof=1), np.cov(per_seed.T)[~np.eye(seeds, dtype=bool)].mean()
    boot_total, boot_common = np.mean(estimates, axis=0)
    assert boot_total == pytest.approx(total, rel=0.33)
    assert boot_common == pytest.approx(common, rel=0.33, abs=0.1 * total)


def test_an_audit_decides_exactly_what_run_sequential_decides_for_its_family():
    evaluations, _ = _made_up(levels=(3, 5, 7))
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5, 7], seeds=5, spectral_cutoff=None, threshold=0.02)
    analysis = analyze(spec, evaluations)
    keys = list(analysis.all_effects)
    d = np.array([analysis.all_effects[k].differences for k in keys])
    v = np.array([[analysis.all_effects[k].shared_variance] for k in keys])
    assert (v >= 0).all()  # independent errors per model here: the common part is about 0 (clipped)
    room = [np.tile(analysis.all_effects[k].allowance, (5, 1)) for k in keys]  # one look: its 5-seed allowance
    folds = [np.tile(f, (5, 1)) for f in analysis.path.folds]  # and the fold's, at the same look
    path = run_sequential(d, SequentialDesign(5, 5), 0.02, "evidence", shared_variance=v, allowance=room,
                          fold_allowance=folds)
    assert path.verdict == analysis.path.verdict
    for k, e in zip(keys, path.effects):
        assert analysis.all_effects[k].ci == e.ci and analysis.all_effects[k].confidence == pytest.approx(1 - 0.025)
    plain = analyze(AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5, 7], seeds=5, spectral_cutoff=None,
                                          test_noise=False), evaluations)
    assert all(e.shared_variance == 0 for e in plain.all_effects.values())


def test_strict_fails_on_undecided_and_warn_and_says_why(tmp_path):
    result = run_audit(tiny_cnn, "0", [3, 5], seeds=3, cache=tmp_path, spectral_cutoff=None, **TRAIN)
    (e,) = result.all_effects.values()
    lo, hi = e.ci
    across = max(abs(lo), abs(hi)) / 2 if lo <= 0 <= hi else (abs(lo) + abs(hi)) / 2  # inside the CI's |range|
    assert result.judge(across).overall == "undecided" and result.judge(across).passed
    with pytest.warns(KernelAuditWarning, match=r"undecided: the 95.00% CI .* reaches both within and beyond"):
        result.assert_below(across)
    with pytest.raises(AuditFailure, match=r"strict: 1 effect\(s\) not settled within the threshold"):
        result.assert_below(across, strict=True)
    strict = run_audit(tiny_cnn, "0", [3, 5], seeds=3, cache=tmp_path, spectral_cutoff=None, strict=True, **TRAIN)
    assert strict.settings["strict"] and not strict.judge(across).passed
    with pytest.raises(AuditFailure, match="strict"):
        strict.assert_below(across, rule="estimate") if strict.judge(across, "estimate").overall == "warn" \
            else strict.assert_below(across)


def test_skewed_differences_are_named_from_8_seeds_on():
    from pytest_kernelbias.stats import paired_effect

    skewed = paired_effect([0.0, 0.0, 0.001, 0.001, 0.002, 0.002, 0.003, 0.2], [0.0] * 8)
    g1 = stats.skew(skewed.differences, bias=False)
    assert g1 > 2.5 and f"sample skewness {g1:+.2f}" in skewed.shape_note()
    assert paired_effect(np.linspace(-1, 1, 8), [0.0] * 8).shape_note() == ""  # symmetric
    assert paired_effect([0.0, 0.0, 0.2], [0.0] * 3).shape_note() == ""  # too few seeds to tell
