"""Evaluate every variant of a plan on the test set: predictions per condition, spectra, heat maps.

A variant's evaluation is read from the store when its evaluation key matches
(same weights, test set, conditions and measurements); otherwise its model is
obtained from the store (trained there now if the executor left it) and
measured, and the evaluation is stored for the next audit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch

from .._variant import Plan, Variant
from ..execution import eta_text
from ..intervention import level_label
from ._loaders import SubgroupLoaders
from ._mechanism import heat_maps, measure_spectra, spectral_layers
from ._metrics import index_codes
from ._predict import CLEAN


@dataclass(frozen=True)
class Evaluation:
    """One variant measured: predicted class per test image per condition, and its mechanism measurements."""

    variant: Variant
    preds: dict[str, np.ndarray]  # condition ("clean" first) -> predicted class per test image
    spectral: tuple[dict, ...] = ()  # per subgroup: level, seed, subgroup, layer, hf_ratio
    kernel: list | dict | None = None  # radial spectrum of the measured layer's kernels; layer -> spectrum for several
    heat_map: dict | None = None  # subgroup -> 2-D error rates
    from_cache: bool = False  # weights loaded rather than trained by this audit
    measured: bool = True  # measured by this audit (here or in its workers), not read from a stored evaluation


@dataclass(frozen=True)
class Evaluations:
    """Everything `analyze` needs: the test labels, subgroup codes, and each variant's evaluation."""

    labels: np.ndarray
    codes: np.ndarray  # subgroup index per test image, into `names`
    names: tuple[str, ...]
    items: tuple[Evaluation, ...] = field(default=())

    def of_role(self, role: str) -> list[Evaluation]:
        return [e for e in self.items if e.variant.role == role]


@dataclass(frozen=True)
class EvaluationJob:
    """What measuring a variant needs, in one object a worker process can receive: the test set and what to measure."""

    loaders: SubgroupLoaders
    layers: tuple[str, ...]  # the intervened layers: the first one's spectra are measured, each arm's for a map
    mechanism: object  # the spec's MechanismSpec: spectral cutoff and heat-map options
    layer_map: bool = False

    def measure(self, model, variant: Variant, from_cache: bool) -> Evaluation:
        model = model.to(self.loaders.device)
        preds = {cond: p.numpy() for cond, p in self.loaders.predict(model).items()}
        rows, kernel, heat = (), None, None
        if variant.spectra:
            layers = spectral_layers(variant.level, self.layers, self.layer_map)
            measured = [measure_spectra(model, layer, variant.level, variant.seed, self.loaders,
                                        self.mechanism.spectral_cutoff) for layer in layers]
            rows = tuple(row for layer_rows, _ in measured for row in layer_rows)
            kernel = measured[0][1] if len(layers) == 1 else {lay: k for lay, (_, k) in zip(layers, measured)}
        if variant.heat_map:
            heat = heat_maps(model, self.loaders, self.mechanism.heat_map)
        return Evaluation(variant, preds, tuple(rows), kernel, heat, from_cache)

    def evaluate(self, variant: Variant, job, store, retrain: bool, fresh: bool,
                 progress: Callable[[str], None] | None = None) -> Evaluation:
        """`variant`'s evaluation from the store, else measured (training it first if the store lacks it) and stored.

        `fresh` means the weights were written moments ago by this audit, so a
        retrain is already satisfied for them.
        """
        cached = None if retrain and not fresh else store.load_evaluation(variant.key, variant.eval_key,
                                                                               variant.expect())
        if cached is not None:
            # Same weights, same test set, same conditions and measurements: the stored evaluation is this model's.
            # Another audit may have stored it under its own label for the same model (keys hold no names).
            rows = tuple({**row, "level": level_label(variant.level), "seed": variant.seed}
                         for row in cached["spectral"])
            return Evaluation(variant, cached["preds"], rows, cached["kernel"],
                              cached["heat_map"], from_cache=not fresh, measured=fresh)
        model, loaded = store.get_or_train(variant.key, lambda: job.build(variant),
                                           lambda m: job.fit(m, variant, progress),
                                           variant.meta(),
                                           retrain=retrain and not fresh)
        if loaded:
            model = job.as_trained(model)
        ev = self.measure(model, variant, from_cache=loaded and not fresh)
        store.store_evaluation(variant.key, variant.eval_key, ev.preds,
                               {"spectral": list(ev.spectral), "kernel": ev.kernel, "heat_map": ev.heat_map},
                               variant.eval_spec)
        return ev


def evaluate_plan(plan: Plan, job, store, evaluation: EvaluationJob, trained_ahead: frozenset[str], retrain: bool,
                  progress: Callable[[str], None] | None, reported: frozenset[str] = frozenset(),
                  measured_ahead: frozenset[str] = frozenset()) -> Evaluations:
    """Each variant's evaluation, in plan order; `trained_ahead` are keys the executor has just written.

    Variants in `reported` were trained and evaluated by the executor, which
    already printed their progress lines; those in `measured_ahead` are stored
    models the executor measured for this audit (loaded, but evaluated now).
    """
    items: list[Evaluation] = []
    variants: Sequence[Variant] = plan.variants
    # Models still to train take far longer than loaded ones: each kind's time left is its own mean.
    to_train = {v.key for v in variants if (retrain or not store.has(v.key)) and v.key not in trained_ahead}
    times: dict[bool, list[float]] = {True: [], False: []}
    for done, v in enumerate(variants, start=1):
        t0 = time.time()
        ev = evaluation.evaluate(v, job, store, retrain, fresh=v.key in trained_ahead, progress=progress)
        if v.key in measured_ahead:
            ev = replace(ev, measured=True)
        items.append(ev)
        times[v.key in to_train].append(time.time() - t0)
        if progress is not None and v.key not in reported:
            # A variant the executor trained moments ago counts as trained by this audit, not as a cache hit.
            how = "loaded from cache+evaluated" if ev.from_cache else "trained+evaluated"
            left = sum(_mean(times, u.key in to_train) for u in variants[done:])
            progress(f"{v.label} {how} in {time.time() - t0:.1f}s ({done}/{len(variants)} models, "
                     f"{eta_text(left, len(variants) - done)})")
    loaders = evaluation.loaders
    codes, names = index_codes(loaders.groups, len(loaders.data))
    return Evaluations(loaders.data.labels.numpy(), codes, tuple(names), tuple(items))


def _mean(times: dict[bool, list[float]], training: bool) -> float:
    """The mean time of finished models of this kind (training or not), else of the other kind."""
    own, other = times[training], times[not training]
    pool = own or other
    return sum(pool) / len(pool) if pool else 0.0


def example_images(loaders: SubgroupLoaders, per_group: int = 2) -> dict:
    """A few test images per subgroup, clean and under each perturbation, for the report's strip (uint8 lists)."""
    index = torch.cat([idx[:per_group] for idx in loaders.groups.values()])
    x = loaders.data.images[index]
    conds = {CLEAN: x, **{name: p(x) for name, p in loaders.perturbations.items()}}
    for p in loaders.perturbations.values():
        p.reset()
    return {name: (v.clamp(0, 1) * 255).round().to(torch.uint8).tolist() for name, v in conds.items()}
