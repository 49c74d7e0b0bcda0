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
from ..training import steps_per_epoch


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


class StepTimes:
    """Seconds of one training step per level, each level timed once per audit, on the first look that has one
    of its models to train: later looks of seeds="auto" reuse the times (prepare.py holds one per audit)."""

    def __init__(self, job):
        self.job = job
        self.per_level: dict = {}

    def estimate(self, variants: Sequence[Variant], parallel: int, progress=None) -> float | None:
        """Seconds to train `variants` with the default recipe on `parallel` workers; None for a user's trainer,
        whose steps are unknown. `progress` hears before a timing starts: on a large model a step takes long."""
        job = self.job
        here = torch.device(job.device).type == "cpu" or torch.cuda.is_available()
        if job.trainer is not None or not variants or not here:  # (a Ray audit may train on GPUs this one lacks)
            return None
        config, data = job.train_config, job.data
        batch = min(config.batch_size, len(data))
        untimed = list(dict.fromkeys(v.level for v in variants if v.level not in self.per_level))
        if untimed and progress is not None:
            progress(f"setup: timing 4 training steps of batch {batch} for each of {len(untimed)} level(s), for a "
                     "first time estimate")
        for level in untimed:
            model = job.intervention().build(level, 0, paired=job.paired)
            self.per_level[level] = step_seconds(model, data.images[:batch].clone(), data.labels[:batch].clone(),
                                                 job.device)  # copies: the model may write into its input
        steps = config.epochs * steps_per_epoch(len(data), config)
        return sum(self.per_level[v.level] for v in variants) * steps / max(1, min(parallel, len(variants)))


def first_estimate(job, variants: Sequence[Variant], parallel: int, progress=None) -> float | None:
    """`StepTimes.estimate` on a fresh timing of each level."""
    return StepTimes(job).estimate(variants, parallel, progress)


def eta_text(seconds: float, remaining: int) -> str:
    """A time left that never reads 0 while work remains."""
    if remaining <= 0:
        return "done"
    return "ETA <1s" if seconds < 1 else f"ETA {seconds:.0f}s"
