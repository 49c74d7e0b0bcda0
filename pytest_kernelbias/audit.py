"""The audit: levels x seeds -> trained models -> per-subgroup outcomes -> effects."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .evaluation import _mechanism as mechanism
from .execution._store import VariantCache, source_fingerprint, variant_key
from .execution._ray import train_on_ray
from .data._loaders import SubgroupLoaders, as_perturbations
from .data._subgroups import SubgroupDataset
from .data._synthfaces import synthfaces
from .analysis._effects import METHODS, check_rule, check_seeds, check_threshold
from .errors import AuditConfigError
from .analysis._estimators import dose_response
from .evaluation._predict import CLEAN
from .evaluation._metrics import METRICS, check_defined, group_metric
from .intervention._intervene import KernelIntervention, Level, as_intervention, layer_seed, level_label
from .intervention._select import LayerSpec
from .analysis._multiplicity import CORRECTIONS
from .analysis._outcomes import (
    Outcome, Outcomes, bias_label, check_bias_form, estimate_effects, pairwise_effects, subgroup_effects,
)
from .perturbations import LowPass, Perturbation
from .analysis._placebo import aa_placebo, shuffle_placebo
from .result import AuditResult
from .training._seed_batched import choose_strategy, train_seeds
from .training._trainer import Progress, TrainConfig, train
from .execution._pool import check_picklable, train_in_pool

Trainer = Callable[[nn.Module, SubgroupDataset, int], nn.Module]
PLACEBOS = ("shuffle", "aa")
EXECUTORS = ("local", "ray")  # local: serial, or a process pool with workers > 1


def _stderr(msg: str) -> None:
    print(f"[kernel-audit] {msg}", file=sys.stderr, flush=True)


def default_data(config: str, n_train: int = 4000, n_test: int = 2000, seed: int = 0):
    """SynthFaces train/test splits for the named configuration ("planted" or "null")."""
    return synthfaces(n_train, seed, config, "train"), synthfaces(n_test, seed, config, "test")


def _order_seed(seed: int, level: Level, paired: bool) -> int:
    """The data-order seed of a run: shared by the levels when paired, decorrelated per level when not."""
    return seed if paired else layer_seed(seed, f"order-{level_label(level)}") % (2**31)


def _run_label(name: str, level: Level, seed: int, seeds: int) -> str:
    return f"{name} {level_label(level)} seed {seed + 1}/{seeds}"


def _remote_jobs(runs, store, base_spec, retrain, model, intervention, train_data, train_config, device,
                 trainer, paired, init, name, seeds) -> list[dict]:
    """One self-contained job per (seed, level) not yet cached, for a worker process or a Ray task."""
    jobs = []
    for seed, level in runs:
        key = variant_key({**base_spec, "level": level_label(level), "seed": seed})
        if not retrain and store.has(key):
            continue
        jobs.append({"model": model, "layer": intervention.layers, "levels": intervention.levels,
                     "reference": intervention.reference, "num_classes": intervention.num_classes, "init": init,
                     "level": level, "seed": seed, "paired": paired, "order_seed": _order_seed(seed, level, paired),
                     "data": train_data,
                     "train_config": train_config, "device": str(device), "trainer": trainer,
                     "cache": str(store.root), "key": key, "retrain": retrain,
                     "label": _run_label(name, level, seed, seeds),
                     "meta": {"spec": base_spec, "level": level_label(level), "seed": seed}})
    return jobs


def _train_seed_batched(runs, store, base_spec, retrain, intervention, train_data, train_config, device, paired,
                        name, seeds, progress) -> tuple[set[str], VariantCache | None]:
    """Train the uncached seeds of each level together where that is measured faster.

    Returns the keys trained and the store they went to (a temporary one when
    the audit has none and something was batched).
    """
    todo: dict[str, tuple] = {}
    for seed, level in runs:
        key = variant_key({**base_spec, "level": level_label(level), "seed": seed})
        if retrain or store is None or not store.has(key):
            todo.setdefault(level_label(level), (level, []))[1].append((seed, key))
    trained: set[str] = set()
    for label, (level, pending) in todo.items():
        if len(pending) < 2:
            continue
        if train_config.seed_batching == "auto":
            choice = choose_strategy(lambda: intervention.build(level, 0, paired=paired), train_data, train_config,
                                     device, len(pending))
            if progress is not None:
                progress(f"{name} {label}: {len(pending)} seeds train {choice.strategy}: {choice.reason}")
            if choice.strategy != "vmap":
                continue
        models = [intervention.build(level, seed, paired=paired) for seed, _ in pending]
        train_seeds(models, train_data, [_order_seed(seed, level, paired) for seed, _ in pending], train_config,
                    device, labels=[_run_label(name, level, seed, seeds) for seed, _ in pending], progress=progress)
        if store is None:
            store = VariantCache(tempfile.mkdtemp(prefix="kernel-audit-batch-"))
        for (seed, key), model in zip(pending, models):
            store.put(key, model.state_dict(), {"spec": base_spec, "level": label, "seed": seed, "seed_batched": True})
            trained.add(key)
    return trained, store


def _examples(loaders: SubgroupLoaders, per_group: int = 2) -> dict:
    """A few test images per subgroup, clean and under each perturbation, for the report's strip."""
    index = torch.cat([idx[:per_group] for idx in loaders.groups.values()])
    x = loaders.data.images[index]
    conds = {CLEAN: x, **{name: p(x) for name, p in loaders.perturbations.items()}}
    for p in loaders.perturbations.values():
        p.reset()
    return {name: (v.clamp(0, 1) * 255).round().to(torch.uint8).tolist() for name, v in conds.items()}


