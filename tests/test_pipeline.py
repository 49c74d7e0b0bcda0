"""The audit as a pipeline: a validated spec, a plan, a pure analysis, and a result that never changes."""

import dataclasses
import warnings

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from pytest_kernelbias import (
    AuditConfigError,
    KernelAuditWarning,
    KernelBiasError,
    ModelsDidNotLearnError,
    TrainConfig,
    run_audit,
    synthfaces,
)
from pytest_kernelbias.analysis._analyze import analyze
from pytest_kernelbias.errors import InputDataError
from pytest_kernelbias.evaluation._evaluate import Evaluation, Evaluations
from pytest_kernelbias.execution._base import choose_executor
from pytest_kernelbias.plan import Variant
from pytest_kernelbias.result import AuditFailure, Verdict
from pytest_kernelbias.spec import AUDIT_KEYWORDS, AuditSpec, TargetSpec

from .conftest import tiny_cnn

TRAIN = dict(data=synthfaces(300, 0, "planted"), test_data=synthfaces(200, 0, "planted", split="test"),
             train_config=TrainConfig(epochs=1, batch_size=32), progress=None,
             # One epoch on 300 images tests the plumbing, not the task: these models stay near chance.
             require_learning=False)


# --- the spec: every setting checked when it is built, before any data or model exists --------------------


@pytest.mark.parametrize("setting, value, message", [
    ("seeds", 1, "at least 2 seeds"),
    ("threshold", -1, "threshold must be a finite number >= 0"),
    ("rule", "lowr", "rule must be one of"),
    ("interval", "wald", "interval must be one of"),
    ("correction", "bonferroni", "correction must be one of"),
    ("metric", "f1", "metric must be one of"),
    ("confidence", 1.5, "confidence must lie in"),
    ("placebos", ("aa", "bogus"), "unknown placebo 'bogus'"),
    ("bias", "ratio", "bias must be one of"),
    ("outcome", "clean", "outcome must be one of"),
    ("init", "zeros", "init must be one of"),
    ("executor", "dask", "executor must be one of"),
    ("workers", 0, "workers must be an int >= 1"),
    ("spectral_cutoff", 2.0, "spectral_cutoff must be a fraction of Nyquist"),
    ("heat_map", {"eps": 4.0, "stride": 2}, "heat_map has unknown key 'stride'"),
    ("train_config", {"epochs": 2}, "train_config must be a TrainConfig"),
    ("device", "gpu0", "is not a torch device"),
    ("data", "planted-v2", "not a SynthFaces configuration"),
    ("attributes", [], "attributes must name one or more"),
])
def test_every_bad_setting_is_refused_naming_the_setting_and_the_value(setting, value, message):
    with pytest.raises(KernelBiasError, match=message):
        AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], **{setting: value})


def test_a_misspelt_setting_names_the_closest_valid_one_and_lists_them_all():
    with pytest.raises(AuditConfigError, match="unknown setting 'seed'; did you mean 'seeds'") as info:
        run_audit(tiny_cnn, "0", [3, 5], seed=4, **TRAIN)
    assert all(name in str(info.value) for name in AUDIT_KEYWORDS)


def test_the_spec_is_frozen_and_run_audit_accepts_it_whole():
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], seeds=3, bias="contrast",
                                 contrast=("skin_tone=dark", "skin_tone=light"))
    assert spec.recipe.seeds == 3 and spec.estimand.contrast == ("skin_tone=dark", "skin_tone=light")
    assert spec.target == TargetSpec(tiny_cnn, "0", (3, 5)) and spec.target.treatments == [5]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.recipe.seeds = 10  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes the spec alone"):
        run_audit(spec, "0", [3, 5])


# --- analyze: a pure function, checked against numpy on made-up predictions ---------------------------------


