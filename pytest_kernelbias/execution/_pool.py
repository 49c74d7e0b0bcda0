"""Train and evaluate an audit's variants in a process pool on one machine; results meet in the variant cache.

Each worker process receives the audit's `TrainingJob`, its `EvaluationJob`
and one `Variant`, rebuilds the paired model exactly as a serial audit would,
trains it on one torch thread, measures it, and stores both in the shared
cache under the same keys; the audit then reads every variant from the cache.
So a pool gives the same numbers as a serial run. Workers use spawn (not fork:
forking a process that already ran OpenMP threads can hang), so the model
factory and trainer must be importable (a module-level class or function, or a
timm name); where they are not, the audit trains in its own process and says
how to get parallel training. The pool outlives one audit (starting a worker
imports torch again, seconds each), and is replaced when the worker count,
`sys.path` or the environment it was started with changes.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.reduction import ForkingPickler
from typing import Callable, ClassVar, Sequence

import torch

from .._variant import Variant
from ..errors import AuditConfigError, WorkerDiedError
from ._base import TrainReport, each_key_once, longest_first, pending
from ._estimate import eta_text
from ._eta import PoolEta
from ._job import TrainingJob
from ._memory import keep_freed_memory
from ._relay import Relayed, recording, reissue
from ._threads import AUDIT_THREADS

_SHARED: dict[str, object] = {}  # "key", "pool", "started": the one pool this process keeps


def _init(threads: int, started) -> None:
    # Runs only once the worker has imported the main module again (spawn): counting here tells a worker
    # that died while starting up (e.g. a script without a __main__ guard) from one that died training.
    with started.get_lock():
        started.value += 1
    torch.set_num_threads(threads)
    keep_freed_memory()
    _warm()


def _warm() -> None:
    """What every task's first step pays once per process: the modules a task imports, and autograd's and the
    optimizer's first step. The pool starts its workers while the audit prepares (`PoolExecutor.start`), so
    this overlaps with the audit's own checks instead of delaying the first model."""
    from ..training import train  # noqa: F401 - imported for its cost, not its name
    from ._store import VariantCache  # noqa: F401

    layer = torch.nn.Conv2d(3, 4, 3)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.0)
    layer(torch.zeros(1, 3, 8, 8)).sum().backward()
    optimizer.step()


def _ready() -> int:
    return os.getpid()


def _main_script() -> str:
    main = sys.modules.get("__main__")
    return getattr(main, "__file__", None) or "the main module"


def _died_message(started: int, unfinished: int, example: str) -> str:
    """Why the pool broke: no worker got past start-up (the spawn re-import of the main script), or one died."""
    if started == 0:
        return (f"no training worker could start, so no variant was trained. Workers use the spawn start method, "
                f"which imports the main script ({_main_script()}) again in every worker; a script that starts "
                "the audit at module level then starts workers from inside a worker while it is still starting "
                "up, which Python refuses (the workers' RuntimeError about the 'bootstrapping phase' is printed "
                "above). Put the script's audit code under `if __name__ == \"__main__\":`, or use workers=1.")
    return (f"a training worker died abruptly (killed, or out of memory) while {unfinished} variant(s) were "
            f"unfinished, e.g. {example}. Variants that finished are in the cache and an interrupted one never "
            "is: run again to train only the missing ones, with fewer --kernel-audit-workers if memory ran out.")


def _variant_task(job: TrainingJob, variant: Variant, root: str, retrain: bool,
                  evaluation) -> tuple[str, float, list[Relayed], int]:
    """Train (and measure) one variant; also returns the warnings it raised, for the audit's process, and
    which worker it ran in, for the progress output's time left."""
    from ._store import VariantCache

    def work() -> None:
        cache = VariantCache(root)
        if evaluation is None:
            cache.get_or_train(variant.key, lambda: job.build(variant), lambda m: job.fit(m, variant),
                               variant.meta(), retrain=retrain)
        else:
            evaluation.evaluate(variant, job, cache, retrain, fresh=False)

    t0 = time.time()
    _, caught = recording(work)
    return variant.label, time.time() - t0, caught, os.getpid()


def unsendable(**things: object) -> str | None:
    """What of `things` spawn cannot send to a worker, in words; None when everything can go."""
    # Serialize (never deserialize) with the pool's own serializer, to find early what spawn cannot send.
    for name, thing in things.items():
        try:
            ForkingPickler.dumps(thing)
        except Exception as exc:
            return f"`{name}` ({thing!r}) cannot be sent to worker processes ({type(exc).__name__})"
    return None


def _refusal(problem: str) -> AuditConfigError:
    return AuditConfigError(f"workers > 1 needs every model factory and trainer to be importable by worker "
                            f"processes (a module-level class or function, or a timm model name): {problem}. "
                            "Define it at module level, or use workers=1.")


def check_picklable(**things: object) -> None:
    problem = unsendable(**things)
    if problem is not None:
        raise _refusal(problem)


def _environment_key(workers: int) -> str:
    # Workers copy sys.path and the environment when they start: a change to either needs fresh workers.
    # PYTEST_CURRENT_TEST changes with every test and means nothing to a worker.
    env = sorted((k, v) for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST")
    text = repr((workers, sys.path, env))
    return hashlib.sha256(text.encode()).hexdigest()


def shared_pool(workers: int) -> tuple[ProcessPoolExecutor, object]:
    """This process's pool of `workers` one-thread workers (started on first use), and its start counter."""
    key = _environment_key(workers)
    if _SHARED.get("key") != key:
        close_pool()
        context = get_context("spawn")
        started = context.Value("i", 0)
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                                   initargs=(AUDIT_THREADS, started))
        _SHARED.update(key=key, pool=pool, started=started)
    return _SHARED["pool"], _SHARED["started"]  # type: ignore[return-value]


