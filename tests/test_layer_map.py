"""The layer map (`layer=each(...)`): one arm per selected conv, one shared reference trained once per seed,
one family of effects, and each arm's numbers equal to the single-layer audit of that layer."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_kernelbias import AuditFailure, TrainConfig, each, run_audit, synthfaces
from pytest_kernelbias.intervention import KernelIntervention

from .conftest import tiny_cnn

SETS = dict(data=synthfaces(300, 0, "planted"), test_data=synthfaces(200, 0, "planted", split="test"),
            train_config=TrainConfig(epochs=2, batch_size=32), seeds=2, progress=None, workers=1,
            require_learning=False, spectral_cutoff=None, placebos=(), min_group_size=5)

SPECTRA = dict(spectral_cutoff=0.5)


@pytest.fixture(scope="module")
def layer_map():
    return run_audit(tiny_cnn, each("all"), [3, 5], rule="estimate", threshold=1.0, **{**SETS, **SPECTRA})


def test_each_expands_into_one_arm_per_layer_and_one_reference_as_built():
    factory = KernelIntervention(tiny_cnn, each("all"), [3, 5], input_size=(1, 3, 32, 32))
    assert [str(level) for level in factory.levels] == ["as built", "0: kernel_size=5", "3: kernel_size=5"]
    model = factory.build(factory.levels[1], seed=0)
    assert model[0].kernel_size == (5, 5) and model[3].kernel_size == (3, 3)  # that layer alone


def test_a_reference_level_with_a_layer_map_is_refused_naming_the_fix():
    from pytest_kernelbias.errors import InterventionError
    with pytest.raises(InterventionError, match=r"reference=5 with layer=each.*drop reference=, or audit one layer"):
        KernelIntervention(tiny_cnn, each("all"), [3, 5], reference=5)


@pytest.mark.slow
def test_the_reference_is_trained_once_per_seed_for_every_arm(layer_map):
    assert layer_map.run.trained == (1 + 2) * 2  # (1 + L) x seeds, not 2 x L x seeds
    assert len(layer_map.all_effects) == 2 and layer_map.settings["family"] == 2  # one family


@pytest.mark.slow
def test_an_arm_equals_the_single_layer_audit_of_its_layer_to_the_last_bit(layer_map):
    for layer in ("0", "3"):
        alone = run_audit(tiny_cnn, layer, [3, 5], rule="estimate", threshold=1.0, **{**SETS, **SPECTRA})
        (effect,) = alone.all_effects.values()
        arm_level, arm = next((level, e) for (_, level), e in layer_map.all_effects.items() if level.layer == layer)
        assert arm.differences == effect.differences and arm.estimate == effect.estimate
        # The mechanism too: the arm's shift in its own layer's high-frequency share, per subgroup, is the
        # single-layer audit's (which measures that layer), because the reference is measured there as well.
        (shifts,) = alone.spectral_effects.values()
        assert {g: e.differences for g, e in layer_map.spectral_effects[arm_level].items()} == \
            {g: e.differences for g, e in shifts.items()}
        row = next(r for r in layer_map.layer_map() if r["layer"] == layer)
        assert {g: v["effect"] for g, v in row["hf_shift"].items()} == {g: e.estimate for g, e in shifts.items()}


@pytest.mark.slow
def test_the_table_is_in_network_order_and_a_failure_names_the_layers(layer_map):
    rows = layer_map.layer_map()
    assert [r["layer"] for r in rows] == ["0", "3"] and [r["own_kernel"] for r in rows] == [3, 3]
    assert [r["input"] for r in rows] == ["32x32", "16x16"]  # the second conv sees the max-pooled maps
    assert all(r["reference"] == "as built (kernel_size=3)" and r["level"] == "kernel_size=5" for r in rows)
    assert layer_map.to_dict()["layer_map"] == rows
    moved = [r["layer"] for r in rows if r["effect"] != 0]
    if moved:  # a threshold of 0 under rule estimate fails every arm that moved the gap at all
        with pytest.raises(AuditFailure, match=f"layer map: the kernel size of {', '.join(moved)} breaks"):
            layer_map.assert_below(0.0, rule="estimate")


@pytest.mark.slow
def test_the_html_report_has_the_map_in_network_order_against_the_threshold(layer_map):
    from pytest_kernelbias.reporting._html import render_html
    from pytest_kernelbias.reporting._json import environment

    record = {**layer_map.to_dict(), "test": "t.py::test_map", "test_outcome": "passed"}
    html = render_html([record], environment(), {})
    section = html[html.index("<h3>Layer map</h3>"):]
    assert section.index(">0<") < section.index(">3<")  # network order: layer 0 before layer 3
    from pytest_kernelbias.analysis._effects import level_text

    level = level_text(record["settings"]["effect_confidence"])  # the family-adjusted level, 2 effects
    assert "kernel as built" in section and "effect vs ±1" in section and f"effect [{level} CI]" in section
    assert "high-frequency share shift of the layer" in section
    # The reference's kernels are drawn once per arm layer (its kernel sizes differ by layer).
    assert set(layer_map.kernel_spectra) >= {"as built (0)", "as built (3)", "0: kernel_size=5", "3: kernel_size=5"}


@pytest.mark.slow
def test_seeds_auto_stops_a_settled_arm_and_trains_only_the_arms_still_open(tmp_path):
    """A threshold between the arms' first-look intervals settles one arm at 2 seeds; the other and the shared
    reference go on to 3. Each arm's numbers are the fixed map's on its own seeds, from the same cache."""
    from pytest_kernelbias.analysis._estimand import Estimand
    from pytest_kernelbias.analysis._fold import effect_fold_allowances
    from pytest_kernelbias.analysis._sequential import SequentialDesign, look_confidences
    from pytest_kernelbias.stats import paired_effect

    sets = {**SETS, "test_noise": False, "cache": tmp_path}
    del sets["seeds"]
    fixed = run_audit(tiny_cnn, each("all"), [3, 5], seeds=3, **sets)
    level = look_confidences(SequentialDesign(2, 3), 0.95, 2)[0]
    # The first look's intervals with each arm's fold allowance at 2 seeds (judged on those seeds alone).
    folds = effect_fold_allowances(fixed.outcomes, list(fixed.all_effects), fixed.reference, Estimand())
    first = {lv.layer: paired_effect(e.differences[:2], [0.0, 0.0], confidence=level, allowance=tuple(f[1])).ci
             for ((_, lv), e), f in zip(fixed.all_effects.items(), folds)}
    widest = {layer: max(abs(lo), abs(hi)) for layer, (lo, hi) in first.items()}
    settles, stays = sorted(widest, key=widest.get)
    lo, hi = first[stays]
    nearest = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
    threshold = (max(widest[settles], nearest) + widest[stays]) / 2  # settles one arm (pass), not the other
    auto = run_audit(tiny_cnn, each("all"), [3, 5], seeds="auto", min_seeds=2, max_seeds=3, futility=0.0,
                     threshold=threshold, **sets)
    arms = {a["arm"]: a for a in auto.sequential["arms"]}
    assert arms[settles]["seeds"] == 2 and arms[settles]["verdict"] == "pass" and arms[stays]["seeds"] == 3
    assert auto.run.models == 3 + 2 + 3  # the reference and the open arm at 3 seeds, the settled arm at 2
    for (_, lv), e in auto.all_effects.items():
        seeds = 2 if lv.layer == settles else 3
        same = next(f for (_, fl), f in fixed.all_effects.items() if fl.layer == lv.layer)
        assert e.differences == same.differences[:seeds] and e.n == seeds
    rows = {r["layer"]: r for r in auto.layer_map()}
    assert rows[settles]["seeds"] == 2 and rows[stays]["seeds"] == 3


@pytest.fixture(scope="module")
def null_map():
    """Null SynthFaces: the reference's subgroups are tied, so the subgroups that set its spread trade places."""
    return run_audit(tiny_cnn, each("all"), [3, 5], rule="estimate", threshold=1.0,
                     **{**SETS, "data": synthfaces(300, 0, "null"),
                        "test_data": synthfaces(200, 0, "null", split="test"), "seeds": 3})


