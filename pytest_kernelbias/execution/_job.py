"""`TrainingJob`: what any executor needs to build and train one variant, in one picklable object.

A worker process or a Ray task receives the job and a `Variant` and rebuilds
the paired model exactly as the audit's own process would, so every executor
trains the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from .._variant import Variant
from ..data import SubgroupDataset
from ..errors import ModelOutputError
from ..intervention import KernelIntervention
from ..training import Progress, TrainConfig, train


@dataclass(frozen=True)
class TrainingJob:
    """The recipe shared by every variant of one audit: model source, layers, levels, data and trainer."""

    model: object
    layers: tuple[str, ...]
    levels: tuple
    reference: object
    num_classes: int
    init: str
    paired: bool
    data: SubgroupDataset
    train_config: TrainConfig
    trainer: Optional[Callable[[nn.Module, SubgroupDataset, int], nn.Module]]
    device: str

    def intervention(self) -> KernelIntervention:
        """The paired model factory; built once per process, since it probes the model."""
        cached = self.__dict__.get("_intervention")
        if cached is None:
            cached = KernelIntervention(self.model, list(self.layers), list(self.levels), self.reference,
                                        num_classes=self.num_classes, init=self.init)
            object.__setattr__(self, "_intervention", cached)
        return cached

    def with_intervention(self, intervention: KernelIntervention) -> "TrainingJob":
        """This job, reusing an intervention the audit already built (no second probe)."""
        object.__setattr__(self, "_intervention", intervention)
        return self

    def __getstate__(self) -> dict:
        # The factory may hold lambdas (timm names); a worker rebuilds it from the fields.
        return {k: v for k, v in self.__dict__.items() if k != "_intervention"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def build(self, variant: Variant) -> nn.Module:
        """The untrained paired model of `variant`."""
        return self.intervention().build(variant.level, variant.seed, paired=self.paired)

    def as_trained(self, model: nn.Module) -> nn.Module:
        """A model loaded from the store, in the memory format the default trainer leaves: measured so, its
        activations (and spectra) are the bits a freshly trained model gives, not a near copy."""
        if self.trainer is None and self.train_config.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def fit(self, model: nn.Module, variant: Variant, progress: Progress | None = None) -> nn.Module:
        """Train `model` with the audit's trainer (the default one unless the audit was given its own)."""
        if self.trainer is None:
            return train(model, self.data, variant.order_seed, self.train_config, self.device, variant.label,
                         progress=progress)
        # A copy per call: a trainer that writes into its data (an in-place augmentation) then changes neither
        # the caller's training set nor the next variant's.
        return checked_return(self.trainer(model, self.data.copy(), variant.order_seed), model, self.trainer, variant)


def checked_return(returned: object, given: nn.Module, trainer: object, variant: Variant) -> nn.Module:
    """The trainer's return value, which must be the model it was given: only that one carries the intervention."""
    if returned is given:
        return given
    name = getattr(trainer, "__name__", type(trainer).__name__)
    got = "None" if returned is None else f"another {type(returned).__name__} object"
    raise ModelOutputError(
        f"the trainer {name!r} returned {got} for variant {variant.label}, not the model it was given; only that "
        "model carries the level's intervention and the seed's pairing. Train the given model in place and "
        "return it (to keep weights trained on a copy, e.g. an EMA: model.load_state_dict(copy.state_dict()); "
        "return model)")
