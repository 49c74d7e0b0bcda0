"""The audit pipeline: spec -> plan -> execute -> evaluate -> analyze -> result.

Each step lives in its own module; this one only connects them, so changing
one step (a new executor, estimand or measurement) never touches the others.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Mapping, Sequence

from .analysis import Analysis, SequentialDesign, SequentialPath, analyze, chance_text
from .errors import AuditConfigError
from .evaluation import EvaluationJob, SubgroupLoaders, evaluate_plan, example_images
from .execution import (
    AUDIT_THREADS,
    TrainingJob,
    VariantCache,
    audit_threads,
    fit_max_seeds,
    minutes,
    parse_budget,
    pending,
    read_estimate,
    variant_key,
    write_estimate,
)
from .intervention import Each, level_label
from .plan import Plan, make_plan
from .prepare import PreparedAudit, default_data, prepare
from .result import AuditResult, AuditSetup, Looks, RunRecord
from .spec import AuditSpec

__all__ = ["default_data", "execute", "execute_sequential", "prepare", "prepare_plan", "run_audit"]

def prepare_plan(spec: AuditSpec) -> tuple[Plan, TrainingJob, SubgroupLoaders]:
    """A fixed audit's plan, job and loaders, every check run: what it would train, without training."""
    prepared = prepare(spec)
    return make_plan(prepared), prepared.job, prepared.loaders


def execute(spec: AuditSpec) -> AuditResult:
    """Run the audit `spec` describes and return its frozen result (no assertion is made).

    Training and evaluation run on one torch thread (the caller's count is
    restored after), so the numbers never depend on the thread or worker count.
    With seeds="auto" the audit runs look after look (see `execute_sequential`).
    """
    if spec.recipe.design is not None:
        return execute_sequential(spec)
    return _execute_look(prepare(spec), spec.recipe.seeds)


def execute_sequential(spec: AuditSpec) -> AuditResult:
    """seeds="auto": min_seeds per level, then one round more while the family is undecided, up to max_seeds.

    Each look is an ordinary audit with that many seeds whose family is decided by `run_sequential`
    under the whole design (so its intervals are at the look's level and stay valid however early it
    stops); the store keeps earlier seeds, so a look trains only the new ones. The result is the last
    look's, with the path in `result.sequential`.
    """
    execution = spec.execution
    store = execution.cache if execution.cache is not None else VariantCache.temporary_cache()
    prepared = prepare(spec, store)
    prepared, per_seed = _within_budget(prepared)
    spec, design = prepared.spec, prepared.spec.recipe.design
    trained: list[int] = []
    stopped: dict[str, int] = {}  # a layer map's settled arms: layer -> the seeds per level it stopped at
    for k, n in enumerate(design.looks, 1):
        try:
            result = _execute_look(prepared, n, design, stopped)
        except BaseException:
            if execution.ledger is not None:
                execution.ledger.add_earlier(sum(trained))
            raise
        trained.append(result.run.trained)
        stopped = {arm: at for arm, at in result.path.arm_stops if arm is not None and at is not None}
        if execution.progress is not None:
            execution.progress(_look_line(result.path, k, n, spec.family))
        if result.path.verdict != "continue":
            break
    # Counted over every look: a seed trained at an earlier look of this audit is not a cache hit of it.
    run = replace(result.run, trained=sum(trained), from_cache=result.run.models - sum(trained))
    budget = None if per_seed is None else _budget_record(spec, result.path, per_seed, execution.progress)
    return replace(result, run=run, looks=Looks(tuple(trained), budget))


def _within_budget(prepared: PreparedAudit) -> tuple[PreparedAudit, float | None]:
    """seeds="auto" with a budget: max_seeds cut to what the first estimate says trains in it, and the estimated
    seconds per seed of every level. Decided before any model trains, from timing alone, and kept in the
    cache folder: a rerun with the same cache runs the same design, so it gives the same verdict."""
    spec = prepared.spec
    budget, recipe = parse_budget(spec.recipe.budget), spec.recipe
    if budget is None:
        return prepared, None
    first = [v for v in make_plan(prepared, recipe.max_seeds).variants if v.seed == recipe.seed_offset]
    what = variant_key({"keys": [v.key for v in first], "parallel": prepared.executor.parallel})
    memo = prepared.store.memo_path(f"budget-{what}.json")
    per_seed = read_estimate(memo)
    if per_seed is None:
        with audit_threads():  # the audit's one thread: torch's default threads crawl on a busy machine
            per_seed = prepared.step_times.estimate(first, prepared.executor.parallel, spec.execution.progress)
        if per_seed is None:
            raise AuditConfigError("budget= needs the default trainer, whose steps the audit can time before "
                                   "training; with your own trainer, set max_seeds instead")
        write_estimate(memo, per_seed)
    fit = fit_max_seeds(budget, per_seed, 0, recipe.min_seeds, recipe.max_seeds)
    if spec.execution.progress is not None:
        spec.execution.progress(f"setup: budget {minutes(budget)}: first estimate {minutes(per_seed)} per seed of "
                                f"every level: max_seeds={fit} (asked {recipe.max_seeds})")
    return replace(prepared, spec=replace(spec, recipe=replace(recipe, max_seeds=fit))), per_seed


