"""The executor and store protocols, and the registry of executors.

An executor trains the variants of a plan into a store before evaluation
reads them; the store holds trained weights and evaluations. Adding an
executor is one module with a class that follows `Executor`, plus one line in
`EXECUTORS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import AuditConfigError
from . import _threads

if TYPE_CHECKING:
    from .._variant import Variant
    from ..evaluation import EvaluationJob
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
REMOTE = frozenset({"ray"})  # executors whose models train on other machines, with their own devices


def trains_remotely(executor: str) -> bool:
    """Whether the executor named `executor` trains on other machines (Ray): then this process checks the
    models on its CPU and needs no GPU, the weights keys hold the numeric switches every task sets (each task
    records its own machine), and `after_run` checks that the machines agreed."""
    return executor in REMOTE


class VariantStore(Protocol):
    """Trained weights and their evaluations, by key (`VariantCache` on disk, `MemoryStore` for one run)."""

    root: Path | None

    def has(self, key: str) -> bool: ...

    def memo_path(self, name: str) -> Path | None: ...  # where a measured decision is kept; None: not kept

    def holds(self, key: str) -> bool: ...  # stored by now, even if already read (an audit's counts)

    def get_or_train(self, key: str, build: Callable[[], nn.Module], train: Callable[[nn.Module], nn.Module],
                     meta: Mapping[str, object], retrain: bool = False) -> tuple[nn.Module, bool]: ...

    def put(self, key: str, state: Mapping[str, torch.Tensor], meta: Mapping[str, object],
            replace: bool = False) -> bool: ...

    def load_evaluation(self, key: str, eval_key: str, expect: Mapping[str, Mapping] | None = None
                        ) -> dict | None: ...  # expect: the fingerprints the entry must record

    def trained_on(self, key: str) -> dict | None: ...  # node and numeric environment a Ray task recorded

    def store_evaluation(self, key: str, eval_key: str, preds: Mapping[str, np.ndarray],
                         extra: Mapping[str, object], spec: Mapping[str, object] | None = None) -> None: ...


@dataclass(frozen=True)
class TrainReport:
    """What an executor did ahead of evaluation: the keys it trained, those it also measured (their
    evaluations are in the store and their progress lines printed), and stored ones it measured only."""

    trained: frozenset[str] = frozenset()
    evaluated: frozenset[str] = frozenset()
    measured: frozenset[str] = frozenset()


class Executor(Protocol):
    """Trains variants ahead of evaluation; whatever it leaves untrained, evaluation trains one at a time.

    These are every call and attribute the pipeline uses: an executor that needs more changes this first.
    """

    name: ClassVar[str]
    parallel: int  # models it trains at once (the first time estimate and the report's workers)

    @classmethod
    def from_spec(cls, execution: "ExecutionSpec", recipe: "RecipeSpec") -> "Executor": ...

    def start(self, job: "TrainingJob") -> None:
        """Get ready to train `job`'s variants while the audit prepares the rest (a pool starts its workers);
        nothing for executors that train in this process."""
        ...

    def store_for(self, store: VariantStore) -> VariantStore:
        """The store this executor trains into: `store`, or one it can use in its way (workers meet on disk)."""
        ...

    def train_ahead(self, variants: Sequence["Variant"], job: "TrainingJob", store: VariantStore, retrain: bool,
                    progress: Callable[[str], None] | None, evaluation: "EvaluationJob | None" = None) -> TrainReport:
        """Train the variants that `store` lacks (all of them when `retrain`), and measure them with `evaluation`
        where the executor can; say which."""
        ...

    def after_run(self, variants: Sequence["Variant"], store: VariantStore, execution: "ExecutionSpec"
                  ) -> dict | None:
        """What the report must know of where the variants trained, checked (None when they trained here)."""
        ...


def check_recipe(executor: str, trainer: object) -> None:
    """Refuse, before anything trains, a recipe the executor named `executor` cannot train."""
    if executor == "seed-batched" and trainer is not None:
        raise AuditConfigError("executor 'seed-batched' trains with the default trainer only; drop trainer= "
                               "or use executor='local'")


def executor_names() -> tuple[str, ...]:
    return (LOCAL, *EXECUTORS)


def _load(name: str) -> type:
    module, cls = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(module, __package__), cls)


def choose_executor(execution: "ExecutionSpec", recipe: "RecipeSpec") -> tuple[Executor, str]:
    """The executor the spec names, and why, in words for the progress output.

    "local" trains seed-batched where that can win (forced, or measured on a
    GPU), else in a pool of `workers` one-thread processes, else serially.
    """
    name, why = execution.executor, f"executor {execution.executor!r} as asked"
    if name == LOCAL:
        name, why = _local(execution, recipe)
    executor = _load(name).from_spec(execution, recipe)
    return executor, f"{why}; {_threads.AUDIT_THREADS} torch thread per training"


def _local(execution: "ExecutionSpec", recipe: "RecipeSpec") -> tuple[str, str]:
    batching = getattr(recipe.train_config, "seed_batching", "auto")  # "auto" recipe: not chosen yet
    batchable = recipe.trainer is None and recipe.most_seeds > 1
    if batchable and batching == "vmap":
        return "seed-batched", "seeds of a level train together (seed_batching='vmap')"
    if batchable and batching == "auto" and torch.device(recipe.device).type == "cuda":
        return "seed-batched", "seed batching measured against sequential once per architecture on this GPU"
    skipped = ("; seed batching skipped on CPU, where it lost in every cell of benchmarks/seed_batching.py "
               "(seed_batching='vmap' forces it)") if batchable and batching == "auto" else ""
    if execution.workers > 1:
        return "pool", f"{execution.workers} worker processes{skipped}"
    return "serial", f"one process (workers=1){skipped}"


def pending(variants: Sequence["Variant"], store: VariantStore, retrain: bool) -> list["Variant"]:
    """The variants to train now: those the store lacks, or all with `retrain`; each key once."""
    return each_key_once(variants, lambda v: retrain or not store.has(v.key))


def each_key_once(variants: Sequence["Variant"], keep: Callable[["Variant"], bool],
                  skip: frozenset[str] = frozenset()) -> list["Variant"]:
    """The variants `keep` accepts, in order, the first of each key only and none whose key is in `skip`."""
    seen, out = set(skip), []
    for v in variants:
        if v.key not in seen and keep(v):
            seen.add(v.key)
            out.append(v)
    return out


def longest_first(variants: Sequence["Variant"], job: "TrainingJob") -> list["Variant"]:
    """`variants` with the costliest levels first (seed order kept within a level).

    Parallel executors hand out work in this order. Started last, a long model
    runs alone while the other workers idle: measured on SynthFacesCNN with
    levels [3, 9] and 3 seeds on 2 workers, plan order left the three k=9 models
    on one worker, which finished 23 s after the other.
    """
    intervention = job.intervention()
    return sorted(variants, key=lambda v: -intervention.cost(v.level))
