"""seeds="auto" in a real audit: looks, early stops, undecided warnings and incremental caching (issue 16)."""

from __future__ import annotations

import pytest

from pytest_kernelbias import AuditConfigError, KernelAuditWarning, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.analysis._futility import chance_text
from pytest_kernelbias.analysis._sequential import SequentialDesign, look_confidences

from .conftest import tiny_cnn

TRAIN = dict(data=synthfaces(300, 0, "planted"), test_data=synthfaces(200, 0, "planted", split="test"),
             train_config=TrainConfig(epochs=1, batch_size=32), progress=None, spectral_cutoff=None,
             placebos=(), require_learning=False, min_group_size=1, workers=1)


def test_a_wide_threshold_is_settled_at_the_first_look(tmp_path):
    lines = []
    result = run_audit(tiny_cnn, "0", [3, 5], seeds="auto", min_seeds=3, max_seeds=6, threshold=0.5,
                       cache=tmp_path, **{**TRAIN, "progress": lines.append})
    path = result.sequential
    assert [look["seeds"] for look in path["looks"]] == [3] and path["decision"] == "pass"
    assert result.settings["trained"] == 6 and len(result.outcomes.seeds) == 3
    # The look's interval is at the design's per-look level, not the nominal 95%.
    (first,) = look_confidences(SequentialDesign(3, 6, 1, "pocock"))[:1]
    assert result.effect.confidence == pytest.approx(first) and first > 0.95
    assert sum("seeds=auto look 1/4: 3 seeds per level" in line for line in lines) == 1
    assert result.assert_below().overall == "pass"


@pytest.mark.slow
def test_an_unsettled_audit_adds_rounds_to_max_seeds_and_warns_with_the_fixed_design(tmp_path):
    # threshold 0 under rule "estimate": no interval of a noisy effect lies wholly beyond 0, so it never settles.
    result = run_audit(tiny_cnn, "0", [3, 5], seeds="auto", min_seeds=2, max_seeds=4, seed_round=1,
                       threshold=0.0, futility=0, cache=tmp_path, **TRAIN)
    path = result.sequential
    assert [look["seeds"] for look in path["looks"]] == [2, 3, 4] and path["decision"] == "undecided"
    # Each look trains only the new seeds (2 levels x 2, then 2 x 1 twice); the audit counts all 8 as trained.
    assert [look["trained"] for look in path["looks"]] == [4, 2, 2]
    assert result.settings["from_cache"] == 0 and result.settings["trained"] == 8
    assert "undecided at max_seeds=4" in path["reason"] and path["stopped_for"] == "max_seeds"
    with pytest.warns(KernelAuditWarning, match="seeds=auto: undecided at max_seeds=4"):
        try:
            result.assert_below()
        except AssertionError:
            pass  # the verdict itself follows the rule on the last look's interval


def test_futility_stops_training_when_max_seeds_would_not_settle_it(tmp_path):
    # futility=0.99: unless max_seeds is all but sure to settle the effect, the first look ends it.
    lines = []
    result = run_audit(tiny_cnn, "0", [3, 5], seeds="auto", min_seeds=2, max_seeds=6, threshold=0.0, futility=0.99,
                       cache=tmp_path, **{**TRAIN, "progress": lines.append})
    path = result.sequential
    *before, last = path["looks"]
    assert all(look["decision"] == "continue" and look["settle_chance"] >= 0.99 for look in before)
    assert last["seeds"] < 6 and path["decision"] == "undecided" and 0 <= last["settle_chance"] < 0.99
    assert result.settings["trained"] == 2 * last["seeds"] and path["futility"] == 0.99
    assert path["stopped_for"] == "futility"
    assert (f"undecided at {last['seeds']} of max_seeds=6 seeds (futility: max_seeds would settle it with chance "
            f"{chance_text(last['settle_chance'])}, under 0.99)") in path["reason"]
    assert sum(f"seeds=auto look {len(before) + 1}/5: {last['seeds']} seeds per level" in line and
               "intervals: undecided (chance max_seeds settles it" in line for line in lines) == 1
    with pytest.warns(KernelAuditWarning, match="futility"):
        try:
            result.assert_below()
        except AssertionError:
            pass


@pytest.mark.slow
def test_a_later_run_with_more_max_seeds_trains_only_the_new_seeds(tmp_path):
    run_audit(tiny_cnn, "0", [3, 5], seeds="auto", min_seeds=2, max_seeds=3, threshold=0.0, futility=0,
              cache=tmp_path, **TRAIN)
    more = run_audit(tiny_cnn, "0", [3, 5], seeds="auto", min_seeds=2, max_seeds=4, threshold=0.0, futility=0,
                     cache=tmp_path, **TRAIN)
    assert more.settings["trained"] == 2 and more.settings["from_cache"] == 6


@pytest.mark.parametrize("settings", [dict(min_seeds=1), dict(max_seeds=2, min_seeds=3), dict(seed_round=0),
                                      dict(boundary="haybittle"), dict(futility=1.5), dict(futility="yes")])
def test_bad_sequential_settings_are_refused_before_training(settings):
    with pytest.raises(AuditConfigError):
        run_audit(tiny_cnn, "0", [3, 5], seeds="auto", **settings, **TRAIN)


def test_a_sign_flip_design_that_cannot_fail_even_at_max_seeds_is_refused():
    with pytest.raises(AuditConfigError, match="can never fail"):
        run_audit(tiny_cnn, "0", [3, 5], seeds="auto", min_seeds=2, max_seeds=4, rule="lower",
                  interval="permutation", **TRAIN)


def test_the_seeds_option_and_ini_take_auto():
    from pytest_kernelbias._options import from_sources

    assert from_sources({"seeds": "auto"}, {}).seeds == "auto"
    assert from_sources({}, {"seeds": "auto"}).seeds == "auto"
    assert from_sources({}, {"seeds": "4"}).seeds == 4
    with pytest.raises(AuditConfigError, match="int >= 2 or auto"):
        from_sources({"seeds": "many"}, {})
