"""Sequential seeds (analysis/_sequential.py): the look schedule, per-look levels, decisions and error rates.

Simulated rates are checked against binomial bounds: a rate whose true value is at most alpha
exceeds alpha + 3 * sqrt(alpha (1 - alpha) / N) with probability about 0.1%; the generators are
seeded, so each check is deterministic.
"""
import math

import numpy as np
import pytest
from scipy import stats

from pytest_kernelbias import AuditConfigError
from pytest_kernelbias.analysis._decision import run_sequential
from pytest_kernelbias.analysis._futility import chance_text, settle_chance
from pytest_kernelbias.analysis._sequential import (
    BOUNDARIES,
    SequentialDesign,
    decide,
    final_verdict,
    follow_up_confidence,
    look_alphas,
    look_confidences,
    looks,
    seeds_to_settle,
    settle_chances,
)
from pytest_kernelbias.stats import paired_effect

ALPHA = 0.05


def upper_bound(rate: float, n: int) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / n)


@pytest.mark.parametrize("args,expected", [
    ((3, 10, 1), (3, 4, 5, 6, 7, 8, 9, 10)),
    ((3, 12, 3), (3, 6, 9, 12)),
    ((3, 10, 3), (3, 6, 9, 10)),  # a short last round keeps max_seeds the last look
    ((4, 20, 4), (4, 8, 12, 16, 20)),
    ((5, 5, 1), (5,)),
    ((2, 3, 5), (2, 3)),
])
def test_look_schedule(args, expected):
    assert looks(*args) == expected
    assert SequentialDesign(*args).looks == expected


@pytest.mark.parametrize("args,message", [
    ((1, 10, 1), r"min_seeds must be a whole number >= 2 .* use min_seeds=3"),
    ((True, 10, 1), r"min_seeds must be a whole number >= 2"),
    ((3, 2, 1), r"max_seeds must be a whole number >= min_seeds=3, got 2; raise max_seeds or lower min_seeds"),
    ((3, 10.0, 1), r"max_seeds must be a whole number"),
    ((3, 10, 0), r"round_size must be a whole number >= 1 .* use round_size=1 or more"),
    ((3, 10, 1.5), r"round_size must be a whole number >= 1"),
    ((2, 200, 1), r"199 looks .* more than 50; use round_size >= 5"),
])
def test_looks_refuses_bad_settings_naming_the_fix(args, message):
    with pytest.raises(AuditConfigError, match=message):
        looks(*args)
    with pytest.raises(AuditConfigError, match=message):
        SequentialDesign(*args)


def test_round_size_from_the_too_many_looks_message_is_accepted():
    assert len(looks(2, 200, 5)) <= 50


def test_design_refuses_an_unknown_boundary():
    with pytest.raises(AuditConfigError, match="boundary must be one of 'pocock', 'obrien-fleming', 'bonferroni'"):
        SequentialDesign(3, 10, 1, "haybittle")


@pytest.mark.parametrize("confidence,family", [(0.95, 1), (0.95, 3), (0.9, 2)])
def test_bonferroni_level_is_alpha_over_family_over_looks(confidence, family):
    design = SequentialDesign(3, 10, 1, "bonferroni")
    expected = (1 - confidence) / family / 8
    assert look_alphas(design, confidence, family) == pytest.approx((expected,) * 8, rel=1e-12)
    assert look_confidences(design, confidence, family) == pytest.approx((1 - expected,) * 8, rel=1e-12)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_one_look_is_the_fixed_design(boundary):
    assert look_alphas(SequentialDesign(6, 6, 1, boundary)) == (pytest.approx(0.05, abs=1e-15),)
    assert look_alphas(SequentialDesign(6, 6, 1, boundary), 0.95, 2) == (pytest.approx(0.025, abs=1e-15),)


