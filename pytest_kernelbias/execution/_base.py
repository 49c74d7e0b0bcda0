"""The executor and store protocols, and the registry of executors.

An executor trains the variants of a plan into a store before evaluation
reads them; the store holds trained weights and evaluations. Adding an
executor is one module with a class that follows `Executor`, plus one line in
`EXECUTORS`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from ..plan import Variant
    from ..spec import ExecutionSpec, RecipeSpec
    from ._job import TrainingJob

# name -> "module:class" within this package; imported when chosen, so Ray loads only when asked for.
EXECUTORS: dict[str, str] = {
    "serial": "._serial:SerialExecutor",
    "seed-batched": "._batched:SeedBatchedExecutor",
    "pool": "._pool:PoolExecutor",
    "ray": "._ray:RayExecutor",
}
LOCAL = "local"  # serial, seed-batched or pool, chosen from the recipe and worker count


class VariantStore(Protocol):
    """Trained weights and their evaluations, by key (`VariantCache` on disk, `MemoryStore` for one run)."""

    root: Path | None

    def has(self, key: str) -> bool: ...

    def get_or_train(self, key: str, build: Callable[[], nn.Module], train: Callable[[nn.Module], nn.Module],
                     meta: Mapping[str, object], retrain: bool = False) -> tuple[nn.Module, bool]: ...

    def put(self, key: str, state: Mapping[str, torch.Tensor], meta: Mapping[str, object],
            replace: bool = False) -> bool: ...

    def load_evaluation(self, key: str, eval_key: str) -> dict | None: ...

    def store_evaluation(self, key: str, eval_key: str, preds: Mapping[str, np.ndarray],
                         extra: Mapping[str, object]) -> None: ...


class Executor(Protocol):
    """Trains variants ahead of evaluation; whatever it leaves untrained, evaluation trains one at a time."""

    name: ClassVar[str]

    @classmethod
    def from_spec(cls, execution: "ExecutionSpec", recipe: "RecipeSpec") -> "Executor": ...

    def train_ahead(self, variants: Sequence["Variant"], job: "TrainingJob", store: VariantStore,
                    retrain: bool, progress: Callable[[str], None] | None) -> set[str]:
        """Train the variants that `store` lacks (all of them when `retrain`); return the keys trained."""
        ...


def executor_names() -> tuple[str, ...]:
    return (LOCAL, *EXECUTORS)


def _load(name: str) -> type:
    module, cls = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(module, __package__), cls)


def choose_executor(execution: "ExecutionSpec", recipe: "RecipeSpec") -> Executor:
    """The executor the spec names; "local" is a pool with workers > 1, else seed-batched where it may apply."""
    name = execution.executor
    if name == LOCAL:
        batchable = recipe.trainer is None and recipe.seeds > 1 and recipe.train_config.seed_batching != "sequential"
        name = "pool" if execution.workers > 1 else ("seed-batched" if batchable else "serial")
    return _load(name).from_spec(execution, recipe)


def pending(variants: Sequence["Variant"], store: VariantStore, retrain: bool) -> list["Variant"]:
    """The variants to train now: those the store lacks, or all with `retrain`; each key once."""
    seen: set[str] = set()
    out = []
    for v in variants:
        if v.key not in seen and (retrain or not store.has(v.key)):
            seen.add(v.key)
            out.append(v)
    return out
