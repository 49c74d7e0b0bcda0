"""A cheap learning-rate range test: which peak lr of a recipe trains this model, before the audit trains it."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from itertools import chain, count, islice
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..data import SubgroupDataset
from ..errors import AuditConfigError
from ._trainer import Batches, Stepper, TrainConfig, loss_function, steps_per_epoch

# Peak lrs tried by default: geometric from 3e-4 to 3e-3 (the default recipe's lr): 3e-4, 9.5e-4, 3e-3.
# Measured, convnext_atto learns at 3e-4 to 6e-4 and stays at chance from 1e-3 up, so a factor ~3 between
# points resolves it; each point more costs a third more.
GRID = tuple(3e-4 * 10 ** (i / 2) for i in range(3))
# The probe's steps, all candidates together, are at most this share of one model's training ...
BUDGET = 0.25
# ... and at most this many per candidate: convnext_atto at batch 32 first separates its lrs at ~30-40 steps.
MAX_STEPS = 40
# A final loss this much (relative) above the starting one is rising; less is a plateau's batch noise.
RISE = 0.05
# A gain over chance below this share of the chance loss is batch noise, not evidence of learning.
EVIDENCE = 0.03


@dataclass(frozen=True)
class LrProbe:
    """The outcome of `lr_probe`: the chosen peak lr and what every candidate did.

    `losses` are each candidate's smoothed training loss at the end of its run (mean of its last
    quarter of steps; inf where the loss became NaN or infinite), in the order of `lrs`.
    """

    lr: float
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    diverged: tuple[bool, ...]  # non-finite, or the loss ended more than RISE above where it started
    chance: float  # the loss of a model that ignores the image (`chance_loss`): gains are measured from it
    steps: int  # training steps per candidate
    seconds: float  # wall time of the whole probe
    by_level: tuple = ()  # `lr_probe_levels`: (level, its losses in the order of `lrs`) per level pooled


def _losses(model_factory: Callable[[], nn.Module], data: SubgroupDataset, config: TrainConfig, seed: int,
            steps: int, device: torch.device) -> list[float]:
    """Per-step training losses of a fresh model run for `steps` steps of `config`, stopping at a non-finite one."""
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    losses: list[float] = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))  # the same initial weights and in-model draws for every candidate
        model = model_factory().to(device).train()
        model.to(memory_format=memory_format)
        # The recipe's warmup fraction of the probe's steps, then the peak held: a short cosine would cool
        # every candidate down before it shows whether its peak learns (measured: weaker separation).
        stepper = Stepper.for_model(model, config, len(data), device, total=steps, decay=False)
        batches = Batches(data, seed, config, device, memory_format)  # one batch order shared by every candidate
        loss_fn, use_amp = loss_function(config), config.amp and device.type == "cuda"
        for x, y in islice(chain.from_iterable(batches.epoch() for _ in count()), steps):
            loss, _ = stepper.fit_batch(model, loss_fn, x, y, use_amp)
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                break
    return losses


def probe_steps(config: TrainConfig, n: int, candidates: int) -> int:
    """Steps per candidate within `BUDGET` of the recipe's steps on `n` images, from 4 to `MAX_STEPS`."""
    total = config.epochs * steps_per_epoch(n, config)
    return max(4, min(MAX_STEPS, int(BUDGET * total) // candidates))


def _judge(losses: list[float], steps: int) -> tuple[float, bool]:
    """(smoothed final loss, diverged) of one candidate's per-step losses."""
    window = max(1, steps // 4)  # single batches are noisy; a quarter of the run averages that out
    if len(losses) < steps or not all(map(math.isfinite, losses)):
        return math.inf, True
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    return last, last > first * (1 + RISE)


def chance_loss(labels: torch.Tensor, label_smoothing: float) -> float:
    """Cross-entropy of the best model that ignores the image: it predicts the (smoothed) class frequencies."""
    freq = torch.bincount(labels).double() / len(labels)
    smoothed = (1 - label_smoothing) * freq + label_smoothing / len(freq)
    return float(-(smoothed * smoothed.clamp_min(1e-300).log()).sum())


def choose_lr(lrs: Sequence[float], losses: Sequence[float], diverged: Sequence[bool], chance: float,
              margin: float, recipe_lr: float) -> float:
    """The largest lr that did not diverge and whose gain over `chance` (chance - loss) is at least
    1 - `margin` of the best gain. When no such gain reaches `EVIDENCE` the probe was too short to
    tell, and the lr nearest the recipe's own (`recipe_lr`, on a log scale) whose loss stayed finite
    is kept: early BatchNorm nets' losses often rise before they fall (measured: efficientnet_b0)."""
    if all(math.isinf(loss) for loss in losses):
        tried = ", ".join(f"lr {lr:.2g}" for lr in lrs)
        raise AuditConfigError(f"the training loss became NaN or infinite at every learning rate the probe tried "
                               f"({tried}); try lower ones (lrs=[{min(lrs) / 10:.2g}, ...]) or check the inputs "
                               "for NaN/inf and normalise them")
    learning = [(lr, chance - loss) for lr, loss, bad in zip(lrs, losses, diverged) if not bad]
    best = max((gain for _, gain in learning), default=-math.inf)
    if best <= EVIDENCE * chance:
        finite = [lr for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
        return min(finite, key=lambda lr: abs(math.log(lr / recipe_lr)))
    # Gains, not losses, are compared: near chance every loss is within a few % of the best, learning or not.
    return max(lr for lr, gain in learning if gain >= (1 - margin) * best)


def lr_probe(
    model_factory: Callable[[], nn.Module],
    data: SubgroupDataset,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    steps: Optional[int] = None,
    lrs: Sequence[float] = GRID,
    margin: float = 0.2,
    device: str | torch.device = "cpu",
) -> LrProbe:
    """Pick the peak lr for `config` from `lrs` by a short run of each on a fresh model of `model_factory`.

    Every candidate trains a model built under `torch.manual_seed(seed)` for `steps` steps of the recipe
    (its optimizer, batch size, loss and warmup fraction, then the peak held) on `data` in the batch
    order `seed` draws, so candidates differ by their lr alone and the result is the same on every
    call. A candidate's gain is `chance_loss` minus its smoothed final loss (mean of its last quarter
    of steps). The chosen lr is the largest that did not diverge (non-finite, or its loss ended more
    than `RISE` above where it started) and whose gain is at least 1 - `margin` of the best gain;
    when no gain is evidence yet (too short to tell), the finite one nearest `config.lr`.
    Raises `AuditConfigError` when the loss became non-finite at every lr.

    Cost: len(lrs) * steps training steps; by default `steps` = `probe_steps`: at most a quarter of
    one model's training and at most 40 steps per candidate. Measured on 1 CPU thread, 2000 planted
    SynthFaces images at 32 px, against one model trained with `TrainConfig.for_model`
    (benchmarks/recipes_learn.py): convnext_atto (layernorm preset, 3 x 40 steps) 10.4 s vs 43 s, 0.24;
    SynthFacesCNN, timm and torchvision resnet18, mobilenetv3_small_050 (default recipe, 3 x 10 steps)
    0.21 to 0.24; efficientnet_b0 0.32 (building the model 3 times counts there).
    """
    if steps is None:
        steps = probe_steps(config, len(data), len(lrs))
    if steps < 4 or not lrs or not all(lr > 0 and math.isfinite(lr) for lr in lrs) or not 0 <= margin < 1:
        raise AuditConfigError(f"lr_probe needs steps >= 4, positive finite lrs and margin in [0, 1); got "
                               f"steps={steps}, lrs={list(lrs)}, margin={margin}. The defaults are steps=None "
                               "(a quarter of the recipe's steps, at most 40 per lr), lrs=GRID (3e-4 to 3e-3), "
                               "margin=0.2")
    device = torch.device(device)
    lrs = tuple(sorted(float(lr) for lr in lrs))
    started = time.perf_counter()
    judged = [_judge(_losses(model_factory, data, dataclasses.replace(config, lr=lr), seed, steps, device), steps)
              for lr in lrs]
    losses, diverged = tuple(j[0] for j in judged), tuple(j[1] for j in judged)
    chance = chance_loss(data.labels, config.label_smoothing)
    return LrProbe(choose_lr(lrs, losses, diverged, chance, margin, config.lr), lrs, losses, diverged, chance, steps,
                   time.perf_counter() - started)


def lr_probe_levels(factories: Mapping[str, Callable[[], nn.Module]], data: SubgroupDataset,
                    config: TrainConfig = TrainConfig(), seed: int = 0, steps: Optional[int] = None,
                    lrs: Sequence[float] = GRID, margin: float = 0.2, device: str | torch.device = "cpu") -> LrProbe:
    """One peak lr for every level of an audit, picked on all of them pooled: each level's model runs every
    candidate (as `lr_probe`), a candidate's loss is the mean over levels and it diverged if it did at any
    level. The pick is symmetric in the levels, so it never depends on which one is the reference, and every
    level trains with the recipe tuned for all of them (the estimand: k under one recipe tuned on every k).
    Cost: `lr_probe`'s times the number of levels."""
    started = time.perf_counter()
    probes = {name: lr_probe(build, data, config, seed, steps, lrs, margin, device)
              for name, build in factories.items()}
    first = next(iter(probes.values()))
    losses = tuple(float(np.mean([p.losses[i] for p in probes.values()])) for i in range(len(first.lrs)))
    diverged = tuple(any(p.diverged[i] for p in probes.values()) for i in range(len(first.lrs)))
    chosen = choose_lr(first.lrs, losses, diverged, first.chance, margin, config.lr)
    return LrProbe(chosen, first.lrs, losses, diverged, first.chance, first.steps, time.perf_counter() - started,
                   tuple((name, p.losses) for name, p in probes.items()))