@pytest.mark.parametrize("boundary", ["pocock", "obrien-fleming"])
def test_family_is_bonferroni_first_then_looks(boundary):
    design = SequentialDesign(3, 8, 1, boundary)
    assert look_alphas(design, 0.95, 4) == look_alphas(design, 1 - 0.05 / 4, 1)


def test_boundary_shapes():
    k = 8
    pocock = look_alphas(SequentialDesign(3, 10, 1, "pocock"))
    assert len(set(pocock)) == 1 and ALPHA / k < pocock[0] < ALPHA  # correlated looks: above Bonferroni
    obf = look_alphas(SequentialDesign(3, 10, 1, "obrien-fleming"))
    assert all(a < b for a, b in zip(obf, obf[1:])) and obf[-1] < ALPHA


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("design_args", [(2, 6, 1), (3, 10, 1), (3, 12, 3)])
def test_joint_miss_rate_on_independent_null_paths(boundary, design_args):
    """The per-look levels, checked another way: per-seed draws (not the calibration's round sums),
    a fresh generator, scipy's t quantiles. The K intervals must jointly miss at most alpha; the
    calibrated boundaries must also not waste it (the calibration aims 2 of its own SE below alpha)."""
    design = SequentialDesign(*design_args, boundary)
    counts = np.asarray(design.looks)
    crit = stats.t.ppf(1 - np.asarray(look_alphas(design)) / 2, counts - 1)
    paths = 40_000
    d = np.random.default_rng(12345).standard_normal((paths, design.max_seeds))
    mean = np.cumsum(d, axis=1)[:, counts - 1] / counts
    sd = np.array([d[:, :n].std(axis=1, ddof=1) for n in counts]).T
    t = mean / (sd / np.sqrt(counts))
    miss = float(np.mean(np.any(np.abs(t) > crit, axis=1)))
    se = math.sqrt(ALPHA * (1 - ALPHA) / paths)
    assert miss <= ALPHA + 3 * se
    if boundary != "bonferroni" and len(counts) > 1:
        assert miss >= ALPHA - 3 * se - 2 * math.sqrt(ALPHA * (1 - ALPHA) / 2**17)


@pytest.mark.parametrize("interval,threshold,expected", [
    ((-0.01, 0.04), 0.05, "pass"),
    ((-0.05, 0.05), 0.05, "pass"),       # on the threshold passes, as Effect.passes (<=)
    ((0.06, 0.10), 0.05, "fail"),
    ((-0.10, -0.06), 0.05, "fail"),      # harm in either direction
    ((0.05, 0.07), 0.05, "continue"),    # smallest |value| 0.05 is not beyond 0.05
    ((0.04, 0.06), 0.05, "continue"),
    ((-0.06, 0.01), 0.05, "continue"),
    ((-0.01, 0.01), 0.0, "continue"),
    ((0.0, 0.0), 0.0, "pass"),
])
@pytest.mark.parametrize("rule", ["estimate", "upper", "lower"])
def test_decide(interval, threshold, expected, rule):
    assert decide(interval, rule, threshold) == expected
    assert final_verdict(interval, rule, threshold) == ("undecided" if expected == "continue" else expected)


def test_decide_refuses_bad_rule_and_threshold():
    with pytest.raises(AuditConfigError, match="rule must be one of"):
        decide((0, 1), "both", 0.1)
    with pytest.raises(AuditConfigError, match="threshold must be a finite number >= 0"):
        decide((0, 1), "upper", -0.1)


