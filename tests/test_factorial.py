"""A factorial audit (kernel size x a fix): its contrasts against an OLS with seed fixed effects, its intervals
against the paired t interval of the per-seed contrasts, its test-set noise against replicates formed cell by
cell, and its refusals."""

import numpy as np
import pytest
from scipy import stats

from pytest_kernelbias.analysis._analyze import analyze
from pytest_kernelbias.analysis._test_noise import bias_replicates, image_weights, shared_variances
from pytest_kernelbias.errors import AuditConfigError, InterventionError
from pytest_kernelbias.evaluation._evaluate import Evaluation, Evaluations
from pytest_kernelbias.intervention import AntiAlias, Contrast, Factor, KernelIntervention, each, factorial
from pytest_kernelbias.plan import Variant
from pytest_kernelbias.spec import AuditSpec

from .conftest import tiny_cnn

PERT = "LowPass(0.4)"
LEVELS = factorial(Factor("0", [3, 9]), Factor("2", [None, AntiAlias(3)]))  # tiny_cnn: conv "0", max pool "2"
SEEDS = 6


def _made_up(n: int = 600):
    """Per cell and seed, predictions whose group "b" loses more under the perturbation at k=9, less so with the
    fix: a real interaction, with seed-to-seed noise."""
    rng = np.random.default_rng(1)
    labels, codes = rng.integers(0, 2, n), (np.arange(n) % 2).astype(np.intp)
    extra = {(3, None): 0.0, (9, None): 0.08, (3, AntiAlias(3)): 0.01, (9, AntiAlias(3)): 0.03}
    items, truth = [], {}
    for seed in range(SEEDS):
        for cell in LEVELS:
            clean_ok = rng.random(n) < 0.9
            loss = np.where(codes == 1, 0.1 + extra[(cell.cause, cell.fix)] + 0.02 * rng.standard_normal(), 0.1)
            pert_ok = clean_ok & (rng.random(n) >= loss)
            truth[(cell, seed)] = {"clean": np.where(clean_ok, labels, 1 - labels),
                                   PERT: np.where(pert_ok, labels, 1 - labels)}
            items.append(Evaluation(Variant(cell, seed, "audit", f"{cell}s{seed}", "e", seed, "", False, False),
                                    truth[(cell, seed)]))
    return Evaluations(labels, codes, ("a", "b"), tuple(items)), truth


def _bias(preds, labels, codes) -> float:
    """B = drop(b) - drop(a), the signed contrast, from the predictions with numpy."""
    acc = {c: np.array([np.mean(preds[c][codes == g] == labels[codes == g]) for g in (0, 1)]) for c in preds}
    drop = acc["clean"] - acc[PERT]
    return float(drop[1] - drop[0])


def _spec(**settings):
    return AuditSpec.from_kwargs(tiny_cnn, ["0", "2"], LEVELS, seeds=SEEDS, bias="contrast", contrast=("b", "a"),
                                 spectral_cutoff=None, **settings)


def _key(kind, cause=9, fix=AntiAlias(3)):
    return (PERT, Contrast(kind, cause, fix, LEVELS.design))


def test_the_contrasts_are_the_ols_coefficients_of_cell_biases_with_seed_fixed_effects():
    evaluations, truth = _made_up()
    effects = analyze(_spec(test_noise=False), evaluations).all_effects
    labels, codes = evaluations.labels, evaluations.codes
    rows, y = [], []
    for (cell, seed), preds in truth.items():
        cause, fix = float(cell.cause == 9), float(cell.fix is not None)
        rows.append([*(float(seed == s) for s in range(SEEDS)), cause, fix, cause * fix])
        y.append(_bias(preds, labels, codes))
    beta = np.linalg.lstsq(np.array(rows), np.array(y), rcond=None)[0]
    cause, fix, interaction = beta[SEEDS:]
    # A balanced 2 x 2 with seed effects: each coefficient is a mean of exact per-seed contrasts (rounding only).
    assert effects[_key("interaction")].estimate == pytest.approx(interaction, abs=1e-12)
    assert effects[_key("cause", fix=None)].estimate == pytest.approx(cause, abs=1e-12)
    assert effects[_key("fix", cause=3)].estimate == pytest.approx(fix, abs=1e-12)
    assert effects[_key("cause")].estimate == pytest.approx(cause + interaction, abs=1e-12)
    assert len(effects) == 4


def test_each_interval_is_the_paired_t_interval_of_its_per_seed_contrasts_at_the_familys_level():
    evaluations, truth = _made_up()
    analysis = analyze(_spec(test_noise=False), evaluations)
    labels, codes = evaluations.labels, evaluations.codes
    b = {key: _bias(preds, labels, codes) for key, preds in truth.items()}
    c = {(cell.cause, cell.fix): cell for cell in LEVELS}
    a0b0, a1b0, a0b1, a1b1 = c[(3, None)], c[(9, None)], c[(3, AntiAlias(3))], c[(9, AntiAlias(3))]
    per_seed = np.array([b[(a1b1, s)] - b[(a1b0, s)] - b[(a0b1, s)] + b[(a0b0, s)] for s in range(SEEDS)])
    e = analysis.all_effects[_key("interaction")]
    assert analysis.path.family == 4 and e.confidence == pytest.approx(1 - 0.05 / 4, abs=1e-12)  # one look
    half = stats.t.ppf(1 - (1 - e.confidence) / 2, SEEDS - 1) * per_seed.std(ddof=1) / np.sqrt(SEEDS)
    assert e.differences == pytest.approx(per_seed, abs=1e-12)
    assert e.ci == pytest.approx((per_seed.mean() - half, per_seed.mean() + half), abs=1e-9)