def close_pool() -> None:
    pool = _SHARED.pop("pool", None)
    _SHARED.clear()
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(close_pool)


def abort_pool(futures) -> None:
    """Ctrl-C (or pytest.exit) while models train: cancel what has not started and end the workers now.

    `close_pool` would wait for every running training to finish (minutes); a model a worker was writing is
    lost, never half-stored (the cache writes whole files or none), and the next audit starts a fresh pool.
    """
    pool = _SHARED.pop("pool", None)
    _SHARED.clear()
    for future in futures:
        future.cancel()
    if pool is None:
        return
    workers = list(getattr(pool, "_processes", {}).values())  # the executor's own record of its processes
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(timeout=5)


def unmeasured(variants: Sequence[Variant], store, training: frozenset[str]) -> list[Variant]:
    """The variants whose weights are stored, whole and recorded for this audit, but whose evaluation on this
    test set is not, each key once (an entry that fails its checks is retrained, and counted, by the audit)."""
    return each_key_once(variants, lambda v: not store.has_evaluation(v.key, v.eval_key)
                         and store.weights_intact(v.key, v.weights_spec), skip=training)


def train_in_pool(job: TrainingJob, variants: Sequence[Variant], root: str, workers: int, retrain: bool,
                  progress: Callable[[str], None] | None = None, evaluation=None,
                  quiet: frozenset[str] = frozenset()) -> None:
    """Train (and, given `evaluation`, measure) `variants` into the cache at `root` on `workers` processes.
    Variants in `quiet` are stored ones measured only: the audit's own line reports them once it reads them."""
    pool, started = shared_pool(workers)
    eta = PoolEta(workers, len(variants) - len(quiet), time.time())
    futures = {pool.submit(_variant_task, job, v, root, retrain, evaluation): v for v in variants}
    try:
        _collect(futures, started, eta, evaluation, progress, quiet)
    except (KeyboardInterrupt, SystemExit):
        abort_pool(futures)
        raise


def _collect(futures: dict, started, eta: PoolEta, evaluation, progress, quiet: frozenset[str]) -> None:
    """Each finished model, as it finishes: its warnings re-issued, a progress line, a worker's error raised."""
    total, done = len(futures) - len(quiet), 0  # the lines count trainings; measuring a stored model is seconds
    for finished, future in enumerate(as_completed(futures), start=1):
        try:
            label, seconds, caught, worker = future.result()  # re-raises a worker's error (e.g. non-finite loss)
        except BrokenProcessPool:
            close_pool()  # a broken pool takes no more work: the next audit starts a fresh one
            raise WorkerDiedError(_died_message(started.value, len(futures) - finished + 1,
                                                futures[future].label)) from None
        reissue(caught)
        if futures[future].key in quiet:
            continue
        done += 1
        left = eta.finished(worker, seconds, time.time())
        if progress is not None:
            what = "trained+evaluated" if evaluation is not None else "trained"
            progress(f"{label} {what} in worker in {seconds:.1f}s ({done}/{total} models, "
                     f"{eta_text(left, total - done)})")


class PoolExecutor:
    """Variants train (and are measured) in `workers` spawned processes and meet in a disk cache."""

    name: ClassVar[str] = "pool"

    def __init__(self, workers: int, fallback: bool = False):
        self.parallel = workers
        self.fallback = fallback  # chosen by "local": an unsendable factory trains in-process instead

    @classmethod
    def from_spec(cls, execution, recipe) -> "PoolExecutor":
        return cls(execution.workers, fallback=execution.executor == "local")

    def start(self, job) -> None:
        """Start the workers now, while the audit checks the models and times its first estimate: each spends
        seconds importing torch and warming its first training step (`_init`), which then overlaps."""
        if unsendable(model=job.model, trainer=job.trainer) is None:
            pool, _ = shared_pool(self.parallel)
            for _ in range(self.parallel):  # one task each: the pool spawns a worker per waiting task
                pool.submit(_ready)

    def after_run(self, variants, store, execution) -> None:
        return None  # trained in this process or its workers, on this machine

    def store_for(self, store):
        """Workers meet in a folder: an audit without a cache gets a temporary one, removed when it ends."""
        from ._store import VariantCache

        return store if store.root is not None else VariantCache.temporary_cache()

    def train_ahead(self, variants, job, store, retrain, progress, evaluation=None) -> TrainReport:
        problem = unsendable(model=job.model, trainer=job.trainer)
        if problem is not None and not self.fallback:
            raise _refusal(problem)
        if problem is not None:
            if progress is not None:
                progress(f"setup: training in this process on one thread, not in {self.parallel} workers: "
                         f"{problem}; define it at module level (or pass a timm name) for parallel training")
            return TrainReport()
        if unsendable(evaluation=evaluation) is not None:
            evaluation = None  # e.g. a perturbation defined in a closure: measured in this process instead
        todo = longest_first(pending(variants, store, retrain), job)
        # Stored models another audit trained but never measured on this test set: measured in the workers too,
        # after the trainings, instead of one by one in this process once the workers are done.
        keys = frozenset(v.key for v in todo)
        measure = [] if evaluation is None else unmeasured(variants, store, keys)
        measured = frozenset(v.key for v in measure)
        if todo or measure:
            train_in_pool(job, [*todo, *measure], str(store.root), self.parallel, retrain, progress, evaluation,
                          quiet=measured)
        return TrainReport(keys, keys if evaluation is not None else frozenset(), measured)