def test_one_look_agrees_with_the_effects_own_verdict():
    """With K = 1 the design is the fixed design: same interval, and decide() maps onto Effect.verdict."""
    rng = np.random.default_rng(7)
    seen = set()
    for _ in range(150):
        n = int(rng.integers(2, 9))
        d = rng.normal(rng.normal(0, 0.05), rng.uniform(0.005, 0.05), n)
        threshold = abs(d.mean()) * rng.uniform(0.2, 2.0)
        design = SequentialDesign(n, n, 1)
        effect = paired_effect(d, np.zeros(n), confidence=0.95)
        for rule in ("estimate", "upper", "lower"):
            path = run_sequential(d, design, threshold, rule, p_method="t")
            assert path.effect.ci == pytest.approx(effect.ci, abs=1e-14)
            fixed = effect.verdict(threshold, rule)
            assert path.rule_verdict == fixed
            if rule == "lower":
                assert path.verdict == {"pass": "pass", "fail": "fail", "warn": "undecided"}[fixed]
            if rule == "upper":
                assert (path.verdict == "pass") == (fixed == "pass")
                assert path.verdict != "fail" or fixed == "fail"
            if rule == "estimate" and path.verdict != "undecided":
                assert path.verdict == fixed
            seen.add(path.verdict)
    assert seen == {"pass", "fail", "undecided"}


def test_each_look_is_paired_effect_at_its_adjusted_level():
    d = np.random.default_rng(3).normal(0.05, 0.03, 10)
    design = SequentialDesign(3, 10, 1)
    levels = look_confidences(design)
    path = run_sequential(d, design, 0.05, "lower", p_method="t")
    assert [look.seeds for look in path.looks] == list(design.looks[:len(path.looks)])
    for k, look in enumerate(path.looks):
        reference = paired_effect(d[:look.seeds], np.zeros(look.seeds), confidence=levels[k], method="t",
                                  p_method="t")
        assert look.confidence == levels[k]
        assert look.effect.ci == reference.ci and look.effect.estimate == reference.estimate
        assert look.decision == decide(reference.ci, "lower", 0.05)


@pytest.mark.parametrize("mean,verdict", [(0.0, "pass"), (0.2, "fail"), (-0.2, "fail")])
def test_stops_at_the_first_look_on_a_clear_effect(mean, verdict):
    d = np.random.default_rng(11).normal(mean, 0.0075, 10)  # the SynthFaces seed spread
    path = run_sequential(d, SequentialDesign(3, 10, 1), 0.05)
    assert path.verdict == verdict and path.seeds == 3 and len(path.looks) == 1
    assert path.reason.startswith(verdict) and ("inside" if verdict == "pass" else "beyond") in path.reason
    assert path.fixed_seeds is None


def test_undecided_at_max_seeds_gives_the_one_seeds_needed_number():
    d = 0.05 + np.array([0.02, -0.01, 0.012, -0.018, 0.005, 0.01])
    design = SequentialDesign(3, 6, 1, futility=0)  # no early stop: this test is about reaching max_seeds
    path = run_sequential(d, design, 0.05, "upper")
    assert path.verdict == "undecided" and path.seeds == 6
    expected = seeds_to_settle(path.effect, 0.05, follow_up_confidence(0.95))
    assert path.fixed_seeds == expected is not None
    assert f"about {expected} seeds per level to settle it with 80% chance" in path.reason
    assert "max_seeds=6" in path.reason
    assert path.rule_verdict == "fail"  # "upper": not shown small
    assert run_sequential(d, design, 0.05, "lower").rule_verdict == "warn"


def _settle_by_integration(estimate, sd, shared, n, threshold, confidence):
    """The settle chance written from its definition: integrate the estimate's normal density over the values
    whose interval (its t half-width at Welch-Satterthwaite df) lies wholly inside or wholly beyond."""
    from scipy import integrate

    seed_part = sd * sd / n
    df = (n - 1) * ((seed_part + shared) / seed_part) ** 2 if shared > 0 else n - 1
    se = math.sqrt(seed_part + shared)
    half = stats.t.ppf((1 + confidence) / 2, df) * se
    density = stats.norm(estimate, se).pdf
    settled = [(-np.inf, -threshold - half), (threshold + half, np.inf)]
    if half < threshold:
        settled.append((-threshold + half, threshold - half))
    return sum(integrate.quad(density, lo, hi, epsabs=1e-11)[0] for lo, hi in settled)


