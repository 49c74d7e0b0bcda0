"""Train an audit's variants in a process pool on one machine; results meet in the variant cache.

Each worker process receives the audit's `TrainingJob` and one `Variant`,
rebuilds the paired model exactly as a serial audit would, trains it, and stores it in the shared cache under the
same key; the audit then loads every variant from the cache. So a pool gives
the same numbers as a serial run. Workers use spawn (not fork: forking a
process that already ran OpenMP threads can hang), so the model factory and
trainer must be importable (a module-level class or function, or a timm name).
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.reduction import ForkingPickler
from typing import Callable, ClassVar, Sequence

import torch

from ..errors import AuditConfigError, WorkerDiedError
from ..plan import Variant
from ._base import pending
from ._job import TrainingJob


def _init(threads: int) -> None:
    torch.set_num_threads(threads)


def _train_job(job: TrainingJob, variant: Variant, root: str, retrain: bool) -> str:
    from ._store import VariantCache

    VariantCache(root).get_or_train(variant.key, lambda: job.build(variant), lambda m: job.fit(m, variant),
                                    variant.meta(), retrain=retrain)
    return variant.label


def check_picklable(**things: object) -> None:
    # Serialize (never deserialize) with the pool's own serializer, to refuse early what spawn cannot send.
    for name, thing in things.items():
        try:
            ForkingPickler.dumps(thing)
        except Exception as exc:
            raise AuditConfigError(
                f"workers > 1 needs `{name}` to be importable by worker processes (a module-level class or "
                f"function, or a timm model name); {thing!r} is not ({type(exc).__name__}). Use workers=1.") from None


def train_in_pool(job: TrainingJob, variants: Sequence[Variant], root: str, workers: int, retrain: bool,
                  progress: Callable[[str], None] | None = None) -> None:
    """Train `variants` into the cache at `root` on `workers` processes, threads split evenly over the cores."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_train_job, job, v, root, retrain): v for v in variants}
        for done, future in enumerate(as_completed(futures), start=1):
            try:
                label = future.result()  # re-raises a worker's error (e.g. non-finite loss) here
            except BrokenProcessPool:
                raise WorkerDiedError(
                    f"a training worker died abruptly (killed, or out of memory) while {len(variants) - done + 1} "
                    f"variant(s) were unfinished, e.g. {futures[future].label}. Variants that finished are "
                    "in the cache and an interrupted one never is: run again to train only the missing ones, "
                    "with fewer --kernel-audit-workers if memory ran out.") from None
            if progress is not None:
                progress(f"{label} trained in worker pool ({done}/{len(variants)})")


class PoolExecutor:
    """Variants train in `workers` spawned processes and meet in a disk cache the audit then reads."""

    name: ClassVar[str] = "pool"

    def __init__(self, workers: int):
        self.workers = workers

    @classmethod
    def from_spec(cls, execution, recipe) -> "PoolExecutor":
        return cls(execution.workers)

    def train_ahead(self, variants, job, store, retrain, progress) -> set[str]:
        from ._store import VariantCache

        check_picklable(model=job.model, trainer=job.trainer)
        todo = pending(variants, store, retrain)
        if not todo:
            return set()
        # Workers write to disk; an in-memory store gets a temporary folder and the weights copied in after.
        disk = store if isinstance(store, VariantCache) else VariantCache(tempfile.mkdtemp(prefix="kernel-audit-pool-"))
        train_in_pool(job, todo, str(disk.root), self.workers, retrain, progress)
        if disk is not store:
            for v in todo:
                store.put(v.key, disk.load_state(v.key), v.meta(), replace=retrain)
        return {v.key for v in todo}
