"""Train an audit's variants in a process pool on one machine; results meet in the variant cache.

Each worker process rebuilds the paired model for its (level, seed) exactly as
a serial audit would, trains it, and stores it in the shared cache under the
same key; the audit then loads every variant from the cache. So a pool gives
the same numbers as a serial run. Workers use spawn (not fork: forking a
process that already ran OpenMP threads can hang), so the model factory and
trainer must be importable (a module-level class or function, or a timm name).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from multiprocessing.reduction import ForkingPickler
from typing import Callable, Sequence

import torch

from .errors import AuditConfigError


def _init(threads: int) -> None:
    torch.set_num_threads(threads)


def _train_job(job: dict) -> str:
    from .cache import VariantCache
    from .intervention import KernelIntervention
    from .training import train

    iv = KernelIntervention(job["model"], job["layer"], job["levels"], job["reference"],
                            num_classes=job["num_classes"], init=job["init"])
    data, cfg, device, trainer = job["data"], job["train_config"], job["device"], job["trainer"]

    def fit(m):
        if trainer is None:
            return train(m, data, job["order_seed"], cfg, device, job["label"])
        return trainer(m, data, job["order_seed"])

    cache = VariantCache(job["cache"])
    cache.get_or_train(job["key"], lambda: iv.build(job["level"], job["seed"], paired=job["paired"]), fit,
                       job["meta"], retrain=job["retrain"])
    return job["label"]


def check_picklable(**things: object) -> None:
    # Serialize (never deserialize) with the pool's own serializer, to refuse early what spawn cannot send.
    for name, thing in things.items():
        try:
            ForkingPickler.dumps(thing)
        except Exception as exc:
            raise AuditConfigError(
                f"workers > 1 needs `{name}` to be importable by worker processes (a module-level class or "
                f"function, or a timm model name); {thing!r} is not ({type(exc).__name__}). Use workers=1.") from None


def train_in_pool(jobs: Sequence[dict], workers: int, progress: Callable[[str], None] | None = None) -> None:
    """Run `jobs` on `workers` processes, threads split evenly over the cores."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(_train_job, job) for job in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            label = future.result()  # re-raises a worker's error (e.g. non-finite loss) here
            if progress is not None:
                progress(f"{label} trained in worker pool ({done}/{len(jobs)})")