@pytest.mark.parametrize("estimate,sd,shared", [(0.075, 0.03, 0.0), (0.02, 0.03, 1e-5), (0.3, 1.0, 0.0),
                                                (-0.09, 0.05, 4e-5)])
def test_seeds_to_settle_is_the_first_count_that_settles_with_80_percent_chance(estimate, sd, shared):
    e = paired_effect(estimate + sd * np.array([-1.0, 1.0]) / math.sqrt(2), [0.0, 0.0], shared_variance=shared)
    need = seeds_to_settle(e, 0.05)
    chance = [_settle_by_integration(estimate, sd, shared, n, 0.05, 0.95) for n in (need - 1, need)]
    assert chance[1] >= 0.8 and (need == 2 or chance[0] < 0.8)
    assert settle_chances(estimate, sd, shared, np.array([need]), 0.05, 0.95)[0] == pytest.approx(chance[1], abs=1e-7)
    assert seeds_to_settle(e, 0.05, family=2) >= need  # a family's one-look level is stricter


def test_an_estimate_on_the_threshold_or_held_wide_by_the_test_set_never_settles():
    assert seeds_to_settle(paired_effect([0.04, 0.06], [0.0, 0.0]), 0.05) is None
    # sqrt(shared) * z alone exceeds the distance 0.02: however many seeds, the interval stays wider.
    held = paired_effect([0.06, 0.08], [0.0, 0.0], shared_variance=(0.02 / 1.9) ** 2)
    assert seeds_to_settle(held, 0.05) is None


def test_continue_when_the_differences_run_out():
    d = 0.05 + np.array([0.02, -0.01, 0.012, -0.018, 0.005, 0.01])
    path = run_sequential(d, SequentialDesign(3, 10, 2, futility=0), 0.05)
    assert path.verdict == "continue" and path.next_seeds == 7
    assert [look.seeds for look in path.looks] == [3, 5] and "train up to 7 seeds" in path.reason


@pytest.mark.parametrize("d", [[0.1, 0.2], list(range(11)), [[0.1, 0.2]] * 2])
def test_run_refuses_differences_outside_the_design(d):
    with pytest.raises(AuditConfigError, match="between min_seeds=3 and max_seeds=10"):
        run_sequential(d, SequentialDesign(3, 10, 1), 0.05)


def test_error_rates_at_the_threshold():
    """tau = threshold, resnet18-like spread: rule "lower" fails (a false failure) and rule "upper"
    passes (a false pass) each at most alpha, through the audit's own procedure."""
    audits, design = 600, SequentialDesign(3, 8, 1)
    z = np.random.default_rng(2026).standard_normal((audits, 8))
    verdicts = [run_sequential(0.05 + 0.03 * row, design, 0.05, "lower", p_method="t").verdict for row in z]
    assert verdicts.count("fail") / audits <= upper_bound(ALPHA, audits)
    assert verdicts.count("pass") / audits <= upper_bound(ALPHA, audits)


@pytest.mark.parametrize("estimate,sd,n", [(0.06, 0.03, 3), (0.03, 0.03, 4), (0.0, 0.0075, 3), (0.05, 0.02, 5),
                                           (-0.09, 0.03, 3)])
def test_settle_chance_matches_a_simulation_of_the_predictive_model(estimate, sd, n):
    """The closed form against the model it claims: the true effect mu ~ N(estimate, sd^2 / n), the
    N - n new differences ~ N(mu, sd), the final t interval at max_seeds with the spread as seen.
    Tolerance: 4 binomial SE of the simulated share."""
    max_seeds, confidence, threshold, draws = 10, 0.988, 0.05, 200_000
    rng = np.random.default_rng(7)
    mu = estimate + sd / math.sqrt(n) * rng.standard_normal(draws)
    rest = mu + sd / math.sqrt(max_seeds - n) * rng.standard_normal(draws)  # mean of the new differences
    final = (n * estimate + (max_seeds - n) * rest) / max_seeds
    half = stats.t.ppf(0.5 + confidence / 2, max_seeds - 1) * sd / math.sqrt(max_seeds)
    settled = (np.abs(final) + half <= threshold) | (np.abs(final) - half > threshold)
    share = settled.mean()
    chance = settle_chance(estimate, sd, n, max_seeds, confidence, threshold)
    assert chance == pytest.approx(share, abs=4 * math.sqrt(max(share * (1 - share), 1e-6) / draws))