def _budget_record(spec: AuditSpec, path: SequentialPath, per_seed: float, progress) -> dict:
    """What the budget allowed, and when undecided, how long the seeds that would settle it take here."""
    need = path.fixed_seeds
    record = {"seconds": parse_budget(spec.recipe.budget), "per_seed": per_seed, "max_seeds": spec.recipe.max_seeds,
              "seeds_to_settle": need, "seconds_to_settle": None if need is None else need * per_seed}
    if path.verdict == "undecided" and progress is not None:
        more = ("no seed count can settle it" if need is None else
                f"a fixed design needs about {need} seeds per level, about {minutes(need * per_seed)} of training here")
        progress(f"setup: undecided within budget {minutes(record['seconds'])} (max_seeds={spec.recipe.max_seeds}); "
                 f"{more}")
    return record


def _look_line(path: SequentialPath, k: int, n: int, family: int) -> str:
    """The progress line after a look: its intervals, the decision, and a map's settled arms."""
    last = path.looks[-1]
    chance = last.settle_chance
    odds = "" if chance is None else f" (chance max_seeds settles it: {chance_text(chance)})"
    each = "" if family == 1 else f" (each of {family} effects)"
    arms = [a for a in path.arm_outcomes() if a["arm"] is not None]
    settled = "" if not arms else "; arms settled: " + (", ".join(
        f"{a['arm']} {a['verdict']} at {a['seeds']}" for a in arms if a["seeds"] is not None) or "none")
    return (f"setup: seeds=auto look {k}/{len(path.design.looks)}: {n} seeds per level, "
            f"{last.confidence:.2%} intervals{each}: {path.verdict}{odds}{settled}")


def _execute_look(prepared: PreparedAudit, seeds: int, design: SequentialDesign | None = None,
                  stopped: Mapping[str, int] | None = None) -> AuditResult:
    """One look: plan `seeds` per level, train what the store lacks, evaluate, analyze."""
    started = time.time()
    spec, executor, store = prepared.spec, prepared.executor, prepared.store
    execution = spec.execution
    with audit_threads():
        plan = make_plan(prepared, seeds, stopped)
        if execution.progress is not None:
            execution.progress(_setup_line(prepared, plan))
        keys = [v.key for v in plan.variants]
        before = {k for k in keys if store.holds(k)}
        try:
            evaluations, environments = _train_and_evaluate(prepared, plan)
            analysis = analyze(spec, evaluations, design, seeds)
        except BaseException:  # the report tells what this audit trained before it stopped
            if execution.ledger is not None:
                new = {k for k in keys if store.holds(k)} - before
                execution.ledger.stopped_at(len(keys), len(new), len(before), _cache_path(store))
            raise
    from_cache = sum(ev.from_cache for ev in evaluations.items)
    run = RunRecord(models=len(plan.variants), trained=len(plan.variants) - from_cache, from_cache=from_cache,
                    evaluated=sum(ev.measured for ev in evaluations.items), cache=_cache_path(store),
                    executor=execution.executor, executor_used=executor.name, workers=executor.parallel,
                    threads=AUDIT_THREADS, seconds=round(time.time() - started, 1), environments=environments)
    return _result(prepared, analysis, evaluations, run)


def evaluation_job(prepared: PreparedAudit) -> EvaluationJob:
    """What measuring each of the audit's variants needs: its test set, intervened layers and mechanism."""
    spec = prepared.spec
    return EvaluationJob(prepared.loaders, tuple(prepared.job.layers), spec.mechanism,
                         isinstance(spec.target.layer, Each))


def _train_and_evaluate(prepared: PreparedAudit, plan: Plan):
    """The plan's evaluations (training what the store lacks), and on Ray which environments trained them."""
    spec, executor, store, job = prepared.spec, prepared.executor, prepared.store, prepared.job
    execution, evaluation = spec.execution, evaluation_job(prepared)
    ahead = executor.train_ahead(plan.variants, job, store, execution.retrain, execution.progress,
                                 evaluation=evaluation)
    evaluations = evaluate_plan(plan, job, store, evaluation, ahead.trained, execution.retrain,
                                execution.progress, ahead.evaluated, ahead.measured)
    return evaluations, executor.after_run(plan.variants, store, execution)


