"""Train an audit's variants as Ray tasks, on a local Ray instance or an existing Ray cluster.

Each (level, seed) training is one Ray task. The task rebuilds the paired
model exactly as a serial audit would, trains it on the node Ray picks, and
returns the weights as safetensors bytes; the driver writes them into its own
variant cache. So a cluster needs no shared file system, and the audit then
loads every variant from the cache: the same numbers as local training.
Ray ships the job (model factory, dataset, trainer) with its own serializer,
so the factory and trainer must be importable on the nodes, as for the pool.
"""

from __future__ import annotations

import socket
import time
import warnings
from typing import Callable, ClassVar, Sequence

import torch

from .._variant import Variant
from ..errors import AuditConfigError, ClusterWaitError, ResourceWaitWarning, WorkerDiedError
from ._base import TrainReport, longest_first, pending
from ._estimate import eta_text
from ._job import TrainingJob
from ._pool import check_picklable, unsendable
from ._ray_connect import connect, ray_module
from ._ray_options import RayOptions
from ._relay import recording, reissue
from ._store import TRAINED_ON

WAIT_REPORT_S = 60.0  # a minute without a finished task: say what the cluster has free and what a task asks


def check_feasible(ray, asks: dict[str, float], node_id: str | None = None) -> None:
    """Refuse, before submitting, a task that no node of the cluster could ever run (it would wait forever);
    `node_id`: the one node a hard affinity strategy pins every task to."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if node_id is not None:
        pinned = [n for n in alive if n.get("NodeID") == node_id]
        if not pinned:
            raise AuditConfigError(f"ray_options scheduling_strategy pins the tasks to node {node_id!r}, which is not "
                                   f"alive in the cluster (alive: {', '.join(n.get('NodeID', '?') for n in alive)}); "
                                   "give a live node's id, or soft=True to let Ray run them elsewhere")
        alive = pinned
    nodes = [n.get("Resources", {}) for n in alive]
    if any(all(node.get(r, 0.0) >= need for r, need in asks.items() if need) for node in nodes):
        return
    biggest = {r: max((node.get(r, 0.0) for node in nodes), default=0.0) for r in asks}
    raise AuditConfigError(f"no node of the Ray cluster can run a training task: each asks {_fmt(asks)}, the "
                           f"largest node has {_fmt(biggest)} ({len(nodes)} node(s) alive); add a node with those "
                           "resources, or ask for less (device='cpu' asks for no GPU)")


def _fmt(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{r}: {v:g}" for r, v in sorted(resources.items()) if v or r == "CPU") + "}"


def _report_wait(ray, asks: dict[str, float], quiet: float, done: int, total: int, progress) -> None:
    """Say why nothing finished: the cluster's free resources against what each task asks."""
    free = {r: ray.available_resources().get(r, 0.0) for r in asks}
    whole = {r: ray.cluster_resources().get(r, 0.0) for r in asks}
    message = (f"Ray: no training task finished in the last {quiet:.0f} s ({done}/{total} done); the cluster has "
               f"{_fmt(free)} free of {_fmt(whole)}, each task asks {_fmt(asks)}. Tasks wait while other jobs hold "
               "those resources; Ctrl-C stops the audit and keeps every variant already trained")
    if progress is not None:
        progress(message)
    else:
        warnings.warn(ResourceWaitWarning(message), stacklevel=3)