def test_chance_text_never_prints_a_zero_chance():
    assert chance_text(0.0) == chance_text(0.0004) == "< 0.1%"
    assert chance_text(0.0006) == "0.1%" and chance_text(0.1234) == "12.3%"


def test_settle_chance_edges():
    assert settle_chance(0.06, 0.03, 10, 10, 0.95, 0.05) == 0.0  # nothing left to train
    assert settle_chance(0.06, 0.0, 3, 10, 0.95, 0.05) == 1.0  # no spread seen: never stop on it
    with pytest.raises(AuditConfigError, match="futility must be a number in \\[0, 1\\)"):
        SequentialDesign(3, 10, 1, futility=1.0)


def test_futility_only_turns_more_seeds_into_undecided():
    """Over many paths, a design with futility settles exactly as the one without, or stops undecided
    earlier; it never gives another verdict, so it cannot raise either error rate."""
    z = np.random.default_rng(5).standard_normal((400, 10))
    plain, early = SequentialDesign(3, 10, 1, futility=0), SequentialDesign(3, 10, 1, futility=0.1)
    stopped = 0
    for row in z:
        a = run_sequential(0.05 + 0.03 * row, plain, 0.05, "lower", p_method="t")
        b = run_sequential(0.05 + 0.03 * row, early, 0.05, "lower", p_method="t")
        assert b.verdict in (a.verdict, "undecided") and b.seeds <= a.seeds
        if b.verdict != "undecided":
            assert (b.verdict, b.seeds) == (a.verdict, a.seeds)
        stopped += b.seeds < a.seeds
    assert stopped > 200  # at tau = threshold most paths are futile, which is the point
    futile = next(run_sequential(0.05 + 0.03 * row, early, 0.05) for row in z
                  if run_sequential(0.05 + 0.03 * row, early, 0.05).seeds < 10)
    last = futile.looks[-1]
    assert futile.verdict == "undecided" and last.settle_chance < 0.1
    assert f"undecided at {last.seeds} of max_seeds=10 seeds (futility: max_seeds would settle it" in futile.reason
    assert "a follow-up audit on fresh seeds (confidence 0.975) would need" in futile.reason \
        or "no new audit" in futile.reason


def test_futility_counts_a_family_that_one_failing_effect_will_settle():
    # One effect at 3x the threshold, one at 0 whose few-seed sd came out large: every effect settling by
    # max_seeds was unlikely (the old rule's chance, 3%, under futility 0.1, stopped the audit undecided at 3
    # seeds), but the family settles as soon as the first effect fails, which it very probably will.
    rng = np.random.default_rng(3)
    for _ in range(8):
        rows = np.stack([0.15 + 0.02 * rng.standard_normal(16), 0.06 * rng.standard_normal(16)])
    design = SequentialDesign(3, 16)
    path = run_sequential(rows, design, 0.05, "evidence", 0.95, p_method="t")
    first = path.looks[0]
    final = look_confidences(design, 0.95, 2)[-1]
    pooled = float(np.sqrt(np.mean([e.sd ** 2 for e in first.effects])))
    every = min(settle_chance(e.estimate, pooled, 3, 16, final, 0.05) for e in first.effects)
    one_fails = max(settle_chance(e.estimate, pooled, 3, 16, final, 0.05, beyond_only=True) for e in first.effects)
    assert every < design.futility < one_fails
    assert first.settle_chance == pytest.approx(one_fails, abs=1e-12)
    assert path.verdict == "fail" and path.seeds == 5