def _setup_line(prepared: PreparedAudit, plan: Plan) -> str:
    """The first line of a look, before any model trains: what will train, on what, and a first time estimate."""
    execution, parallel = prepared.spec.execution, prepared.executor.parallel
    todo = pending(plan.variants, prepared.store, execution.retrain)
    levels = len({v.level for v in plan.variants})
    guess = prepared.step_times.estimate(todo, parallel, execution.progress)
    estimate = "" if guess is None else (f"; first estimate {guess:.0f}s of training from one timed step per "
                                         "level")
    return (f"setup: {len(plan.variants)} models ({levels} levels x {len(plan.variants) // levels} runs), "
            f"{len(todo)} to train and {len(plan.variants) - len(todo)} in the cache, on {prepared.job.device}; "
            f"{prepared.why}{estimate}")


def _cache_path(store) -> str | None:
    return str(store.root) if store.root is not None and not store.temporary else None


def _result(prepared: PreparedAudit, analysis: Analysis, evaluations, run: RunRecord) -> AuditResult:
    """The frozen result: the spec, what preparing settled, the numbers and how it ran."""
    intervention, loaders = prepared.intervention, prepared.loaders
    setup = AuditSetup(
        intervention=intervention.describe(), reference=intervention.reference,
        levels=tuple(level_label(v) for v in intervention.levels), intervention_table=tuple(intervention.table),
        layers=intervention.layers, layer_kernels=intervention.own_kernels(),
        layer_inputs={n: list(hw) for n, hw in intervention.input_sizes.items()},
        data=prepared.train_data.name, group_counts=loaders.counts(), recipe_source=prepared.recipe_source,
        lr_probe=prepared.lr_probe, fingerprints=_fingerprints(evaluations), examples=example_images(loaders),
        test_labels=evaluations.labels, test_codes=evaluations.codes, test_names=evaluations.names)
    return AuditResult(spec=prepared.spec, setup=setup, analysis=analysis, run=run)


def _fingerprints(evaluations) -> dict:
    """What the cache keyed this audit by (docs/cache-and-cluster.md): the model, trainer, cache_key and each
    condition, so a report says which behaviour its numbers belong to."""
    variant = evaluations.items[0].variant
    weights, conditions = variant.weights_spec, variant.eval_spec.get("conditions", [])
    return {"model": weights.get("model"), "trainer": weights.get("trainer"), "cache_key": weights.get("cache_key"),
            "conditions": {name: fingerprint for name, fingerprint in conditions}}


def run_audit(model: object, layer: object = None, levels: Sequence | None = None, **settings: Any) -> AuditResult:
    """Train every (level, seed) model, measure each subgroup clean and perturbed, estimate effects.

    `run_audit(model, layer, levels, **settings)` or `run_audit(spec)` with an `AuditSpec`.
    `model` is a zero-argument builder, a timm model name, or a module to copy;
    `layer` an exact name, glob or list; `levels` kernel sizes or interventions,
    the first being the reference. No assertion is made: call
    `.assert_below()` on the result. The settings, each checked before any
    model trains (an unknown name is refused with the valid ones):

    - data: `data` (a SynthFaces configuration name, default "planted", or a
      training `SubgroupDataset` with `test_data`), `attributes`, `perturbation`
      (one, a list for a sweep, or a dict by name; default LowPass(0.4)).
    - target: `reference` (default: the first level), `init` ("fresh").
    - recipe: `seeds` ("auto"; or a fixed count >= 2), `budget` (for "auto", e.g. "10m"), `train_config`
      ("auto": the preset for the model's normalization layers; or a `TrainConfig`), `lr_probe` (False), `trainer`
      (your own `train(model, data, seed)`), `paired` (True), `device` ("auto": cuda when available).
    - estimand: `bias` ("spread", "contrast", "to_reference"), `contrast`
      (two subgroups, or the reference subgroup), `outcome` ("drop" or "perturbed").
    - inference: `metric` ("accuracy", "error", "balanced_accuracy", "tpr",
      "fpr"), `confidence` (0.95), `interval` ("t", "bootstrap",
      "permutation"), `correction` ("holm", "bh", "none"), `threshold` (0.05),
      `rule` ("evidence", "estimate", "upper", "lower"), `strict` (False: a warn or undecided
      verdict fails too when True), `test_noise` (True), `warn_tier` (True), `placebos`
      (("shuffle",); add "aa" to train `seeds` more reference models).
    - mechanism: `spectral_cutoff` (0.5 of Nyquist; None skips spectra),
      `heat_map` (e.g. dict(eps=4.0, step=4, images=256)).
    - execution: `cache` (a folder or `VariantCache`), `retrain` (False),
      `executor` ("local", "serial", "seed-batched", "pool", "ray"),
      `workers` (one per usable core; > 1 makes "local" a process pool), `ray_address`,
      `progress` (a function of one message; None is silent), `name`.
    """
    if isinstance(model, AuditSpec):
        if layer is not None or levels is not None or settings:
            raise TypeError("run_audit(spec) takes the spec alone; put every setting in the AuditSpec")
        return execute(model)
    if layer is None or levels is None:
        raise AuditConfigError("run_audit needs model, layer and levels, e.g. run_audit('resnet18', 'conv1', [7, 3])")
    return execute(AuditSpec.from_kwargs(model, layer, levels, **settings))

