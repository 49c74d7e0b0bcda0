"""`Variant` and `Plan`: the units of work every part of the pipeline passes around.

A leaf module (it imports only level labels), so that executors, stores and evaluation can name
a variant without importing the plan that makes them; `plan.py` is still the only place their
keys are made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .intervention import Level, level_label

Role = Literal["audit", "aa"]


@dataclass(frozen=True)
class Variant:
    """One model of the audit: a level, a seed and its role, with its keys and its data-order seed."""

    level: Level
    seed: int
    role: Role
    key: str  # the trained weights
    eval_key: str  # its evaluation on this audit's test set and conditions
    order_seed: int  # seeds the batch order; shared by the levels of one seed when paired
    label: str  # e.g. "test_x kernel_size=7 seed 2/6"
    spectra: bool  # measure the intervened layer's activation spectra
    heat_map: bool  # draw Fourier heat maps
    weights_spec: dict = field(default_factory=dict, compare=False, repr=False)  # what its weights key hashes
    eval_spec: dict = field(default_factory=dict, compare=False, repr=False)  # what its evaluation key hashes

    def meta(self) -> dict:
        """What a stored entry records about where it came from (JSON), whichever executor trained it.

        `seed` is the value the trainer receives (zero-based); `seed_number`
        counts from one, as the progress label "seed 2/6" does. `spec` holds what
        the weights key hashes: the model's fingerprint, the untrained variant's
        digests, the order seed, recipe, data, trainer and numeric environment.
        """
        return {"level": level_label(self.level), "seed": self.seed, "seed_number": self.seed + 1,
                "role": self.role, "label": self.label, "spec": self.weights_spec}

    def expect(self) -> dict:
        """The fingerprints a stored entry and evaluation must record before their numbers are used."""
        return {"weights": self.weights_spec, "evaluation": self.eval_spec}


@dataclass(frozen=True)
class Plan:
    """The variants in evaluation order: seeds 0..n-1 at every level, then A/A seeds at the reference."""

    variants: tuple[Variant, ...]