def _dose(level: Level) -> float | None:
    """The numeric value of a level for a dose-response slope (None when it sets several things)."""
    change = as_intervention(level)
    values = [v for v in (change.kernel_size, change.dilation, change.stride) if v is not None]
    return float(values[0]) if len(values) == 1 else None


def run_audit(
    model: object,
    layer: LayerSpec,
    levels: Sequence[Level],
    *,
    data: SubgroupDataset | str = "planted",
    test_data: SubgroupDataset | None = None,
    attributes: str | Sequence[str] = "skin_tone",
    perturbation: Perturbation | Sequence[Perturbation] | None = None,
    seeds: int = 6,
    reference: Level | None = None,
    init: str = "fresh",
    train_config: TrainConfig = TrainConfig(),
    trainer: Trainer | None = None,
    device: str | torch.device = "cpu",
    bias: str = "spread",
    contrast: Sequence[str] | None = None,
    outcome: str = "drop",
    metric: str = "accuracy",
    confidence: float = 0.95,
    interval: str = "t",
    threshold: float = 0.05,
    rule: str = "estimate",
    correction: str = "holm",
    warn_tier: bool = True,
    placebos: Sequence[str] = ("shuffle",),
    paired: bool = True,
    spectral_cutoff: float | None = 0.5,
    heat_map: dict | None = None,
    cache: str | os.PathLike | VariantCache | None = None,
    retrain: bool = False,
    workers: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    name: str = "audit",
    progress: Progress | None = _stderr,
) -> AuditResult:
    """Train every (level, seed) model, measure each subgroup clean and perturbed, estimate effects.

    `model` is a zero-argument builder, a timm model name, or a module to copy.
    `data` is a training `SubgroupDataset` (then `test_data` is required) or a
    SynthFaces configuration name. `trainer(model, data, seed)` replaces the
    default trainer. No assertion is made; call `.assert_below()` on the result.

    Effects are paired over seeds (`interval` "t", "bootstrap" or
    "permutation"; p is the exact sign-flip p), adjusted for multiplicity by
    `correction` ("holm", "bh" or "none") across perturbations, levels and
    subgroups. `placebos` may hold "shuffle" (free: subgroup labels permuted
    on the test set) and "aa" (trains `seeds` more reference models).

    With `spectral_cutoff` (a fraction of Nyquist), each model's first
    intervened layer is also measured: the high-frequency share of its output
    maps' power per subgroup, whose paired effects land in `spectral_effects`,
    and its kernels' radial spectrum. `heat_map=dict(eps=4.0, step=4, images=256)`
    adds Yin et al. Fourier heat maps per subgroup for each level's first seed.

    `cache` (a folder or `VariantCache`) stores every trained variant; a later
    audit with the same model source, layers, level, seed, recipe and data
    loads it instead of training. `retrain=True` trains anyway and overwrites.
    `workers > 1` trains the variants in a process pool first (into the cache,
    a temporary one if none is given), then the audit loads them: same numbers.
    `executor="ray"` trains them as Ray tasks instead, on the cluster at
    `ray_address` (HOST:PORT, ray://HOST:PORT or "auto") or, when None, on a
    local Ray instance; the weights come back into the same cache.
    """
    check_seeds(seeds)
    threshold = check_threshold(threshold)
    check_rule(rule)
    if interval not in METHODS:
        raise AuditConfigError(f"interval must be one of {METHODS}, got {interval!r}")
    if correction not in CORRECTIONS:
        raise AuditConfigError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    if executor not in EXECUTORS:
        raise AuditConfigError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    unknown = [p for p in placebos if p not in PLACEBOS]
    if unknown:
        raise AuditConfigError(f"unknown placebo {unknown[0]!r}; choose from {PLACEBOS}")
    if isinstance(data, str):
        train_data, test_set = default_data(data)
    else:
        if test_data is None:
            raise AuditConfigError("pass test_data= alongside a training dataset (the audit never tests on training images)")
        train_data, test_set = data, test_data
    perturbations = as_perturbations(perturbation or LowPass(0.4))
    intervention = KernelIntervention(model, layer, levels, reference,
                                      num_classes=int(max(train_data.labels.max(), test_set.labels.max())) + 1,
                                      init=init, input_size=(1, *test_set.images.shape[1:]))
    # Subgroups seen in training must all be measurable in the test set.
    loaders = SubgroupLoaders(test_set, attributes, perturbations, device=device,
                              expected_groups=list(train_data.subgroup_indices(attributes)))
    check_bias_form(bias, contrast, outcome, list(loaders.groups))
    if metric not in METRICS:
        raise AuditConfigError(f"metric must be one of {METRICS}, got {metric!r}")
    labels = test_set.labels.numpy()
    names = list(loaders.groups)
    codes = loaders.codes()
    outcomes = Outcomes()
    predictions: dict[tuple, dict[str, np.ndarray]] = {}
    spectral: list[dict] = []
    kernels: dict[str, list] = {}
    maps: dict[str, dict] = {}
    runs = [(seed, level) for seed in range(seeds) for level in intervention.levels]
    if "aa" in placebos:  # fresh seeds for the reference level only
        runs += [(seed, intervention.reference) for seed in range(seeds, 2 * seeds)]
    aa_outcomes = Outcomes()
    store = cache if isinstance(cache, VariantCache) or cache is None else VariantCache(cache)
    base_spec = {"model": source_fingerprint(model), "layers": intervention.layers, "init": init, "paired": paired,
                 "train": train_config.recipe(), "data": train_data.fingerprint(),
                 "trainer": "default" if trainer is None else source_fingerprint(trainer),
                 "device": torch.device(device).type}
    # What a stored evaluation depends on besides the weights.
    eval_spec = {"test": test_set.fingerprint(), "attributes": loaders.attributes, "conditions": list(perturbations),
                 "spectral_cutoff": spectral_cutoff, "spectral_images": 256}
    n_cached = 0
    started = time.time()
    trained_ahead: set[str] = set()
    if workers > 1 or executor == "ray":
        if store is None:
            store = VariantCache(tempfile.mkdtemp(prefix="kernel-audit-pool-"))
        check_picklable(model=model, layer=layer, trainer=trainer)
        jobs = _remote_jobs(runs, store, base_spec, retrain, model, intervention, train_data, train_config, device,
                            trainer, paired, init, name, seeds)
        if executor == "ray":
            train_on_ray(jobs, store, ray_address, progress=progress)
        else:
            train_in_pool(jobs, workers, progress)
        trained_ahead = {job["key"] for job in jobs}
    elif trainer is None and seeds > 1 and train_config.seed_batching != "sequential":
        trained_ahead, store = _train_seed_batched(runs, store, base_spec, retrain, intervention, train_data,
                                                   train_config, device, paired, name, seeds, progress)
    loop_started = time.time()  # the ETA extrapolates this loop, not the training done ahead of it
    for done, (seed, level) in enumerate(runs, start=1):
        label = _run_label(name, level, seed, seeds) + (" (A/A placebo)" if seed >= seeds else "")
        order_seed = _order_seed(seed, level, paired)
        t0 = time.time()

        def fit(m, order_seed=order_seed, label=label):
            if trainer is None:
                return train(m, train_data, order_seed, train_config, device, label, progress=progress)
            return trainer(m, train_data, order_seed)

        build = (lambda level=level, seed=seed: intervention.build(level, seed, paired=paired))
        key = cached = None
        fresh = False
        if store is not None:
            key = variant_key({**base_spec, "level": level_label(level), "seed": seed})
            eval_key = variant_key({"variant": key, **eval_spec, "heat_map": heat_map if seed == 0 else None})
            fresh = key in trained_ahead  # written moments ago: --retrain is already satisfied for it
            cached = None if retrain and not fresh else store.load_evaluation(key, eval_key)
        if cached is not None:
            # Same weights, same test set, same conditions: the stored evaluation is this model's.
            hit, preds = True, cached["preds"]
            spec_rows, kernel, heat = cached["spectral"], cached["kernel"], cached["heat_map"]
        else:
            if store is None:
                trained, hit = fit(build()), False
            else:
                meta = {"spec": base_spec, "level": level_label(level), "seed": seed, "label": label}
                trained, hit = store.get_or_train(key, build, fit, meta, retrain=retrain and not fresh)
                trained.to(device)
            preds = {cond: p.numpy() for cond, p in loaders.predict(trained).items()}
            spec_rows, kernel, heat = [], None, None
            if spectral_cutoff is not None and seed < seeds:
                spec_rows, kernel = mechanism.measure_spectra(trained, intervention, level, seed, loaders,
                                                              spectral_cutoff)
            if heat_map is not None and seed == 0:
                heat = mechanism.heat_maps(trained, loaders, heat_map)
            if store is not None:
                store.store_evaluation(key, eval_key, preds, {"spectral": spec_rows, "kernel": kernel, "heat_map": heat})
        n_cached += hit and key not in trained_ahead
        target = outcomes if seed < seeds else aa_outcomes
        # All conditions and subgroups of this model in one vectorized count.
        values = check_defined(group_metric(np.stack(list(preds.values())), labels, codes, len(names), metric),
                               names, metric)
        by_cond = dict(zip(preds, values))
        for pert in perturbations:
            for j, g in enumerate(names):
                target.add(Outcome(level, seed, g, pert, float(by_cond[CLEAN][j]), float(by_cond[pert][j])))
        if seed < seeds:
            predictions[(level, seed)] = preds
            spectral += spec_rows
            if kernel is not None:
                kernels.setdefault(level_label(level), []).append(torch.tensor(kernel))
            if heat is not None:
                maps[level_label(level)] = heat
        if progress is not None:
            how = "loaded from cache+evaluated" if hit else "trained+evaluated"
            eta = (time.time() - loop_started) / done * (len(runs) - done)
            progress(f"{label} {how} in {time.time() - t0:.1f}s ({done}/{len(runs)} models, ETA {eta:.0f}s)")

    ref = intervention.reference
    stats_kw = dict(confidence=confidence, method=interval)
    all_effects, by_group, pairs, doses = {}, {}, {}, {}
    for pert in perturbations:
        for level, e in estimate_effects(outcomes, ref, pert, bias, contrast, outcome, **stats_kw).items():
            all_effects[(pert, level)] = e
        for level, effects in subgroup_effects(outcomes, ref, pert, outcome, **stats_kw).items():
            by_group[(pert, level)] = effects
        for level, effects in pairwise_effects(outcomes, ref, pert, outcome, **stats_kw).items():
            pairs[(pert, level)] = effects
        dose_values = [_dose(level) for level in intervention.levels]
        if len(intervention.levels) >= 3 and None not in dose_values:
            b = np.array([[outcomes.bias(level, s, pert, bias, contrast, outcome) for s in range(seeds)]
                          for level in intervention.levels])
            doses[pert] = dose_response(dose_values, b, confidence,
                                        label=f"slope of {bias_label(bias, contrast, outcome)} per unit of "
                                              f"{str(as_intervention(intervention.levels[0])).split('=')[0]} under {pert}")
    first_pert, first_level = next(iter(perturbations)), intervention.treatments[0]
    placebo_effects = {}
    if "shuffle" in placebos:
        placebo_effects["subgroup-shuffle"] = shuffle_placebo(
            predictions, labels, {g: idx.numpy() for g, idx in loaders.groups.items()}, ref, first_level,
            first_pert, bias, contrast, outcome, metric=metric, **stats_kw)
    if "aa" in placebos:
        placebo_effects["A/A"] = aa_placebo(
            [outcomes.bias(ref, s, first_pert, bias, contrast, outcome) for s in range(seeds)],
            [aa_outcomes.bias(ref, s, first_pert, bias, contrast, outcome) for s in range(seeds, 2 * seeds)],
            confidence=confidence, method=interval,
            label=f"placebo A/A: {level_label(ref)} on seeds {seeds}..{2 * seeds - 1} vs 0..{seeds - 1} under {first_pert}")
    return AuditResult(
        name=name, intervention=intervention.describe(), perturbation=first_pert, data=train_data.name,
        group_counts=loaders.counts(), outcomes=outcomes, all_effects=all_effects, reference=ref,
        bias=bias_label(bias, contrast, outcome), threshold=threshold, rule=rule,
        settings={"seeds": seeds, "levels": [level_label(v) for v in intervention.levels],
                  "intervention_table": list(intervention.table), "layers": intervention.layers,
                  "attributes": loaders.attributes, "train": train_config.as_dict(), "device": str(device),
                  "paired": paired, "metric": metric, "interval": interval, "confidence": confidence, "contrast": contrast,
                  "placebos": list(placebos), "spectral_cutoff": spectral_cutoff,
                  "models": len(runs), "from_cache": n_cached, "trained": len(runs) - n_cached,
                  "cache": str(store.root) if store is not None else None,
                  "executor": executor if executor == "ray" else ("pool" if workers > 1 else "serial"),
                  "seconds": round(time.time() - started, 1)},
        subgroup_effects=by_group, pairwise=pairs, dose_response=doses, placebos=placebo_effects,
        spectral=spectral,
        spectral_effects=mechanism.spectral_effects(spectral, intervention, seeds, confidence, interval, spectral_cutoff)
        if spectral else {},
        kernel_spectra={k: torch.stack(v).mean(0).tolist() for k, v in kernels.items()}, heat_maps=maps,
        examples=_examples(loaders), correction=correction, warn_tier=warn_tier, predictions=predictions,
        test_labels=labels,
        test_groups={g: idx.numpy() for g, idx in loaders.groups.items()},
    )
