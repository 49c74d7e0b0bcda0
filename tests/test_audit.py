import dataclasses

import numpy as np
import pytest
from scipy import stats

from pytest_kernelbias import AuditConfigError, LowPass, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.errors import EmptySubgroupError, MissingAttributeError, UnknownLayerError

from .conftest import tiny_cnn

TRAIN = dict(data=synthfaces(600, 0, "planted"), test_data=synthfaces(300, 0, "planted", split="test"),
             train_config=TrainConfig(epochs=3, batch_size=32), progress=None,
             # The two-conv CNN stays at the majority-class rate on this budget; these tests check the arithmetic.
             require_learning=False)


@pytest.fixture(scope="module")
def audit():
    return run_audit(tiny_cnn, "0", [3, 7], seeds=3, perturbation=LowPass(0.4), **TRAIN)


def test_outcomes_have_one_row_per_level_seed_and_subgroup(audit):
    assert len(audit.outcomes) == 2 * 3 * 2
    assert audit.outcomes.levels == [3, 7] and audit.outcomes.seeds == [0, 1, 2]
    assert all(abs(r.drop - (r.clean - r.perturbed)) < 1e-12 for r in audit.outcomes.rows)


def test_effect_is_the_paired_mean_of_spreads_with_the_ttest_rel_interval(audit):
    def spread(level, seed):
        drops = [r.drop for r in audit.outcomes.rows if r.level == level and r.seed == seed]
        return max(drops) - min(drops)

    treated = [spread(7, s) for s in range(3)]
    ref = [spread(3, s) for s in range(3)]
    e = audit.effects[7]
    assert e.estimate == pytest.approx(np.mean(np.subtract(treated, ref)))
    ci = stats.ttest_rel(treated, ref).confidence_interval()
    below, above = e.allowance  # the small-subgroup bias allowance widens it (tests/test_small_groups.py)
    # and the fold allowance, here from the folded-normal formula of two subgroups (tests/test_folded_reference.py)
    from .test_folded_reference import _by_formula

    def drops(level):
        return np.array([[r.drop for r in audit.outcomes.rows if r.level == level and r.seed == s] for s in range(3)])
    (fold_below, se_below), (fold_above, se_above) = _by_formula(drops(3)), _by_formula(drops(7))
    assert e.ci[0] == pytest.approx(ci.low - below - fold_below, abs=4 * se_below + 1e-12)
    assert e.ci[1] == pytest.approx(ci.high + above + fold_above, abs=4 * se_above + 1e-12)


def test_result_repr_and_dict_carry_the_table_and_verdict(audit):
    text = repr(audit)
    assert "skin_tone=dark" in text and "verdict:" in text
    d = audit.to_dict()
    assert d["effects"][0]["contrast"] == "kernel_size=7 vs kernel_size=3" and len(d["outcomes"]) == 12


def test_contrast_bias_is_a_signed_difference_of_drops(audit):
    from pytest_kernelbias.stats import estimate_effects

    eff = estimate_effects(audit.outcomes, 3, bias="contrast", contrast=("skin_tone=dark", "skin_tone=light"))[7]
    swapped = estimate_effects(audit.outcomes, 3, bias="contrast", contrast=("skin_tone=light", "skin_tone=dark"))[7]
    assert eff.estimate == pytest.approx(-swapped.estimate)


def test_bad_input_is_refused_before_any_training():
    with pytest.raises(UnknownLayerError):
        run_audit(tiny_cnn, "conv1", [3, 5], **TRAIN)
    with pytest.raises(MissingAttributeError, match="'race'"):
        run_audit(tiny_cnn, "0", [3, 5], attributes="race", **TRAIN)
    with pytest.raises(AuditConfigError, match="at least 2 seeds"):
        run_audit(tiny_cnn, "0", [3, 5], seeds=1, **TRAIN)
    with pytest.raises(AuditConfigError, match="contrast=\\(group1, group2\\)"):
        run_audit(tiny_cnn, "0", [3, 5], bias="contrast", **TRAIN)


def test_a_subgroup_missing_from_the_test_set_is_refused():
    test = TRAIN["test_data"]
    only_light = test.subset(test.subgroup_indices("skin_tone")["skin_tone=light"])
    with pytest.raises(EmptySubgroupError, match="'skin_tone=dark' has no images"):
        run_audit(tiny_cnn, "0", [3, 5], **{**TRAIN, "test_data": only_light})


def test_every_effect_carries_a_holm_adjusted_p_within_its_family(audit):
    families = audit.families()
    assert len(families["bias"]) == 1 and len(families["subgroups"]) == 2
    (bias,) = families["bias"]
    assert bias.p_adjusted == pytest.approx(bias.p_value)  # a family of one needs no correction
    assert all(e.p_adjusted is not None and e.p_adjusted >= e.p_value - 1e-12 for e in audit.family())


def test_rule_lower_reads_the_interval_alone_the_p_at_zero_is_descriptive():
    from pytest_kernelbias.stats import paired_effect

    e = paired_effect([0.05, 0.06, 0.07, 0.08, 0.09, 0.1], [0] * 6, p_method="permutation")
    assert e.verdict(0.0, "lower") == "fail"
    # A family's adjusted p tests tau = 0, not the threshold; the interval is what is adjusted for the family.
    assert dataclasses.replace(e, p_adjusted=0.09).verdict(0.0, "lower") == "fail"
    assert e.verdict(0.2, "lower") == "pass" and e.verdict(0.2, "evidence") == "pass"
    assert e.verdict(0.06, "evidence") == "undecided" and e.verdict(0.06, "lower") == "warn"


def test_subgroup_effects_and_difference_in_differences_are_consistent(audit):
    key = ("LowPass(0.4)", 7)
    tau = audit.subgroup_effects[key]
    (pair, did), = audit.pairwise[key].items()
    assert did.estimate == pytest.approx(tau[pair[0]].estimate - tau[pair[1]].estimate)


def test_shuffle_placebo_is_reported_with_its_meaning(audit):
    placebo = audit.placebos["subgroup-shuffle"]
    assert placebo.label.startswith("placebo subgroup-shuffle") and placebo.n == 3
    d = audit.to_dict()
    assert d["placebos"][0]["placebo"] == "subgroup-shuffle" and "not proof of a bug" in d["placebo_meaning"]


def test_hierarchical_interval_keeps_the_point_estimate(audit):
    h = audit.hierarchical_interval(n_boot=400)
    assert h.estimate == pytest.approx(audit.effect.estimate)
    assert h.ci[0] <= h.estimate <= h.ci[1] and "test images" in h.method


@pytest.mark.slow
def test_three_levels_give_a_dose_response_slope_and_aa_placebo_trains_fresh_seeds():
    result = run_audit(tiny_cnn, "0", [3, 5, 7], seeds=2, placebos=("shuffle", "aa"), spectral_cutoff=None, **TRAIN)
    (slope,) = result.dose_response.values()
    assert slope.n == 2 and "per unit of kernel_size" in slope.label
    aa = result.placebos["A/A"]
    assert aa.n == 2 and "seeds 2..3 vs 0..1" in aa.label
    assert len(result.effects) == 2


def test_to_reference_bias_needs_an_existing_reference_group():
    with pytest.raises(EmptySubgroupError, match="'skin_tone=purple' is not one of"):
        run_audit(tiny_cnn, "0", [3, 5], bias="to_reference", contrast="skin_tone=purple", **TRAIN)
