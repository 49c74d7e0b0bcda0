"""`prepare(spec) -> PreparedAudit`: what an audit settles once, before any model trains.

Every check (device, data, model, factory, perturbations, subgroups), the resolved layers and a layer
map's arms, the recipe in force (the preset or the one given, and the lr probe's pick), the test
loaders, the key bases (fingerprints of what the models compute, the data, the trainer and each
perturbation), the executor and the step times of the first estimate. A look of seeds="auto" then
only plans, trains, evaluates and analyzes (audit.py): nothing here runs twice in one audit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from .data import SubgroupDataset, synthfaces
from .evaluation import SubgroupLoaders
from .execution import (
    Executor,
    MemoryStore,
    StepTimes,
    TrainingJob,
    VariantCache,
    audit_threads,
    choose_config,
    choose_executor,
    probe_lr,
    trains_remotely,
)
from .intervention import Each, KernelIntervention
from .plan import KeyBases, key_bases
from .spec import AuditSpec
from .validate import check_data, check_device, check_factory, check_model, check_perturbations, class_count


@dataclass(frozen=True, eq=False)
class PreparedAudit:
    """One audit, checked and resolved: what every look plans, trains, evaluates and analyzes with."""

    spec: AuditSpec  # as it runs: a layer map's arms as its levels, the recipe in force
    intervention: KernelIntervention
    train_data: SubgroupDataset
    test_data: SubgroupDataset
    job: TrainingJob
    loaders: SubgroupLoaders
    bases: KeyBases
    executor: Executor
    why: str  # the executor's choice, in words for the progress output
    store: object  # the VariantStore the executor trains into (a MemoryStore without a cache)
    recipe_source: str  # "given", or "preset batchnorm" / "layernorm" / "none" for train_config="auto"
    lr_probe: dict | None  # the lr probe's record when asked
    step_times: StepTimes


def default_data(config: object, n_train: int = 4000, n_test: int = 2000, seed: int = 0):
    """SynthFaces train/test splits for the named configuration ("planted" or "null")."""
    return synthfaces(n_train, seed, config, "train"), synthfaces(n_test, seed, config, "test")


def _datasets(spec: AuditSpec) -> tuple[SubgroupDataset, SubgroupDataset]:
    if isinstance(spec.data.data, SubgroupDataset):
        return spec.data.data, spec.data.test_data  # type: ignore[return-value]
    return default_data(spec.data.data)


def as_store(cache: object):
    """The store a `cache` setting names: a MemoryStore for None, else a VariantCache (a folder, or one given)."""
    if cache is None:
        return MemoryStore()
    return cache if isinstance(cache, VariantCache) else VariantCache(cache)  # type: ignore[arg-type]


def prepare(spec: AuditSpec, store: object = None) -> PreparedAudit:
    """Every check that can run before training, then what every look shares; `store` defaults to the spec's
    cache (a seeds="auto" audit without one passes the temporary cache its looks share).

    On the audit's one thread, as training is: the fingerprints in the keys and the lr probe's losses are sums
    a thread count would round otherwise, so the keys and the recipe would depend on the caller's threads."""
    with audit_threads():
        return _prepare(spec, store)


def _prepare(spec: AuditSpec, store: object) -> PreparedAudit:
    store = as_store(spec.execution.cache if store is None else store)
    spec, intervention, train_data, test_data = resolve(spec)
    spec, source, probe = _with_recipe(spec, intervention, train_data, store)
    recipe = spec.recipe
    # Where the models train on other machines (Ray), on their devices, this machine checks them on its CPU.
    here = "cpu" if trains_remotely(spec.execution.executor) else recipe.device
    check_model(intervention, train_data, test_data, here, recipe.train_config.batch_size)
    check_factory(intervention, recipe.paired, copies_module=isinstance(spec.target.model, nn.Module))
    check_perturbations(spec.data.perturbations, test_data)
    # check_data has already made sure every training subgroup is in the test set.
    loaders = SubgroupLoaders(test_data, list(spec.data.attributes), spec.data.perturbations, device=recipe.device)
    spec.estimand.check_groups(list(loaders.groups))
    job = TrainingJob(spec.target.model, tuple(intervention.layers), tuple(intervention.levels),
                      intervention.reference, intervention.num_classes, spec.target.init, recipe.paired, train_data,
                      recipe.train_config, recipe.trainer, recipe.device).with_intervention(intervention)
    executor, why = choose_executor(spec.execution, recipe)
    executor.start(job)  # a pool's workers start while the key bases are computed
    return PreparedAudit(spec, intervention, train_data, test_data, job, loaders,
                         key_bases(spec, intervention, train_data, test_data), executor, why,
                         executor.store_for(store), source, probe, StepTimes(job))


def resolve(spec: AuditSpec) -> tuple[AuditSpec, KernelIntervention, SubgroupDataset, SubgroupDataset]:
    """The device and data checked, the model probed and its layers resolved; a layer map's spec gets its arms."""
    target, recipe = spec.target, spec.recipe
    if not trains_remotely(spec.execution.executor):  # a remote task checks its own node's device
        check_device(recipe.device)
    train_data, test_data = check_data(spec, *_datasets(spec))
    num_classes = class_count(train_data, test_data)
    intervention = KernelIntervention(target.model, target.layer, list(target.levels), target.reference,
                                      num_classes=num_classes, init=target.init,
                                      input_size=(1, *test_data.images.shape[1:]))
    if isinstance(target.layer, Each):
        spec = spec.with_arms(intervention.levels, intervention.reference)
    return spec, intervention, train_data, test_data


def _with_recipe(spec: AuditSpec, intervention: KernelIntervention, train_data: SubgroupDataset,
                 store) -> tuple[AuditSpec, str, dict | None]:
    """The spec with the recipe it trains with (the preset for "auto", then the lr probe's pick when asked),
    where that recipe came from, and the probe's record."""
    recipe = spec.recipe
    with torch.random.fork_rng(devices=[]):  # building the reference draws weights: the caller's stream stays
        config, source = choose_config(recipe.train_config, intervention.build(intervention.reference, 0))
    probe = None
    if recipe.lr_probe:
        config, probe = probe_lr(config, intervention, train_data, recipe.device, store)
    return replace(spec, recipe=replace(recipe, train_config=config)), source, probe
