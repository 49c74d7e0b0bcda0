"""Evaluate every variant of a plan on the test set: predictions per condition, spectra, heat maps.

A variant's evaluation is read from the store when its evaluation key matches
(same weights, test set, conditions and measurements); otherwise its model is
obtained from the store (trained there now if the executor left it) and
measured, and the evaluation is stored for the next audit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..data._loaders import SubgroupLoaders
from ..plan import Plan, Variant
from ._mechanism import heat_maps, measure_spectra
from ._metrics import index_codes
from ._predict import CLEAN


@dataclass(frozen=True)
class Evaluation:
    """One variant measured: predicted class per test image per condition, and its mechanism measurements."""

    variant: Variant
    preds: dict[str, np.ndarray]  # condition ("clean" first) -> predicted class per test image
    spectral: tuple[dict, ...] = ()  # per subgroup: level, seed, subgroup, layer, hf_ratio
    kernel: list | None = None  # radial spectrum of the intervened layer's kernels
    heat_map: dict | None = None  # subgroup -> 2-D error rates
    from_cache: bool = False  # weights loaded rather than trained by this audit


@dataclass(frozen=True)
class Evaluations:
    """Everything `analyze` needs: the test labels, subgroup codes, and each variant's evaluation."""

    labels: np.ndarray
    codes: np.ndarray  # subgroup index per test image, into `names`
    names: tuple[str, ...]
    items: tuple[Evaluation, ...] = field(default=())

    def of_role(self, role: str) -> list[Evaluation]:
        return [e for e in self.items if e.variant.role == role]


def _measure(model, variant: Variant, loaders: SubgroupLoaders, layer: str, cutoff: float | None,
             heat_options: dict | None, from_cache: bool) -> Evaluation:
    preds = {cond: p.numpy() for cond, p in loaders.predict(model).items()}
    rows, kernel, heat = (), None, None
    if variant.spectra:
        rows, kernel = measure_spectra(model, layer, variant.level, variant.seed, loaders, cutoff)
    if variant.heat_map:
        heat = heat_maps(model, loaders, heat_options)
    return Evaluation(variant, preds, tuple(rows), kernel, heat, from_cache)


def evaluate_plan(plan: Plan, job, store, loaders: SubgroupLoaders, mechanism, trained_ahead: set[str],
                  retrain: bool, progress: Callable[[str], None] | None) -> Evaluations:
    """Each variant's evaluation, in plan order; `trained_ahead` are keys the executor has just written."""
    items: list[Evaluation] = []
    started = time.time()
    variants: Sequence[Variant] = plan.variants
    for done, v in enumerate(variants, start=1):
        t0 = time.time()
        fresh = v.key in trained_ahead  # written moments ago: a retrain is already satisfied for it
        cached = None if retrain and not fresh else store.load_evaluation(v.key, v.eval_key)
        if cached is not None:
            # Same weights, same test set, same conditions and measurements: the stored evaluation is this model's.
            ev = Evaluation(v, cached["preds"], tuple(cached["spectral"]), cached["kernel"], cached["heat_map"],
                            from_cache=not fresh)
        else:
            model, loaded = store.get_or_train(v.key, lambda v=v: job.build(v),
                                               lambda m, v=v: job.fit(m, v, progress),
                                               {"spec": plan.weights_spec, **v.meta()}, retrain=retrain and not fresh)
            ev = _measure(model.to(loaders.device), v, loaders, job.layers[0], mechanism.spectral_cutoff,
                          mechanism.heat_map, from_cache=loaded and not fresh)
            store.store_evaluation(v.key, v.eval_key, ev.preds,
                                   {"spectral": list(ev.spectral), "kernel": ev.kernel, "heat_map": ev.heat_map})
        items.append(ev)
        if progress is not None:
            # A variant the executor trained moments ago counts as trained by this audit, not as a cache hit.
            how = "loaded from cache+evaluated" if ev.from_cache else "trained+evaluated"
            eta = (time.time() - started) / done * (len(variants) - done)
            progress(f"{v.label} {how} in {time.time() - t0:.1f}s ({done}/{len(variants)} models, ETA {eta:.0f}s)")
    codes, names = index_codes(loaders.groups, len(loaders.data))
    return Evaluations(loaders.data.labels.numpy(), codes, tuple(names), tuple(items))


def example_images(loaders: SubgroupLoaders, per_group: int = 2) -> dict:
    """A few test images per subgroup, clean and under each perturbation, for the report's strip (uint8 lists)."""
    index = torch.cat([idx[:per_group] for idx in loaders.groups.values()])
    x = loaders.data.images[index]
    conds = {CLEAN: x, **{name: p(x) for name, p in loaders.perturbations.items()}}
    for p in loaders.perturbations.values():
        p.reset()
    return {name: (v.clamp(0, 1) * 255).round().to(torch.uint8).tolist() for name, v in conds.items()}
