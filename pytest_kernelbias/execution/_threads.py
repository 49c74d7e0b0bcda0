"""The audit's thread policy: one intra-op thread per training or evaluation; parallelism from processes.

A CPU reduction split over T threads adds its partial sums in an order that
depends on T, so the trained weights (and, measured on timm
mobilenetv3_small_050, even the verdict) depend on the thread count. One
thread everywhere (the caller, pool workers, Ray tasks) gives bit-identical
numbers for any `workers`, and P processes of one thread each never
oversubscribe P cores the way P processes of torch's default threads do.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch

AUDIT_THREADS = 1


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """One training process per usable core, shared out among pytest-xdist workers when there are several."""
    xdist = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    share = int(xdist) if xdist.isdigit() and int(xdist) > 0 else 1
    return max(1, usable_cores() // share)


@contextmanager
def audit_threads() -> Iterator[None]:
    """Run the block on `AUDIT_THREADS` intra-op threads, restoring the caller's count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(AUDIT_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def determinism() -> dict[str, bool]:
    """The determinism switches in force here: what every Ray task of the audit sets before it trains."""
    return {"deterministic": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark}


def apply_determinism(flags: dict[str, bool]) -> None:
    """Set the driver's determinism switches in a Ray task, whose process starts with torch's defaults."""
    if torch.are_deterministic_algorithms_enabled() != flags["deterministic"]:
        # Only when it changes: the call imports torch._dynamo lazily, which raced in a fresh Ray worker
        # ("partially initialized module") once in four CI runs.
        torch.use_deterministic_algorithms(flags["deterministic"])
    torch.backends.cudnn.deterministic = flags["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]


def key_environment(executor: str, device: str) -> dict[str, object]:
    """The numeric environment in the weights key: this machine's, or, where the models train on other
    machines (Ray), the switches every task sets, since which node trains a seed is Ray's choice; each task
    measures its node and the entry records it."""
    from ._base import trains_remotely

    if not trains_remotely(executor):
        return numeric_environment(device)
    return {"threads": AUDIT_THREADS, **determinism(), "measured": "by each Ray task on its node, in the entry"}


def numeric_environment(device: str) -> dict[str, object]:
    """What changes trained weights beyond the recipe and cannot be chosen per audit: in every weights key
    of a local run, and measured by each Ray task on its own node (the entry records it)."""
    env: dict[str, object] = {"threads": AUDIT_THREADS,
                              "deterministic": torch.are_deterministic_algorithms_enabled(),
                              "torch": torch.__version__}
    if torch.device(device).type == "cpu":
        env["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # AVX2 and AVX512 kernels round apart
    else:
        env["cudnn_deterministic"] = torch.backends.cudnn.deterministic
        env["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env
