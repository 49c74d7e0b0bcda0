"""The first time estimate of an audit, printed before any model trains: one timed training step per level.

A step (forward and backward at the recipe's batch size, on the audit's one thread) is timed after a
warm-up step, on a throwaway model of each level; times the steps of the recipe, the models each
level still has to train, divided among the workers that train in parallel. It is a first guess,
replaced by measured model times as the audit goes on.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch
from torch import nn

from .._variant import Variant
from ..training._trainer import steps_per_epoch


def step_seconds(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: str) -> float:
    """Seconds of one training step of `model` on this batch: the fastest of three after a warm-up step
    (allocations); the fastest, since a busy machine only ever adds time to a step."""
    model = model.to(device).train()
    x, y = images.to(device), labels.to(device)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    with torch.random.fork_rng(devices=[]):  # dropout draws here must not move the audit's generator
        for _ in range(4):
            started = time.perf_counter()
            loss_fn(model(x), y).backward()
            times.append(time.perf_counter() - started)
            model.zero_grad(set_to_none=True)
    return min(times[1:])


def first_estimate(job, variants: Sequence[Variant], parallel: int, progress=None) -> float | None:
    """Seconds to train `variants` with the default recipe on `parallel` workers; None for a user's trainer,
    whose steps are unknown. `progress` hears before the timing starts: on a large model a step takes long."""
    here = torch.device(job.device).type == "cpu" or torch.cuda.is_available()
    if job.trainer is None and variants and here:  # (a Ray audit may train on GPUs this machine lacks)
        config, data = job.train_config, job.data
        batch = min(config.batch_size, len(data))
        steps = config.epochs * steps_per_epoch(len(data), config)
        if progress is not None:
            levels = len({v.level for v in variants})
            progress(f"setup: timing 4 training steps of batch {batch} for each of {levels} level(s), for a first "
                     "time estimate")
        per_level = {}
        for v in variants:
            if v.level not in per_level:
                model = job.intervention().build(v.level, 0, paired=job.paired)
                per_level[v.level] = step_seconds(model, data.images[:batch].clone(), data.labels[:batch].clone(),
                                               job.device)  # copies: the model may write into its input
        return sum(per_level[v.level] for v in variants) * steps / max(1, min(parallel, len(variants)))
    return None


def eta_text(seconds: float, remaining: int) -> str:
    """A time left that never reads 0 while work remains."""
    if remaining <= 0:
        return "done"
    return "ETA <1s" if seconds < 1 else f"ETA {seconds:.0f}s"
