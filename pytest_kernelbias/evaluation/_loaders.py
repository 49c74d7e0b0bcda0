"""Per-subgroup clean and perturbed batches of a test set, evaluated in one pass."""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..data import SubgroupDataset
from ..errors import AuditConfigError
from ..perturbations import Perturbation
from ._metrics import check_defined, group_metric, index_codes
from ._predict import CLEAN, eval_batch, predict_conditions

_BUILT_IN = "LowPass(0.4), GaussianBlur(1.0), JPEG(30), Downsample(2), GaussianNoise(0.05), HighPass(0.2)"


def as_perturbations(perturbation) -> dict[str, Perturbation]:
    """Name -> perturbation from one perturbation, a sweep (list) or a mapping; anything else names the fix."""
    if isinstance(perturbation, Perturbation):
        found = {perturbation.name: perturbation}
    elif isinstance(perturbation, Mapping):
        found = dict(perturbation)
    elif isinstance(perturbation, (list, tuple)):
        found = {getattr(p, "name", repr(p)): p for p in perturbation}
    else:
        found = {"perturbation": perturbation}
    if not found:
        raise AuditConfigError(f"perturbation={perturbation!r} holds no perturbation; give one, e.g. LowPass(0.4)")
    for name, p in found.items():
        _check_one(name, p)
    return found


def _check_one(name: object, p: object) -> None:
    if not isinstance(name, str) or not name:
        raise AuditConfigError(f"perturbation names must be non-empty strings, got {name!r}; e.g. "
                               "perturbation={'blur': GaussianBlur(1.0)}")
    if isinstance(p, Perturbation):
        return
    if isinstance(p, str):
        raise AuditConfigError(f"perturbation {p!r} is a name, not a perturbation; pass the object with its "
                               f"parameters, e.g. {_BUILT_IN}")
    if callable(p):
        raise AuditConfigError(
            f"perturbation {getattr(p, '__name__', p)!r} is a plain function; subclass Perturbation so that its "
            "parameters key the stored predictions: class Mine(Perturbation): def __init__(self, s): self.s = s; "
            "def apply(self, x): return f(x, self.s)")
    raise AuditConfigError(f"perturbation {name!r} is a {type(p).__name__}, not a Perturbation; give one or more "
                           f"Perturbation objects, e.g. {_BUILT_IN}, or LowPass.sweep([0.6, 0.4])")


class SubgroupLoaders:
    """A test set split by subgroup, with one or more perturbations attached.

    `loaders[group]` iterates ``(clean, perturbed, labels)`` batches on
    `device` (with one perturbation; ``perturbed`` is a dict by name when there
    are several). `evaluate(model)` gives per-subgroup metrics for every
    condition from a single pass over the whole test set.
    """

    def __init__(
        self,
        data: SubgroupDataset,
        attributes: str | Sequence[str],
        perturbation: Perturbation | Sequence[Perturbation] | Mapping[str, Perturbation],
        batch_size: int | None = None,  # None: eval_batch(device), small on a CPU
        device: str | torch.device = "cpu",
        expected_groups: Sequence[str] | None = None,
    ):
        self.data = data
        self.attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        self.perturbations = as_perturbations(perturbation)
        self.device = torch.device(device)
        self.batch_size = batch_size or eval_batch(self.device)
        self.groups = data.subgroup_indices(self.attributes, expected=expected_groups)

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[str]:
        return iter(self.groups)

    def __getitem__(self, group: str) -> Iterator:
        index = self.groups[group]
        single = len(self.perturbations) == 1
        for start in range(0, len(index), self.batch_size):
            idx = index[start:start + self.batch_size]
            x = self.data.images[idx].to(self.device)
            perturbed = {name: p(x) for name, p in self.perturbations.items()}
            yield x, (next(iter(perturbed.values())) if single else perturbed), self.data.labels[idx].to(self.device)

    def counts(self) -> dict[str, int]:
        return {g: len(i) for g, i in self.groups.items()}

    def predict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """condition -> predicted class per test image, from one pass over the data."""
        return predict_conditions(model, self.data.images, self.perturbations, self.batch_size, self.device)

    def codes(self) -> np.ndarray:
        """Group code per test image, indexing ``list(self.groups)``, as `group_metric` takes them."""
        return index_codes(self.groups, len(self.data))[0]

    def evaluate(self, model: nn.Module) -> dict[str, dict[str, float]]:
        """condition -> subgroup -> accuracy in [0, 1]; the clean condition is ``"clean"``."""
        preds = self.predict(model)
        names = list(self.groups)
        # The audit's path: every condition and subgroup in one vectorized count.
        values = check_defined(group_metric(torch.stack(list(preds.values())), self.data.labels, self.codes(),
                                            len(names), "accuracy"), names, "accuracy")
        return {cond: dict(zip(names, map(float, row))) for cond, row in zip(preds, values)}

    @property
    def conditions(self) -> list[str]:
        return [CLEAN, *self.perturbations]