def _result(ray, ref, variant: Variant, done: int, total: int, retries: int) -> dict:
    """A finished task's weights; a task error is raised as itself, a lost worker or node as WorkerDiedError."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        raise exc.as_instanceof_cause() from None  # e.g. NonFiniteLossError, as a local run raises it
    except ray.exceptions.RayError as exc:  # the worker process or its node died, past the task's retries
        tries = "every retry" if retries < 0 else f"{retries + 1} times"
        raise WorkerDiedError(
            f"the Ray task training {variant.label} failed {tries} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); a node was lost, or the task ran out of memory. "
            f"{done} of {total} variants finished and are in the cache: run the audit again to train only the "
            "rest (give tasks more memory, or fewer at once per node, if it recurs)") from None


def _train_task(job: TrainingJob, variant: Variant, evaluation, flags: dict, started=None) -> dict:
    """Runs on a Ray worker: set the audit's determinism, build, train, measure the node, evaluate.

    Sends back the weights (safetensors, never pickle), where they trained (node, host, numeric environment
    measured here), the evaluation when given (so a cluster evaluates in parallel), and the warnings the
    work raised: Ray does not show a task's output here.
    """
    import ray
    from safetensors.torch import save

    from ._memory import keep_freed_memory
    from ._threads import AUDIT_THREADS, apply_determinism, numeric_environment

    # The audit's thread policy (see _threads): one thread, so a cluster gives the numbers of a local run.
    torch.set_num_threads(AUDIT_THREADS)
    apply_determinism(flags)  # a worker process starts with torch's defaults, not the driver's switches
    keep_freed_memory()  # the job arrives through Ray's shared object store, as a pool's through shared memory
    node = ray.get_runtime_context().get_node_id()
    if started is not None:
        try:
            started.put_nowait((variant.label, socket.gethostname(), node))
        except Exception:  # noqa: BLE001 - a lost progress mailbox must never fail the training it reports on
            pass

    def work() -> tuple:
        model = job.fit(job.build(variant), variant)
        return model, None if evaluation is None else evaluation.measure(model, variant, from_cache=False)

    (model, measured), caught = recording(work)
    where = {"node": node, "host": socket.gethostname(),
             "environment": numeric_environment(job.device)}
    out = {"weights": save({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}),
           "caught": caught, TRAINED_ON: where}
    if measured is not None:
        out["evaluation"] = {"preds": measured.preds, "spectral": list(measured.spectral), "kernel": measured.kernel,
                             "heat_map": measured.heat_map}
    return out


def _strategy(options: RayOptions):
    strategy = options.scheduling_strategy
    if isinstance(strategy, dict):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node_id=strategy["node_id"], soft=strategy.get("soft", False))
    return strategy


def _remote(ray, options: RayOptions, asks: dict[str, float]):
    """The training task with the audit's per-task options."""
    extra = {"resources": options.resources} if options.resources else {}
    if options.scheduling_strategy is not None:
        extra["scheduling_strategy"] = _strategy(options)
    return ray.remote(num_cpus=asks["CPU"], num_gpus=asks["GPU"], max_retries=options.max_retries,
                      retry_exceptions=(list(options.retry_exceptions) if isinstance(options.retry_exceptions, tuple)
                                        else options.retry_exceptions), **extra)(_train_task)


def _asks(job: TrainingJob, options: RayOptions) -> dict[str, float]:
    return {"CPU": options.num_cpus, "GPU": options.gpus(job.device), **options.resources}


def _waited_too_long(asks: dict[str, float], quiet: float, done: int, total: int) -> ClusterWaitError:
    return ClusterWaitError(
        f"Ray: no training task finished in {quiet:.0f} s, past ray_options wait_timeout ({done}/{total} done); "
        f"each task asks {_fmt(asks)}. The cluster is busy or lacks those resources: add nodes, ask for less, or "
        "raise wait_timeout; the variants already trained are in the cache and the rerun trains only the rest")


POLL_S = 1.0  # how often the driver looks for started tasks while it waits for finished ones


def _started_queue(progress):
    """A mailbox where each task says it started and where (a zero-CPU actor), when progress is shown.

    It lives on the head node, which a cluster keeps while worker nodes come and go; if it is lost all
    the same, the audit goes on without "started" lines (`_announce`, and the task's own guard).
    """
    if progress is None:
        return None
    from ray.util.queue import Queue

    return Queue(actor_options={"num_cpus": 0, "resources": {"node:__internal_head__": 0.001}})


def _announce(ray, queue, progress, total: int):
    """Print the tasks that started since the last look; the queue, or None once it is gone."""
    if queue is None:
        return None
    try:
        for label, host, node in queue.get_nowait_batch(queue.qsize()):
            progress(f"{label} started on Ray node {host} ({node[:12]}) (of {total} tasks)")
    except ray.exceptions.RayError:
        return None  # its node was lost: only the "started" lines stop
    return queue


def _keep(store, variant: Variant, out: dict, retrain: bool) -> None:
    """A finished task's weights, where they trained, and its evaluation, into the store."""
    from safetensors.torch import load

    store.put(variant.key, load(out["weights"]), {**variant.meta(), TRAINED_ON: out[TRAINED_ON]}, replace=retrain)
    if "evaluation" in out:
        ev = out["evaluation"]
        # Arrays out of Ray's object store are read-only views: copies are stored.
        store.store_evaluation(variant.key, variant.eval_key, {c: p.copy() for c, p in ev["preds"].items()},
                               {"spectral": ev["spectral"], "kernel": ev["kernel"], "heat_map": ev["heat_map"]},
                               variant.eval_spec)


