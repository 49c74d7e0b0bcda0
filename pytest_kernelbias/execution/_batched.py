"""The seed-batched executor: the uncached seeds of each level train together in one vmapped loop.

With `TrainConfig.seed_batching="auto"` each level's batch is first measured
against sequential training on the device and trained batched only when that
is faster; the decision is kept in the cache folder, so it is measured once per
device, architecture and batch shape. The variants it leaves are trained
serially by evaluation. Each
seed's weights are stored separately, under the same key a serial run uses.
"""

from __future__ import annotations

from typing import ClassVar

from ..intervention import level_label
from ..training import choose_strategy, train_seeds
from ._base import TrainReport, pending


class SeedBatchedExecutor:
    name: ClassVar[str] = "seed-batched"
    parallel = 1  # seeds of a level train together, in one process

    @classmethod
    def from_spec(cls, execution, recipe) -> "SeedBatchedExecutor":
        return cls()

    def start(self, job) -> None:
        return None  # trains in this process

    def after_run(self, variants, store, execution) -> None:
        return None  # trained in this process or its workers, on this machine

    def store_for(self, store):
        return store

    def train_ahead(self, variants, job, store, retrain, progress, evaluation=None) -> TrainReport:
        by_level: dict[str, list] = {}
        for v in pending(variants, store, retrain):
            by_level.setdefault(level_label(v.level), []).append(v)
        trained: set[str] = set()
        for label, batch in by_level.items():
            if len(batch) < 2:
                continue
            level = batch[0].level
            if job.train_config.seed_batching == "auto":
                memo = store.memo_path("seed-batching.json")
                choice = choose_strategy(lambda: job.intervention().build(level, 0, paired=job.paired), job.data,
                                         job.train_config, job.device, len(batch), memo=memo)
                if progress is not None:
                    progress(f"{label}: {len(batch)} seeds train "
                             f"{choice.strategy}: {choice.reason}")
                if choice.strategy != "vmap":
                    continue
            models = [job.build(v) for v in batch]
            train_seeds(models, job.data, [v.order_seed for v in batch], job.train_config, job.device,
                        labels=[v.label for v in batch], progress=progress)
            for v, model in zip(batch, models):
                store.put(v.key, model.state_dict(), {**v.meta(), "seed_batched": True}, replace=retrain)
                trained.add(v.key)
        return TrainReport(frozenset(trained))
