"""The plan: one `Variant` per model to train and evaluate; the only place cache keys and roles are made.

A variant's weights key hashes what decides its weights (model source, layers,
init, pairing, recipe, training data, trainer, device kind, level, seed), so
the same (level, seed) has one key whatever role it plays. Its evaluation key
adds what decides its evaluation: the test set, attributes, conditions, and
what is measured for its role (A/A placebo models measure no spectra, only
seed 0 draws heat maps). An evaluation stored for one role is therefore never
read back for another.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

import numpy as np
import torch

from ._variant import Plan, Role, Variant
from .data._subgroups import SubgroupDataset
from .evaluation._mechanism import SPECTRAL_IMAGES, spectral_layers
from .evaluation._predict import eval_batch
from .execution._store import source_fingerprint, variant_key
from .execution._threads import AUDIT_THREADS, determinism, numeric_environment
from .intervention._intervene import KernelIntervention
from .intervention._levels import Level, layer_seed, level_label
from .intervention._select import Each
from .perturbations import Perturbation
from .spec import AuditSpec

__all__ = ["Plan", "Role", "Variant", "make_plan", "order_seed", "perturbation_fingerprint"]

def order_seed(seed: int, level: Level, paired: bool) -> int:
    """The data-order seed of a run: shared by the levels when paired, decorrelated per level when not."""
    return seed if paired else layer_seed(seed, f"order-{level_label(level)}") % (2**31)


def _parameter(value: object) -> object:
    """A parameter of a perturbation as JSON that no other value shares (floats exactly, not rounded)."""
    if isinstance(value, Perturbation):
        return perturbation_fingerprint(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {"float": float.hex(value)}  # repr and :g round; the hex form is the exact value
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_parameter(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[_parameter(k), _parameter(v)] for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))]}
    if isinstance(value, (torch.Tensor, np.ndarray)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        return {"array": str(array.dtype), "shape": list(array.shape),
                "sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()}
    if callable(value):
        return {"callable": source_fingerprint(value)}
    return {type(value).__qualname__: repr(value)}


def perturbation_fingerprint(perturbation: Perturbation) -> dict:
    """Everything that shapes a perturbation's output: its class and that class's code, and every public
    attribute (its parameters), so two perturbations share a key only when they perturb alike.

    The name an audit gives a perturbation is a label and is not part of it: a reused name with
    other parameters gets other predictions.
    """
    return {"class": f"{type(perturbation).__module__}.{type(perturbation).__qualname__}",
            "code": source_fingerprint(type(perturbation)),
            "parameters": {k: _parameter(v) for k, v in sorted(vars(perturbation).items()) if not k.startswith("_")}}


def _numeric(spec: AuditSpec) -> dict:
    """The numeric environment in the weights key: this machine's, or on Ray the switches every task sets,
    since which node trains a seed is Ray's choice; each task measures its node and the entry records it."""
    if spec.execution.executor != "ray":
        return numeric_environment(spec.recipe.device)
    return {"threads": AUDIT_THREADS, **determinism(), "measured": "by each Ray task on its node, in the entry"}


def make_plan(spec: AuditSpec, intervention: KernelIntervention, train_data: SubgroupDataset,
              test_data: SubgroupDataset, stopped: Mapping[str, int] | None = None) -> Plan:
    """Every variant the audit needs, with its keys, from a validated spec and its resolved intervention.

    `stopped` maps the layers of a layer map's settled arms (seeds="auto") to the seeds per level each
    stopped at: their levels get no more seeds, while the reference and the other arms go on.
    """
    recipe, seeds = spec.recipe, spec.recipe.seeds
    weights = {"model": source_fingerprint(spec.target.model), "layers": intervention.layers,
               # Since a level equal to a layer's own hyperparameters leaves it as built (not re-initialized),
               # entries stored under the earlier rule must not be read for it.
               "unchanged_layers": "as built",
               "init": spec.target.init, "paired": recipe.paired, "train": recipe.train_config.recipe(),
               "data": train_data.fingerprint(),
               "trainer": "default" if recipe.trainer is None else source_fingerprint(recipe.trainer),
               "device": torch.device(recipe.device).type, "numeric": _numeric(spec)}
    evaluation = {"test": test_data.fingerprint(), "attributes": list(spec.data.attributes),
                  # Names label the conditions in the stored predictions; the fingerprints say what they are.
                  "conditions": [[name, perturbation_fingerprint(p)] for name, p in spec.data.perturbations.items()],
                  "spectral_images": SPECTRAL_IMAGES,
                  "eval_batch": eval_batch(recipe.device)}
    caps = {level: min(seeds, (stopped or {}).get(getattr(level, "layer", None), seeds))
            for level in intervention.levels}
    runs: list[tuple[int, Level, Role]] = [(s, level, "audit") for s in range(seeds) for level in intervention.levels
                                           if s < caps[level]]
    if "aa" in spec.inference.placebos:  # fresh seeds for the reference level only
        runs += [(s, intervention.reference, "aa") for s in range(seeds, 2 * seeds)]
    layer_map = isinstance(spec.target.layer, Each)
    variants = []
    for seed, level, role in runs:
        key = variant_key({**weights, "level": level_label(level), "seed": seed})
        spectra = role == "audit" and spec.mechanism.spectral_cutoff is not None
        heat = role == "audit" and seed == 0 and spec.mechanism.heat_map is not None
        eval_key = variant_key({"variant": key, **evaluation,
                                "spectral_cutoff": spec.mechanism.spectral_cutoff if spectra else None,
                                "spectral_layers": spectral_layers(level, intervention.layers, layer_map)
                                if spectra else None,
                                "heat_map": spec.mechanism.heat_map if heat else None})
        label = f"{spec.name} {level_label(level)} seed {seed + 1}/{seeds}" + (" (A/A placebo)" if role == "aa" else "")
        variants.append(Variant(level, seed, role, key, eval_key, order_seed(seed, level, recipe.paired), label,
                                spectra, heat, weights_spec=weights))
    return Plan(tuple(variants))