def train_on_ray(job: TrainingJob, variants: Sequence[Variant], store, address: str | None = None,
                 retrain: bool = False, options: RayOptions | None = None,
                 progress: Callable[[str], None] | None = None, wait_report: float = WAIT_REPORT_S,
                 evaluation=None) -> None:
    """Run each variant's training (and evaluation, given one) as a Ray task; write the results into `store`
    as they arrive, with the node and numeric environment each was trained in."""
    if not variants:
        return
    from ._threads import determinism

    options = options or RayOptions()
    connect(address, options.namespace, options.runtime_env, progress)
    ray = ray_module()
    asks = _asks(job, options)
    pinned = options.scheduling_strategy if isinstance(options.scheduling_strategy, dict) else None
    check_feasible(ray, asks, pinned["node_id"] if pinned and not pinned.get("soft") else None)
    remote, queue = _remote(ray, options, asks), _started_queue(progress)
    shared, measure = ray.put(job), (None if evaluation is None else ray.put(evaluation))  # one copy each
    flags = determinism()
    pending_refs = {remote.remote(shared, v, measure, flags, queue): v for v in variants}
    started = time.monotonic()
    if progress is not None:
        free = {r: ray.available_resources().get(r, 0.0) for r in asks}
        progress(f"Ray: {len(variants)} training tasks queued, each asks {_fmt(asks)}; the cluster has {_fmt(free)} "
                 f"free on {sum(1 for n in ray.nodes() if n.get('Alive'))} node(s)")
    done_count, quiet, reported = 0, 0.0, 0.0
    try:
        while pending_refs:
            t0 = time.monotonic()
            ready, _ = ray.wait(list(pending_refs), num_returns=1, timeout=POLL_S)
            queue = _announce(ray, queue, progress, len(variants))
            if not ready:
                quiet += time.monotonic() - t0
                if options.wait_timeout is not None and quiet >= options.wait_timeout:
                    raise _waited_too_long(asks, quiet, done_count, len(variants))
                if quiet - reported >= wait_report:
                    reported = quiet
                    _report_wait(ray, asks, quiet, done_count, len(variants), progress)
                continue
            quiet = reported = 0.0
            variant = pending_refs.pop(ready[0])
            out = _result(ray, ready[0], variant, done_count, len(variants), options.max_retries)
            reissue(out["caught"])
            _keep(store, variant, out, retrain)
            done_count += 1
            if progress is not None:
                left = (time.monotonic() - started) / done_count * len(pending_refs)
                what = "trained+evaluated" if "evaluation" in out else "trained"
                progress(f"{variant.label} {what} on Ray node {out[TRAINED_ON]['host']} "
                         f"({out[TRAINED_ON]['node'][:12]}) ({done_count}/{len(variants)} done, {len(pending_refs)} "
                         f"queued or running, {eta_text(left, len(pending_refs))})")
    finally:
        for ref in pending_refs:
            ray.cancel(ref)  # an error stops the audit; do not leave tasks running on the cluster
        if queue is not None:
            try:
                ray.kill(queue.actor)
            except ray.exceptions.RayError:
                pass  # already gone with its node


class RayExecutor:
    """Each variant trains (and is measured) as a Ray task, locally or on a cluster; results come back to the store."""

    name: ClassVar[str] = "ray"
    parallel = 1  # the cluster's size is Ray's to know; the first estimate assumes one task at a time

    def __init__(self, address: str | None, options: RayOptions | None = None):
        self.address = address
        self.options = options or RayOptions()

    @classmethod
    def from_spec(cls, execution, recipe) -> "RayExecutor":
        return cls(execution.ray_address, execution.ray_options)

    def start(self, job) -> None:
        return None  # Ray starts its workers when the tasks are submitted

    def after_run(self, variants, store, execution) -> dict:
        """Which node trained which seed was Ray's choice: the numeric environments they recorded must compare."""
        from ._environments import check_environments

        return check_environments(variants, store, execution.ray_options.allow_mixed_environments)

    def store_for(self, store):
        """Evaluations come back with the weights: an audit without a cache keeps them in a temporary folder."""
        from ._store import VariantCache

        return store if store.root is not None else VariantCache.temporary_cache()

    def train_ahead(self, variants, job, store, retrain, progress, evaluation=None) -> TrainReport:
        check_picklable(model=job.model, trainer=job.trainer)
        if unsendable(evaluation=evaluation) is not None:
            evaluation = None  # e.g. a perturbation defined in a closure: measured in this process instead
        todo = longest_first(pending(variants, store, retrain), job)
        train_on_ray(job, todo, store, self.address, retrain, self.options, progress, evaluation=evaluation)
        keys = frozenset(v.key for v in todo)
        return TrainReport(keys, keys if evaluation is not None else frozenset())