def _made_up(seeds: int = 5, n: int = 400, levels=(3, 7)) -> tuple[Evaluations, dict]:
    """Predictions where level 7 loses more accuracy under the perturbation in group "b" than in "a"."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    codes = (np.arange(n) % 2).astype(np.intp)  # alternate images between the two groups
    items, truth = [], {}
    for seed in range(seeds):
        for level in levels:
            clean_ok = rng.random(n) < 0.9
            loss = np.where(codes == 1, 0.1 + 0.02 * (level - 3), 0.1)  # b loses more as k grows
            pert_ok = clean_ok & (rng.random(n) >= loss)
            preds = {"clean": np.where(clean_ok, labels, 1 - labels),
                     "LowPass(0.4)": np.where(pert_ok, labels, 1 - labels)}
            truth[(level, seed)] = preds
            items.append(Evaluation(Variant(level, seed, "audit", f"k{level}s{seed}", "e", seed, "", False, False),
                                    preds))
    return Evaluations(labels, codes, ("a", "b"), tuple(items)), truth


def _numpy_bias(preds: dict, labels, codes, outcome: str, form: str) -> float:
    acc = {c: np.array([np.mean(preds[c][codes == g] == labels[codes == g]) for g in (0, 1)]) for c in preds}
    y = acc["clean"] - acc["LowPass(0.4)"] if outcome == "drop" else acc["LowPass(0.4)"]
    if form == "spread":
        return float(y.max() - y.min())
    if form == "contrast":
        return float(y[1] - y[0])
    d = y - y[0]  # to_reference "a"
    return float(d[np.abs(d).argmax()])


@pytest.mark.parametrize("form, contrast", [("spread", None), ("contrast", ("b", "a")), ("to_reference", "a")])
@pytest.mark.parametrize("outcome", ["drop", "perturbed"])
def test_analyze_gives_the_paired_mean_of_biases_computed_with_numpy(form, contrast, outcome):
    evaluations, truth = _made_up()
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 7], seeds=5, bias=form, contrast=contrast, outcome=outcome,
                                 spectral_cutoff=None)
    effect = analyze(spec, evaluations).all_effects[("LowPass(0.4)", 7)]
    labels, codes = evaluations.labels, evaluations.codes
    d = [_numpy_bias(truth[(7, s)], labels, codes, outcome, form) - _numpy_bias(truth[(3, s)], labels, codes,
                                                                                    outcome, form) for s in range(5)]
    # Means of at most 5 sums of 200 indicators: exact up to float rounding of ~1e-16 per term.
    assert effect.estimate == pytest.approx(np.mean(d), abs=1e-12)
    assert effect.differences == pytest.approx(d, abs=1e-12)


def test_analyze_adjusts_each_family_as_statsmodels_holm_does():
    evaluations, _ = _made_up(levels=(3, 5, 7))
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5, 7], seeds=5, spectral_cutoff=None)
    analysis = analyze(spec, evaluations)
    for family in (list(analysis.all_effects.values()),
                   [e for by_g in analysis.subgroup_effects.values() for e in by_g.values()]):
        expected = multipletests([e.p_value for e in family], method="holm")[1]
        assert [e.p_adjusted for e in family] == pytest.approx(expected, abs=1e-12)


# --- a real audit: the frozen result, its verdicts, and the two bugs the restructuring fixed ----------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("pipeline-cache")


@pytest.fixture(scope="module")
def result(cache):
    return run_audit(tiny_cnn, "0", [3, 5], seeds=3, cache=cache, spectral_cutoff=None, **TRAIN)


def test_assert_below_returns_or_raises_a_verdict_and_changes_nothing(result):
    before = result.to_dict()
    verdict = result.assert_below(threshold=1.0, rule="estimate")
    assert isinstance(verdict, Verdict) and verdict.passed and verdict.threshold == 1.0
    with pytest.raises(AuditFailure) as failed:
        result.assert_below(threshold=0.0, rule="estimate")
    assert failed.value.verdict.overall == "fail" and failed.value.verdict.threshold == 0.0
    assert result.to_dict() == before and result.threshold == 0.05
    assert result.to_dict(failed.value.verdict)["effects"][0]["threshold"] == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.threshold = 0.1  # type: ignore[misc]


@pytest.mark.parametrize("bias, contrast, outcome", [
    ("spread", None, "drop"), ("spread", None, "perturbed"),
    ("contrast", ("skin_tone=dark", "skin_tone=light"), "drop"),
    ("contrast", ("skin_tone=dark", "skin_tone=light"), "perturbed"),
    ("to_reference", "skin_tone=light", "drop"), ("to_reference", "skin_tone=light", "perturbed"),
])
def test_hierarchical_interval_estimates_the_audits_own_estimand(cache, result, bias, contrast, outcome):
    # Same cache: the weights of `result` are reused; only the estimand differs.
    audit = run_audit(tiny_cnn, "0", [3, 5], seeds=3, cache=cache, spectral_cutoff=None, bias=bias,
                      contrast=contrast, outcome=outcome, **TRAIN)
    assert audit.settings["trained"] == 0
    h = audit.hierarchical_interval(n_boot=200)
    # With every image weighted once, the bootstrap's point is the audit's effect: same counts, same formula.
    assert h.estimate == pytest.approx(audit.effects[5].estimate, abs=1e-12)
    assert h.ci[0] <= h.estimate <= h.ci[1] and audit.bias in h.label


@pytest.mark.slow
def test_an_aa_audit_then_more_seeds_on_the_same_cache_measures_every_spectrum(tmp_path):
    # The A/A audit stores seeds 2 and 3 of the reference without spectra; the 4-seed audit needs them measured.
    aa = run_audit(tiny_cnn, "0", [3, 5], seeds=2, placebos=("aa",), cache=tmp_path, spectral_cutoff=0.5,
                   **TRAIN)
    assert aa.placebos["A/A"].n == 2
    more = run_audit(tiny_cnn, "0", [3, 5], seeds=4, cache=tmp_path, spectral_cutoff=0.5, **TRAIN)
    assert more.settings["from_cache"] == 6 and more.settings["trained"] == 2  # only (5, seed 2..3) are new
    (by_group,) = more.spectral_effects.values()
    assert all(e.n == 4 for e in by_group.values())
    assert {r["seed"] for r in more.spectral} == {0, 1, 2, 3}


@pytest.mark.parametrize("name", ["serial", "seed-batched", "pool", "ray"])
def test_every_registered_executor_is_chosen_by_its_name(name):
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], executor=name)
    assert choose_executor(spec.execution, spec.recipe)[0].name == name


@pytest.mark.parametrize("settings, chosen, why", [
    ({"workers": 1}, "serial", "seed batching skipped on CPU"), ({"workers": 2}, "pool", "2 worker processes"),
    ({"workers": 1, "trainer": lambda m, d, s: m}, "serial", "one process"),
    ({"workers": 2, "train_config": TrainConfig(seed_batching="vmap")}, "seed-batched", "seed_batching='vmap'"),
    ({"workers": 2, "train_config": TrainConfig(seed_batching="sequential")}, "pool", "2 worker processes"),
])
def test_local_picks_pool_seed_batched_or_serial_from_the_recipe(settings, chosen, why):
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], **settings)
    executor, reason = choose_executor(spec.execution, spec.recipe)
    assert executor.name == chosen and why in reason and "1 torch thread per training" in reason


def test_a_spread_over_one_subgroup_is_refused_before_any_model_trains():
    def only_dark(data):
        return data.subset(data.subgroup_indices("skin_tone")["skin_tone=dark"])

    trained = []
    with pytest.raises(InputDataError, match=r"give 1 subgroup\(s\) in the test set .*two or more"):
        run_audit(tiny_cnn, "0", [3, 5], seeds=2, data=only_dark(TRAIN["data"]),
                  test_data=only_dark(TRAIN["test_data"]), trainer=lambda m, d, s: trained.append(s) or m,
                  progress=None)
    assert trained == []


# --- designs that cannot decide are refused with the numbers --------------------------------------------------


def _sign_flip_interval_can_be_finite(n: int, alpha: float) -> bool:
    """By enumeration: n equal-signed differences (the most extreme data) give a sign-flip p below alpha."""
    import itertools

    p = np.mean([abs(sum(s)) >= n for s in itertools.product((-1, 1), repeat=n)])
    return bool(p < alpha)


@pytest.mark.parametrize("rule", ["lower", "upper", "evidence"])
@pytest.mark.parametrize("levels", [[3, 5], [3, 5, 7], [3, 5, 7, 9]])
@pytest.mark.parametrize("seeds", [3, 5, 6, 7, 8])
def test_a_sign_flip_design_is_refused_exactly_when_no_data_could_settle_a_verdict(seeds, levels, rule):
    # The per-effect alpha of a fixed design is alpha / m (Bonferroni over the m treated levels).
    decidable = _sign_flip_interval_can_be_finite(seeds, 0.05 / (len(levels) - 1))
    build = lambda: AuditSpec.from_kwargs(tiny_cnn, "0", levels, seeds=seeds, rule=rule,  # noqa: E731
                                          interval="permutation")
    if decidable:
        build()
    else:
        with pytest.raises(AuditConfigError, match=r"can never .*the smallest sign-flip p is .* use >= \d+ seeds"):
            build()
    AuditSpec.from_kwargs(tiny_cnn, "0", levels, seeds=seeds, rule=rule)  # a t interval can always settle


def test_the_refusal_names_the_numbers_and_the_fix():
    with pytest.raises(AuditConfigError, match=r"rule='lower' with interval='permutation' and 6 seeds can never "
                                               r"fail: the smallest sign-flip p is 0\.03125 >= the per-effect alpha "
                                               r"0\.025 \(alpha 0\.05 split over 2 effects\), .* use >= 7 seeds"):
        AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5, 7], seeds=6, rule="lower", interval="permutation")


def test_another_rule_at_assertion_time_reads_the_same_adjusted_intervals(result):
    for rule in ("lower", "upper", "evidence", "estimate"):
        verdict = result.judge(threshold=0.0, rule=rule)
        assert verdict.by_effect == {k: e.verdict(0.0, rule) for k, e in result.all_effects.items()}


def test_rule_upper_warns_when_no_interval_could_be_narrow_enough(result):
    e = result.effects[5]
    half = float(__import__("scipy").stats.t.ppf(0.975, e.n - 1)) * e.sd / np.sqrt(e.n)
    with pytest.warns(KernelAuditWarning, match=r"rule='upper' cannot pass with 3 seeds"):
        try:
            result.assert_below(threshold=half / 2, rule="upper")
        except AuditFailure:
            pass  # failing is expected too: the warning says why it had to


# --- models that did not learn give no verdict; the gap itself is shown beside the effect -------------------


def test_models_at_chance_give_no_verdict_and_the_error_says_how_to_fix_the_recipe():
    evaluations, _ = _made_up()
    rng = np.random.default_rng(3)
    guessed = tuple(dataclasses.replace(ev, preds={c: rng.integers(0, 2, len(p)) for c, p in ev.preds.items()})
                    for ev in evaluations.items)
    at_chance = dataclasses.replace(evaluations, items=guessed)
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 7], seeds=5, spectral_cutoff=None)
    with pytest.raises(ModelsDidNotLearnError, match=r"10 of 10 models did not learn the task.*epochs=.*lr="):
        analyze(spec, at_chance)
    unchecked = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 7], seeds=5, spectral_cutoff=None, require_learning=False)
    assert analyze(unchecked, at_chance).all_effects  # the user may ask for effects anyway


def test_clean_accuracy_and_its_interval_match_an_exact_binomial_reference():
    from statsmodels.stats.proportion import proportion_confint

    evaluations, truth = _made_up()
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 7], seeds=5, spectral_cutoff=None)
    analysis = analyze(spec, evaluations)
    labels, codes = evaluations.labels, evaluations.codes
    for m, ev in zip(analysis.learning, evaluations.items):
        correct = truth[(ev.variant.level, ev.variant.seed)]["clean"] == labels
        assert m.accuracy == correct.mean()
        lo, hi = proportion_confint(correct.sum(), len(correct), alpha=0.05, method="beta")
        assert m.ci == pytest.approx((lo, hi), abs=1e-9)
        assert m.majority == max(np.mean(labels == 0), np.mean(labels == 1))
        acc_b = correct[codes == 1].mean()
        assert m.by_group["b"][0] == pytest.approx(acc_b, abs=1e-15)


def test_the_gap_at_the_reference_is_the_mean_bias_with_its_t_interval():
    from scipy import stats

    evaluations, truth = _made_up()
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 7], seeds=5, spectral_cutoff=None)
    gap = analyze(spec, evaluations).gaps["LowPass(0.4)"]
    b = [_numpy_bias(truth[(3, s)], evaluations.labels, evaluations.codes, "drop", "spread") for s in range(5)]
    ci = stats.ttest_1samp(b, 0.0).confidence_interval(0.95)
    assert gap.estimate == pytest.approx(np.mean(b), abs=1e-12)
    assert gap.ci == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_summary_rows_show_the_gap_and_clean_accuracy_beside_the_effect(result):
    row = result.summary_rows()[0]
    gap = result.gaps["LowPass(0.4)"]
    assert row["gap"] == gap.estimate and (row["gap_ci_low"], row["gap_ci_high"]) == gap.ci
    accs = [m.accuracy for m in result.learning if m.level == "kernel_size=3"]
    assert row["clean_reference"] == pytest.approx(np.mean(accs)) and row["majority"] > 0.4


def test_every_executor_implements_the_protocol_the_pipeline_calls():
    import inspect

    from pytest_kernelbias.execution._base import EXECUTORS, Executor, _load
    from pytest_kernelbias.spec import ExecutionSpec, RecipeSpec

    wanted = inspect.signature(Executor.train_ahead).parameters
    for name in EXECUTORS:
        cls = _load(name)
        executor = cls.from_spec(ExecutionSpec(executor=name, workers=2), RecipeSpec(seeds=2))
        assert executor.name == name and isinstance(executor.parallel, int) and executor.parallel >= 1
        assert list(inspect.signature(cls.train_ahead).parameters) == list(wanted), name
        assert callable(executor.store_for)


def test_a_level_whose_models_predict_as_the_reference_is_flagged_not_read_as_harmless():
    from pytest_kernelbias import KernelAuditWarning

    evaluations, _ = _made_up()
    alike = Evaluations(evaluations.labels, evaluations.codes, evaluations.names, tuple(
        Evaluation(ev.variant, next(e.preds for e in evaluations.items
                                    if e.variant.level == 3 and e.variant.seed == ev.variant.seed))
        for ev in evaluations.items))  # every level-7 model predicts exactly as its seed's reference
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 7], seeds=5, spectral_cutoff=None, require_learning=False)
    with pytest.warns(KernelAuditWarning, match=r"kernel_size=7: its models predict as the reference's on 100\.00%"):
        effect = analyze(spec, alike).all_effects[("LowPass(0.4)", 7)]
    assert effect.estimate == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", KernelAuditWarning)  # models that differ: no such warning
        analyze(spec, evaluations)
