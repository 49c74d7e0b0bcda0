"""The default trainer, with paired seeds.

Pairing (DESIGN.md section 2): for one audit seed `s`, every intervention
level sees the same data order, the same dropout/augmentation stream and the
same initial weights in every layer that was not intervened on. Variance that
is common to the levels then cancels in the paired difference.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch
from torch import nn

from .._devices import gather, staged
from ..data._subgroups import SubgroupDataset
from ..errors import AuditConfigError, NonFiniteLossError

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Recipe for the default trainer. `lr` is the peak of a cosine schedule."""

    epochs: int = 4
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    optimizer: str = "adamw"  # or "sgd" (momentum 0.9, nesterov)
    amp: bool = True  # only takes effect on CUDA
    channels_last: bool = True  # faster training on the CPUs measured (docs/performance.md, benchmarks/training.py)
    compile: bool = False  # opt-in torch.compile; its compile time is paid once per trained model
    # How an audit trains the seeds of one variant: "auto" measures sequential against seed-batched
    # (vmap) training on the device and keeps the faster; "sequential" or "vmap" force one.
    seed_batching: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise AuditConfigError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise AuditConfigError(f"lr must be a positive finite number, got {self.lr}")
        if self.seed_batching not in ("auto", "sequential", "vmap"):
            raise AuditConfigError(f"seed_batching must be 'auto', 'sequential' or 'vmap', got {self.seed_batching!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise AuditConfigError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    def recipe(self) -> dict:
        """What decides the weights, for cache keys: everything but how the seeds are scheduled.

        Seed-batched and sequential training agree to float rounding, so a variant trained
        either way is the same variant (its metadata records which way it was trained).
        """
        return {k: v for k, v in asdict(self).items() if k != "seed_batching"}


def cosine_schedule(total: int) -> Callable[[int], float]:
    """Learning-rate factor per step: a cosine from 1 down to 0 over `total` steps."""
    return lambda step: 0.5 * (1 + math.cos(math.pi * step / total))


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def steps_per_epoch(n: int, config: TrainConfig) -> int:
    return math.ceil(n / config.batch_size)


@dataclass
class Stepper:
    """One model's optimizer, cosine schedule and AMP scaler, set up as the default recipe says.

    The sequential and the seed-batched trainer both build one per model, so
    the two can never drift apart in how a step updates the weights.
    """

    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    @classmethod
    def for_model(cls, model: nn.Module, config: TrainConfig, n: int, device: torch.device) -> "Stepper":
        opt = _optimizer(model, config)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_schedule(config.epochs * steps_per_epoch(n, config)))
        return cls(opt, sched, torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda"))

    def step(self) -> None:
        """Apply the gradients (skipped by the scaler on an AMP overflow) and advance the schedule."""
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()


def non_finite_loss(label: str, value: float, epoch: int, step: int, config: TrainConfig) -> NonFiniteLossError:
    """The error for a NaN or infinite training loss, naming the run, where it happened and the fixes."""
    return NonFiniteLossError(
        f"{label}: training loss became {value} at epoch {epoch + 1}, step {step + 1} (lr={config.lr:g}, "
        f"optimizer={config.optimizer}). Lower the learning rate, check the inputs for NaN/inf, or normalise them.")


def train(
    model: nn.Module,
    data: SubgroupDataset,
    seed: int,
    config: TrainConfig = TrainConfig(),
    device: str | torch.device = "cpu",
    label: str = "model",
    progress: Optional[Progress] = None,
) -> nn.Module:
    """Train `model` in place on `data` with cross-entropy and return it (in eval mode).

    The batch order and every other random draw during training depend on
    `seed` only, not on the model, which is what pairs the levels of one seed.
    """
    device = torch.device(device)
    model.to(device).train()
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    n = len(data)
    stepper = Stepper.for_model(model, config, n, device)
    use_amp = config.amp and device.type == "cuda"
    order_gen = torch.Generator().manual_seed(int(seed))
    images, labels = staged(data.images, device), staged(data.labels, device)
    step_model = torch.compile(model) if config.compile else model
    loss_fn = nn.CrossEntropyLoss()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))  # dropout and other in-model randomness
        for epoch in range(config.epochs):
            t_epoch = time.perf_counter()
            perm = torch.randperm(n, generator=order_gen)
            running, seen, correct = 0.0, 0, 0
            for step in range(steps_per_epoch(n, config)):
                idx = perm[step * config.batch_size:(step + 1) * config.batch_size]
                x = gather(images, idx, device, memory_format)
                y = gather(labels, idx, device)
                t_step = time.perf_counter()
                with torch.autocast(device.type, enabled=use_amp):
                    logits = step_model(x)
                    loss = loss_fn(logits, y)
                if not torch.isfinite(loss):
                    raise non_finite_loss(label, loss.item(), epoch, step, config)
                stepper.opt.zero_grad(set_to_none=True)
                stepper.scaler.scale(loss).backward()
                stepper.step()
                running += loss.item() * len(idx)
                seen += len(idx)
                if progress is not None:  # the epoch line's training accuracy; read-only, no effect on weights
                    correct += int((logits.detach().argmax(1) == y).sum())
                if config.compile and epoch == 0 and step == 0 and progress is not None:
                    progress(f"{label} torch.compile: first step took {time.perf_counter() - t_step:.1f}s")
            if progress is not None:
                rate = seen / max(time.perf_counter() - t_epoch, 1e-9)
                progress(f"{label} epoch {epoch + 1}/{config.epochs} loss {running / seen:.4f} train acc "
                         f"{correct / seen:.3f} {rate:.0f} img/s")
    return model.eval()
