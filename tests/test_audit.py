import numpy as np
import pytest
from scipy import stats

from pytest_kernelbias import (
    AuditConfigError, EmptySubgroupError, LowPass, MissingAttributeError, TrainConfig, UnknownLayerError,
    run_audit, synthfaces,
)

from .conftest import tiny_cnn

TRAIN = dict(data=synthfaces(600, 0, "planted"), test_data=synthfaces(300, 0, "planted", split="test"),
             train_config=TrainConfig(epochs=3, batch_size=32), progress=None)


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
    assert e.ci == pytest.approx((ci.low, ci.high))


def test_result_repr_and_dict_carry_the_table_and_verdict(audit):
    text = repr(audit)
    assert "skin_tone=dark" in text and "verdict:" in text
    d = audit.to_dict()
    assert d["effects"][0]["contrast"] == "kernel_size=7 vs kernel_size=3" and len(d["outcomes"]) == 12


def test_contrast_bias_is_a_signed_difference_of_drops(audit):
    from pytest_kernelbias import estimate_effects

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
