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
from typing import Callable, Iterator, Optional

import torch
from torch import nn

from .._devices import gather, staged
from ..data import SubgroupDataset
from ..errors import AuditConfigError, NonFiniteLossError

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Recipe for the default trainer. `lr` is the peak of the schedule: a linear warmup over the
    `warmup` fraction of all steps, then a cosine down to 0 over the rest (see `lr_schedule`)."""

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
    warmup: float = 0.0  # fraction of all steps in [0, 1) that ramp the lr up to its peak; 0: none
    label_smoothing: float = 0.0  # in [0, 1), as torch's cross_entropy(label_smoothing=) defines it

    @classmethod
    def for_model(cls, model: object, **changes: object) -> "TrainConfig":
        """The named preset for `model`'s normalization layers (`training.preset_for`), with `changes` applied.

        `model` is an nn.Module, a zero-argument factory returning one, or a timm model name.
        """
        from ._presets import config_for  # the presets are TrainConfigs: importing them at the top is a cycle

        return config_for(model, **changes)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise AuditConfigError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise AuditConfigError(f"lr must be a positive finite number, got {self.lr}")
        if self.seed_batching not in ("auto", "sequential", "vmap"):
            raise AuditConfigError(f"seed_batching must be 'auto', 'sequential' or 'vmap', got {self.seed_batching!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise AuditConfigError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if not 0.0 <= self.warmup < 1.0:  # also refuses NaN
            raise AuditConfigError(f"warmup is the fraction of all training steps spent ramping up the lr, in "
                                   f"[0, 1); got {self.warmup}. Use e.g. warmup=0.1, or 0 for no warmup")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise AuditConfigError(f"label_smoothing must be in [0, 1) (1 would make every target uniform); got "
                                   f"{self.label_smoothing}. Use e.g. label_smoothing=0.1, or 0 for none")

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


def warmup_steps(total: int, warmup: float) -> int:
    """How many of `total` steps warm up: the `warmup` fraction, rounded up, so any warmup > 0 has one."""
    return math.ceil(warmup * total)


def lr_schedule(total: int, warmup: float, decay: bool = True) -> Callable[[int], float]:
    """Learning-rate factor per step (0-based) of a `total`-step run: step t < W = `warmup_steps` runs at
    (t + 1) / W of the peak, so the first step already moves and step W - 1 reaches it; then a cosine from
    1 down to 0 over the other total - W steps (or 1 throughout when not `decay`). With warmup 0 and
    decay this is `cosine_schedule(total)` itself."""
    warm = warmup_steps(total, warmup)
    if warm == 0 and decay:
        return cosine_schedule(total)  # today's schedule, bit for bit
    # max(.., 1): LambdaLR asks for step `total` after the last step, which must not divide by zero
    after = cosine_schedule(max(total - warm, 1)) if decay else (lambda _: 1.0)
    return lambda step: (step + 1) / warm if step < warm else after(step - warm)


def loss_function(config: TrainConfig) -> nn.CrossEntropyLoss:
    """The training loss of the recipe: cross-entropy, with the recipe's label smoothing."""
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def steps_per_epoch(n: int, config: TrainConfig) -> int:
    return math.ceil(n / config.batch_size)


@dataclass
class Stepper:
    """One model's optimizer, lr schedule and AMP scaler, set up as the default recipe says.

    The sequential and the seed-batched trainer both build one per model, so
    the two can never drift apart in how a step updates the weights.
    """

    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    @classmethod
    def for_model(cls, model: nn.Module, config: TrainConfig, n: int, device: torch.device,
                  total: Optional[int] = None, decay: bool = True) -> "Stepper":
        """`total`: steps the schedule spans, by default the recipe's (`config.epochs` passes over `n` images);
        `decay=False` holds the peak after the warmup instead of the cosine (see `lr_schedule`)."""
        opt = _optimizer(model, config)
        total = config.epochs * steps_per_epoch(n, config) if total is None else total
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(total, config.warmup, decay))
        return cls(opt, sched, torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda"))

    def step(self) -> None:
        """Apply the gradients (skipped by the scaler on an AMP overflow) and advance the schedule."""
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()

    def fit_batch(self, model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  use_amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and loss on batch (x, y), then one update unless the loss is not finite; (loss, logits)."""
        with torch.autocast(x.device.type, enabled=use_amp):
            logits = model(x)
            loss = loss_fn(logits, y)
        if torch.isfinite(loss):  # a NaN step would poison the weights; the caller decides what to say
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.step()
        return loss, logits


class Batches:
    """Mini-batches of `data` on `device`, in the order `seed` draws: one permutation per epoch.

    The order depends on `seed` and the data size only, never on the model: that pairs the levels.
    """

    def __init__(self, data: SubgroupDataset, seed: int, config: TrainConfig, device: torch.device,
                 memory_format: torch.memory_format = torch.contiguous_format):
        self.order_gen = torch.Generator().manual_seed(int(seed))
        self.images, self.labels = staged(data.images, device), staged(data.labels, device)
        self.n, self.batch_size, self.steps = len(data), config.batch_size, steps_per_epoch(len(data), config)
        self.device, self.memory_format = device, memory_format

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The next epoch's (images, labels) batches; the last one may be smaller."""
        perm = torch.randperm(self.n, generator=self.order_gen)
        for step in range(self.steps):
            idx = perm[step * self.batch_size:(step + 1) * self.batch_size]
            yield gather(self.images, idx, self.device, self.memory_format), gather(self.labels, idx, self.device)


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
    stepper = Stepper.for_model(model, config, len(data), device)
    use_amp = config.amp and device.type == "cuda"
    batches = Batches(data, seed, config, device, memory_format)
    step_model = torch.compile(model) if config.compile else model
    loss_fn = loss_function(config)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))  # dropout and other in-model randomness
        for epoch in range(config.epochs):
            t_epoch = time.perf_counter()
            running, seen, correct = 0.0, 0, 0
            for step, (x, y) in enumerate(batches.epoch()):
                t_step = time.perf_counter()
                loss, logits = stepper.fit_batch(step_model, loss_fn, x, y, use_amp)
                if not torch.isfinite(loss):
                    raise non_finite_loss(label, loss.item(), epoch, step, config)
                running += loss.item() * len(y)
                seen += len(y)
                if progress is not None:  # the epoch line's training accuracy; read-only, no effect on weights
                    correct += int((logits.detach().argmax(1) == y).sum())
                if config.compile and epoch == 0 and step == 0 and progress is not None:
                    progress(f"{label} torch.compile: first step took {time.perf_counter() - t_step:.1f}s")
            if progress is not None:
                rate = seen / max(time.perf_counter() - t_epoch, 1e-9)
                progress(f"{label} epoch {epoch + 1}/{config.epochs} loss {running / seen:.4f} train acc "
                         f"{correct / seen:.3f} {rate:.0f} img/s")
    return model.eval()
