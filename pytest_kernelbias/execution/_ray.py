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

import os
import socket
import warnings
from typing import Callable, ClassVar, Sequence

import torch

from .._variant import Variant
from ..errors import AuditConfigError, ResourceWaitWarning, WorkerDiedError
from ._base import TrainReport, longest_first, pending
from ._job import TrainingJob
from ._pool import check_picklable
from ._relay import Relayed, recording, reissue

_connected_to: str | None = None  # the address this process joined (None: a local instance)
RAY_HINT = "install Ray with `pip install 'pytest-kernelbias[ray]'` (or `pip install ray`)"


def _ray():
    try:
        import ray
    except ImportError:
        raise AuditConfigError(f"executor 'ray' needs Ray: {RAY_HINT}, or use the local executor") from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse an address whose Ray head does not answer, within seconds (ray.init itself waits minutes)."""
    if address == "auto":
        return  # Ray finds the cluster this machine belongs to, and says so quickly when there is none
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise AuditConfigError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or 'auto' "
                               "(e.g. 10.0.0.5:6379 for a head node started with `ray start --head`)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise AuditConfigError(
            f"Ray cluster at {address!r} is unreachable ({exc}). Start its head node with `ray start --head "
            f"--port={port}`, check the address and firewall, or leave the address empty to start a local "
            "Ray instance") from None


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address`, or start a local instance on loopback when it is None."""
    global _connected_to
    ray = _ray()
    if ray.is_initialized():
        if _connected_to == (address or None):
            return  # one connection per process, reused by every later audit
        ray.shutdown()  # Ray joins one cluster per process; leave the old one for the one asked for
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise AuditConfigError(f"could not connect to {where}: {exc}") from None
    _connected_to = address or None


MAX_RETRIES = 1  # a task whose worker or node dies is run once more, elsewhere if Ray can
WAIT_REPORT_S = 60.0  # a minute without a finished task: say what the cluster has free and what a task asks


def check_feasible(ray, asks: dict[str, float]) -> None:
    """Refuse, before submitting, a task that no node of the cluster could ever run (it would wait forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
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


def _result(ray, ref, variant: Variant, done: int, total: int) -> tuple[bytes, list[Relayed], str]:
    """A finished task's weights; a task error is raised as itself, a lost worker or node as WorkerDiedError."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        raise exc.as_instanceof_cause() from None  # e.g. NonFiniteLossError, as a local run raises it
    except ray.exceptions.RayError as exc:  # the worker process or its node died, past the task's retries
        raise WorkerDiedError(
            f"the Ray task training {variant.label} failed {MAX_RETRIES + 1} times ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); a node was lost, or the task ran out of memory. "
            f"{done} of {total} variants finished and are in the cache: run the audit again to train only the "
            "rest (give tasks more memory, or fewer at once per node, if it recurs)") from None


def _train_task(job: TrainingJob, variant: Variant) -> tuple[bytes, list[Relayed], str]:
    """Runs on a Ray worker: build, train, and send back the weights (safetensors, never pickle).

    Also sends back the warnings the training raised: Ray does not show a task's output here.
    """
    from safetensors.torch import save

    from ._memory import keep_freed_memory
    from ._threads import AUDIT_THREADS

    # The audit's thread policy (see _threads): one thread, so a cluster gives the numbers of a local run.
    torch.set_num_threads(AUDIT_THREADS)
    keep_freed_memory()  # the job arrives through Ray's shared object store, as a pool's through shared memory
    import ray

    model, caught = recording(lambda: job.fit(job.build(variant), variant))
    node = ray.get_runtime_context().get_node_id()
    return save({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}), caught, node


def train_on_ray(job: TrainingJob, variants: Sequence[Variant], store, address: str | None = None,
                 retrain: bool = False, cpus_per_task: float = 1,
                 progress: Callable[[str], None] | None = None, wait_report: float = WAIT_REPORT_S) -> None:
    """Run each variant's training as a Ray task and write the returned weights into `store` as they arrive."""
    if not variants:
        return
    from safetensors.torch import load

    connect(address)
    ray = _ray()
    asks = {"CPU": float(cpus_per_task), "GPU": 1.0 if torch.device(job.device).type == "cuda" else 0.0}
    check_feasible(ray, asks)
    remote = ray.remote(num_cpus=asks["CPU"], num_gpus=asks["GPU"], max_retries=MAX_RETRIES)(_train_task)
    shared = ray.put(job)  # one copy of the job (and its training set) in the object store, shared by every task
    pending_refs = {remote.remote(shared, v): v for v in variants}
    if progress is not None:
        free = {r: ray.available_resources().get(r, 0.0) for r in asks}
        progress(f"Ray: {len(variants)} training tasks queued, each asks {_fmt(asks)}; the cluster has {_fmt(free)} "
                 f"free on {sum(1 for n in ray.nodes() if n.get('Alive'))} node(s)")
    done_count, quiet = 0, 0.0
    try:
        while pending_refs:
            ready, _ = ray.wait(list(pending_refs), num_returns=1, timeout=wait_report)
            if not ready:
                quiet += wait_report
                _report_wait(ray, asks, quiet, done_count, len(variants), progress)
                continue
            quiet = 0.0
            variant = pending_refs.pop(ready[0])
            blob, caught, node = _result(ray, ready[0], variant, done_count, len(variants))
            reissue(caught)
            store.put(variant.key, load(blob), variant.meta(), replace=retrain)
            done_count += 1
            if progress is not None:
                progress(f"{variant.label} trained on Ray node {node[:12]} ({done_count}/{len(variants)} done, "
                         f"{len(pending_refs)} queued or running)")
    finally:
        for ref in pending_refs:
            ray.cancel(ref)  # an error stops the audit; do not leave tasks running on the cluster


class RayExecutor:
    """Each variant trains as a Ray task (locally or on a cluster); the weights come back into the store."""

    name: ClassVar[str] = "ray"
    parallel = 1  # the cluster's size is Ray's to know; the first estimate assumes one task at a time

    def __init__(self, address: str | None):
        self.address = address

    @classmethod
    def from_spec(cls, execution, recipe) -> "RayExecutor":
        return cls(execution.ray_address)

    def store_for(self, store):
        return store  # the weights come back to this process, into whatever store the audit has

    def train_ahead(self, variants, job, store, retrain, progress, evaluation=None) -> TrainReport:
        check_picklable(model=job.model, trainer=job.trainer)
        todo = longest_first(pending(variants, store, retrain), job)
        train_on_ray(job, todo, store, self.address, retrain, progress=progress)
        return TrainReport(frozenset(v.key for v in todo))