def test_the_interactions_test_set_noise_is_that_of_replicates_formed_cell_by_cell():
    evaluations, truth = _made_up()
    spec = _spec()
    e = analyze(spec, evaluations).all_effects[_key("interaction")]
    labels, codes, names = evaluations.labels, evaluations.codes, ["a", "b"]
    weights = image_weights(codes, 2)

    def reps(cell, s):
        preds = truth[(cell, s)]
        return bias_replicates(preds["clean"], preds[PERT], labels, codes, names, spec.estimand, "accuracy", weights)

    c = {(cell.cause, cell.fix): cell for cell in LEVELS}
    sign = {(3, None): 1, (9, None): -1, (3, AntiAlias(3)): -1, (9, AntiAlias(3)): 1}
    combined = np.stack([sum(w * reps(c[k], s) for k, w in sign.items()) for s in range(SEEDS)], axis=1)
    expected = shared_variances(combined, np.asarray(e.differences))[-1]
    assert expected > 0 and e.shared_variance == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("layer, levels, settings, says", [
    (["0", "2"], LEVELS, {"reference": LEVELS[1]}, "reference is the cell of both factors' first levels"),
    (each(["0", "2"]), LEVELS, {}, "layer=each"),
    (["0"], LEVELS, {}, r"pass layer=\['0', '2'\]"),
    (["0", "2"], [*LEVELS[:3], 5], {}, "every cell of factorial"),
])
def test_a_factorial_the_audit_cannot_run_is_refused_with_the_fix(layer, levels, settings, says):
    with pytest.raises((InterventionError, AuditConfigError), match=says):
        KernelIntervention(tiny_cnn, layer, levels, input_size=(1, 3, 16, 16),
                           reference=settings.get("reference"))


@pytest.mark.parametrize("make, says", [
    (lambda: factorial(Factor("0", [3, 9]), Factor("0", [None, AntiAlias(3)])), "both factors change '0'"),
    (lambda: Factor("0", [3]), "two or more distinct levels"),
    (lambda: Factor("0", [3, [9]]), "a level is a kernel size"),
    (lambda: factorial(Factor("0", [3, 9]), [None, AntiAlias(3)]), "two Factor"),
])
def test_a_design_that_is_not_two_factors_is_refused(make, says):
    with pytest.raises(InterventionError, match=says):
        make()


@pytest.mark.slow
def test_a_factorial_audit_trains_paired_cells_and_every_report_says_what_the_fix_removes(tmp_path):
    import json

    import torch

    from pytest_kernelbias import TrainConfig, run_audit, synthfaces
    from pytest_kernelbias.reporting._html import render_html
    from pytest_kernelbias.reporting._markdown import render_markdown
    from pytest_kernelbias.reporting._text import summary_lines

    result = run_audit(tiny_cnn, ["0", "2"], LEVELS, data=synthfaces(300, 0, "planted"),
                       test_data=synthfaces(200, 0, "planted", split="test"), seeds=2, progress=None,
                       train_config=TrainConfig(epochs=1, batch_size=32), spectral_cutoff=None,
                       require_learning=False, cache=tmp_path)
    assert result.run.trained == 8 and len(result.all_effects) == 4
    record = {**json.loads(json.dumps(result.to_dict())), "test": "t::factorial", "test_outcome": "passed"}
    (row,) = record["factorial"]
    assert row["cause"] == "0 kernel_size=9" and row["fix"] == "2 anti_alias=3"
    assert row["interaction"][0] == pytest.approx(row["with"][0] - row["without"][0], abs=1e-12)
    assert row["sentence"] in "\n".join(summary_lines([record], width=10_000)).replace("fix: ", "")
    assert "**Fixes**" in render_markdown([record]) and "class='fix'" in render_html([record], {}, {}, {
        "complete": True, "incomplete_reason": None})
    # The image-and-seed bootstrap answers per cell against the reference; a contrast is refused by name.
    assert result.hierarchical_interval(LEVELS[3], n_boot=50).n == 2
    with pytest.raises(AuditConfigError, match="a factorial's cells, not its contrasts"):
        result.hierarchical_interval(next(iter(result.all_effects)).level, n_boot=50)
    # Paired cells: the two cells with k=9 start from the same 9x9 draw, those with k=3 from the conv as built.
    from pytest_kernelbias.prepare import prepare

    intervention = prepare(result.spec).intervention
    built = {(cell.cause, cell.fix): intervention.build(cell, 0) for cell in LEVELS}
    assert torch.equal(built[(9, None)][0].weight, built[(9, AntiAlias(3))][0].weight)
    assert torch.equal(built[(3, None)][0].weight, built[(3, AntiAlias(3))][0].weight)


def test_a_look_of_seeds_auto_decides_the_factorial_family_at_the_looks_level():
    from pytest_kernelbias.analysis._sequential import SequentialDesign, look_confidences

    evaluations, _ = _made_up()
    design = SequentialDesign(3, SEEDS, futility=0.0)  # looks at 3, 4, 5, 6 seeds, none given up early
    spec = _spec(test_noise=False)
    levels = look_confidences(design, 0.95, 4)
    for look, seeds in enumerate((3, 4)):
        items = tuple(ev for ev in evaluations.items if ev.variant.seed < seeds)
        partial = Evaluations(evaluations.labels, evaluations.codes, evaluations.names, items)
        analysis = analyze(spec, partial, design, seeds)
        assert analysis.path.family == 4 and len(analysis.path.looks) == look + 1
        for e in analysis.all_effects.values():
            assert e.n == seeds and e.confidence == pytest.approx(levels[look], abs=1e-12)
