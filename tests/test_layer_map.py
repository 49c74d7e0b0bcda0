"""The layer map (`layer=each(...)`): one arm per selected conv, one shared reference trained once per seed,
one family of effects, and each arm's numbers equal to the single-layer audit of that layer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

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
    from pytest_kernelbias.analysis._decision import FOLD_GUARD
    from pytest_kernelbias.analysis._sequential import SequentialDesign, look_confidences
    from pytest_kernelbias.stats import paired_effect

    sets = {**SETS, "test_noise": False, "cache": tmp_path}
    del sets["seeds"]
    fixed = run_audit(tiny_cnn, each("all"), [3, 5], seeds=3, **sets)
    # The first look runs at the fold guard's level when the reference may fold by its 2nd seed (judged on
    # the seeds so far, so the fixed run's 3 seeds say the same of the first 2 as the auto run's).
    guarded = fixed.path.fold_from is not None and fixed.path.fold_from <= 2
    level = look_confidences(SequentialDesign(2, 3), 1 - 0.05 / (FOLD_GUARD if guarded else 1), 2)[0]
    first = {lv.layer: paired_effect(e.differences[:2], [0.0, 0.0], confidence=level).ci
             for (_, lv), e in fixed.all_effects.items()}
    widest = {layer: max(abs(lo), abs(hi)) for layer, (lo, hi) in first.items()}
    settles, stays = sorted(widest, key=widest.get)
    lo, hi = first[stays]
    nearest = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
    threshold = (max(widest[settles], nearest) + widest[stays]) / 2  # settles one arm (pass), not the other
    auto = run_audit(tiny_cnn, each("all"), [3, 5], seeds="auto", min_seeds=2, max_seeds=3, futility=0.0,
                     threshold=threshold, **sets)
    assert auto.path.fold_from == fixed.path.fold_from
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
def test_the_fold_guard_acts_exactly_when_the_reference_folds_and_every_row_says_so(which, request):
    """Computed another way, from the reference's drops: at each seed count n, the subgroups with the largest
    and smallest drop change across the seeds so far, or a runner-up contrast (top two, bottom two by mean
    drop) has a one-sided t below its 97.5% quantile (alpha / 2 of the audit's 5%)."""
    def may_fold(rows: list[dict]) -> bool:
        if len({(max(r, key=r.get), min(r, key=r.get)) for r in rows}) > 1:
            return True
        ranked = sorted(rows[0], key=lambda g: -np.mean([r[g] for r in rows]))
        for a, b in ((ranked[0], ranked[1]), (ranked[-2], ranked[-1])):
            d = np.array([r[a] - r[b] for r in rows])
            sd = d.std(ddof=1)
            if d.mean() <= 0 or (sd > 0 and d.mean() / (sd / np.sqrt(len(d))) < stats.t.ppf(0.975, len(d) - 1)):
                return True
        return False

    layer_map = request.getfixturevalue(which)
    folds = []
    for pert in layer_map.outcomes.perturbations:
        rows = [layer_map.outcomes.values(layer_map.reference, s, pert) for s in layer_map.outcomes.seeds]
        folds.append(next((n for n in range(2, len(rows) + 1) if may_fold(rows[:n])), None))
    expected = min((f for f in folds if f is not None), default=None)
    path = layer_map.path
    assert path.fold_from == expected and layer_map.settings["fold_from"] == expected
    notes = [r["note"] for r in layer_map.summary_rows()]
    assert all(("folds" in note) == (expected is not None) for note in notes)
    if which == "null_map":
        assert expected is not None  # tied subgroups: the guard's branch is exercised
    if expected is not None:
        assert path.looks[-1].confidence > 1 - 0.05 / 2  # alpha / 2 over a family of two
