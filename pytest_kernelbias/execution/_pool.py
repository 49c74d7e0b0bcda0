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
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.reduction import ForkingPickler
from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import AuditConfigError, WorkerDiedError


def _init(threads: int) -> None:
    torch.set_num_threads(threads)


def build_variant(job: dict) -> nn.Module:
    """The untrained paired model of one (level, seed) job, exactly as a serial audit builds it."""
    from ..intervention._intervene import KernelIntervention

    iv = KernelIntervention(job["model"], job["layer"], job["levels"], job["reference"],
                            num_classes=job["num_classes"], init=job["init"])
    return iv.build(job["level"], job["seed"], paired=job["paired"])


def fit_variant(job: dict, model: nn.Module) -> nn.Module:
    """Train `model` with the job's trainer (the default one unless the audit was given its own)."""
    from ..training._trainer import train

    if job["trainer"] is None:
        return train(model, job["data"], job["order_seed"], job["train_config"], job["device"], job["label"])
    return job["trainer"](model, job["data"], job["order_seed"])


def _train_job(job: dict) -> str:
    from ._store import VariantCache

    cache = VariantCache(job["cache"])
    cache.get_or_train(job["key"], lambda: build_variant(job), lambda m: fit_variant(job, m), job["meta"],
                       retrain=job["retrain"])
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
        futures = {pool.submit(_train_job, job): job for job in jobs}
        for done, future in enumerate(as_completed(futures), start=1):
            try:
                label = future.result()  # re-raises a worker's error (e.g. non-finite loss) here
            except BrokenProcessPool:
                raise WorkerDiedError(
                    f"a training worker died abruptly (killed, or out of memory) while {len(jobs) - done + 1} "
                    f"variant(s) were unfinished, e.g. {futures[future]['label']}. Variants that finished are "
                    "in the cache and an interrupted one never is: run again to train only the missing ones, "
                    "with fewer --kernel-audit-workers if memory ran out.") from None
            if progress is not None:
                progress(f"{label} trained in worker pool ({done}/{len(jobs)})")
