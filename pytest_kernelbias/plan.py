"""The plan: one `Variant` per model to train and evaluate; the only place cache keys and roles are made.

A variant's weights key hashes what decides its weights: the model's behavioural fingerprint (what its
factory builds and computes, never its code or name), the variant's own untrained model (its module tree
and exact initial state, which is what the level, layers, init and pairing make of it), the data-order
seed, recipe, training data, the trainer's fingerprint, device kind and numeric environment. Names never
enter it, so one model has one key whatever role, level label or audit asks for it: the planted audit's
3x3 model of seed 1 is the layer map's "as built" model of seed 1, trained once. Its evaluation key adds
what decides its evaluation: the test set, attributes, each condition's fingerprint (parameters and output
on a probe batch), and what is measured for its role (A/A placebo models measure no spectra, only seed 0
draws heat maps). An evaluation stored for one role is therefore never read back for another. Each variant
carries both specs, which its stored entry records and must match before a stored number is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import torch
from torch.nn.parameter import is_lazy

from ._variant import Plan, Role, Variant
from .data import SubgroupDataset
from .evaluation import SPECTRAL_IMAGES, SPECTRAL_METHOD, eval_batch, spectral_layers
from .execution import key_environment, variant_key
from .fingerprints import (
    module_tree,
    perturbation_fingerprint,
    perturbation_probe,
    probe_batch,
    probe_conditions,
    state_digest,
    trainer_fingerprint,
)
from .intervention import Each, KernelIntervention, Level, layer_seed, level_label
from .spec import AuditSpec

if TYPE_CHECKING:  # read, never built, here: prepare.py imports this module for the key bases
    from .prepare import PreparedAudit

__all__ = ["KeyBases", "Plan", "Role", "Variant", "key_bases", "make_plan", "order_seed"]

def order_seed(seed: int, level: Level, paired: bool) -> int:
    """The data-order seed of a run: shared by the levels when paired, decorrelated per level when not."""
    return seed if paired else layer_seed(seed, f"order-{level_label(level)}") % (2**31)


@dataclass(frozen=True)
class KeyBases:
    """The parts of every variant's keys that no level or seed changes: computed once per audit (prepare.py),
    since they fingerprint what the model computes, the data, the trainer and each perturbation."""

    weights: Mapping
    evaluation: Mapping
    initial: dict = field(default_factory=dict, compare=False)  # (level label, seed) -> the untrained model's digests


def initial_model(intervention: KernelIntervention, level: Level, seed: int, paired: bool, memo: dict,
                  train_images: torch.Tensor) -> dict[str, str]:
    """What `level` and `seed` make of the model before training: the digests of its module tree and of its
    exact initial state, built as a worker builds it. Two variants with equal digests, order seed, data and
    recipe train to the same weights, whichever layers, level labels or audits they came from."""
    mark = (level_label(level), seed, paired)
    if mark not in memo:
        with probe_conditions():
            model = intervention.build(level, seed, paired=paired)
            if any(is_lazy(t) for t in (*model.parameters(), *model.buffers())):
                # A lazy layer takes its shape at a first forward: made here on the fixed probe, as the model's
                # fingerprint does, so that the rest of the state (an intervened conv's init) is digested too.
                # In training its values come from the order seed's stream, which the key also holds.
                with torch.no_grad():
                    model.eval()(probe_batch(train_images))
            memo[mark] = {"tree": module_tree(model), "init": state_digest(model)}
    return memo[mark]


def key_bases(spec: AuditSpec, intervention: KernelIntervention, train_data: SubgroupDataset,
              test_data: SubgroupDataset) -> KeyBases:
    recipe = spec.recipe
    # Layers, init and pairing are not here: each variant's `initial_model` holds what they make of it.
    weights = {"model": intervention.fingerprint(train_data.images), "train": recipe.train_config.recipe(),
               "data": train_data.fingerprint(),
               "trainer": "default" if recipe.trainer is None else trainer_fingerprint(recipe.trainer,
                                                                                        recipe.cache_key),
               "cache_key": recipe.cache_key,
               "device": torch.device(recipe.device).type,
               "numeric": key_environment(spec.execution.executor, recipe.device)}
    probe = perturbation_probe(test_data.images)
    evaluation = {"test": test_data.fingerprint(), "attributes": list(spec.data.attributes),
                  # Names label the conditions in the stored predictions; the fingerprints say what they are.
                  "conditions": [[name, perturbation_fingerprint(p, probe)]
                                 for name, p in spec.data.perturbations.items()],
                  "spectral_images": SPECTRAL_IMAGES, "spectral_method": SPECTRAL_METHOD,
                  "eval_batch": eval_batch(recipe.device)}
    return KeyBases(weights, evaluation)


def make_plan(prepared: PreparedAudit, seeds: int | None = None, stopped: Mapping[str, int] | None = None) -> Plan:
    """Every variant of `seeds` per level (default: the spec's most), with its keys, from a prepared audit.

    `stopped` maps the layers of a layer map's settled arms (seeds="auto") to the seeds per level each
    stopped at: their levels get no more seeds, while the reference and the other arms go on.
    """
    spec, intervention, bases = prepared.spec, prepared.intervention, prepared.bases
    recipe, seeds = spec.recipe, seeds or spec.recipe.most_seeds
    caps = {level: min(seeds, (stopped or {}).get(getattr(level, "layer", None), seeds))
            for level in intervention.levels}
    first = recipe.seed_offset  # a follow-up audit starts where an earlier one's seeds ended
    runs: list[tuple[int, Level, Role]] = [(s, level, "audit") for s in range(first, first + seeds)
                                           for level in intervention.levels if s - first < caps[level]]
    if "aa" in spec.inference.placebos:  # fresh seeds for the reference level only
        runs += [(s, intervention.reference, "aa") for s in range(first + seeds, first + 2 * seeds)]
    layer_map = isinstance(spec.target.layer, Each)
    variants = []
    for seed, level, role in runs:
        order = order_seed(seed, level, recipe.paired)
        initial = initial_model(intervention, level, seed, recipe.paired, bases.initial, prepared.train_data.images)
        weights = {**bases.weights, "initial": initial, "order_seed": order}
        key = variant_key(weights)
        spectra = role == "audit" and spec.mechanism.spectral_cutoff is not None
        heat = role == "audit" and seed == first and spec.mechanism.heat_map is not None
        eval_spec = {"variant": key, **bases.evaluation,
                     "spectral_cutoff": spec.mechanism.spectral_cutoff if spectra else None,
                     "spectral_layers": spectral_layers(level, intervention.layers, layer_map) if spectra else None,
                     "heat_map": spec.mechanism.heat_map if heat else None}
        eval_key = variant_key(eval_spec)
        number = (f"seed {seed + 1}/{seeds}" if not first else
                  f"seed {seed + 1} ({seed + 1 - first}/{seeds} from {first + 1})")
        label = f"{spec.name} {level_label(level)} {number}" + (" (A/A placebo)" if role == "aa" else "")
        variants.append(Variant(level, seed, role, key, eval_key, order, label, spectra, heat,
                                weights_spec=weights, eval_spec=eval_spec))
    return Plan(tuple(variants))