@pytest.mark.slow
@pytest.mark.parametrize("which", ["layer_map", "null_map"])
def test_every_arm_carries_the_shared_reference_fold_allowance_below_and_its_own_above(which, request):
    """Recomputed from the outcomes: the reference's drops (seeds x subgroups) give the part below, the arm's
    the part above; every row records it and says so in its note exactly when it is not 0."""
    from pytest_kernelbias.analysis._estimand import Estimand
    from pytest_kernelbias.analysis._fold import fold_allowance
    from pytest_kernelbias.intervention._levels import level_label

    audit = request.getfixturevalue(which)
    out, names = audit.outcomes, audit.outcomes.subgroups
    rows = {(r["perturbation"], r["level"]): r for r in audit.summary_rows()}

    def drops(level, pert, seeds):
        return np.array([[out.values(level, s, pert)[g] for g in names] for s in seeds])

    for pert, level in audit.all_effects:
        seeds = out.paired_seeds(level, audit.reference)
        below = fold_allowance(drops(audit.reference, pert, seeds), names, Estimand())
        above = fold_allowance(drops(level, pert, seeds), names, Estimand())
        row = rows[(pert, level_label(level))]
        assert row["fold_allowance"] == pytest.approx([below, above], abs=1e-12)
        assert ("folds near a tie" in row["note"]) == (below > 0 or above > 0)
    if which == "null_map":  # tied subgroups: the reference's seeds leave a fold unseen
        assert any(r["fold_allowance"][0] > 0 for r in rows.values())
