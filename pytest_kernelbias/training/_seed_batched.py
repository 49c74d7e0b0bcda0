"""Seed-batched training: the S seeds of one architecture variant in one vmapped step.

`train_seeds` reproduces `training.train` for S models at once (DESIGN.md section 7,
"Speed"): each model keeps its own data order, optimizer, schedule, GradScaler and
BatchNorm statistics, and only the forward/backward pass is batched with `torch.func.vmap`.
`choose_strategy` measures that against sequential `training.train` on this device and
keeps the faster, because which one wins depends on the device, batch and memory format.

The vmapped step always runs in NCHW, whatever `TrainConfig.channels_last` says: vmap's
conv rule folds the seeds into channels ([B, S*C, H, W]) and its pooling rule into the
batch ([S*B, C, H, W]), so no layout is channels_last for both. Measured on 2 CPU
cores (1 thread, 4 seeds, batch 64): vmap NCHW 498 img/s, channels_last laid out for the
conv 408, for the pooling 421. Trained models are returned in the configured format.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from .._stored import read_memo, write_memo
from ..data import SubgroupDataset
from ..errors import AuditConfigError
from . import _trainer as training
from ._trainer import Progress, Stepper, TrainConfig, loss_function, non_finite_loss, steps_per_epoch

STRATEGIES = ("sequential", "vmap")
# Layers known to draw random numbers in training mode, by class name (timm, torchvision).
_STOCHASTIC_NAMES = ("DropPath", "DropBlock2d", "DropBlock", "StochasticDepth")
_USE_SEQUENTIAL = "use the sequential strategy (training.train, one seed after another) for this model"


def stochastic_modules(model: nn.Module) -> list[str]:
    """Names of `model`'s submodules that draw random numbers in training mode, e.g. ``"head.drop (Dropout p=0.2)"``."""
    found = []
    for name, m in model.named_modules():
        kind = type(m).__name__
        if isinstance(m, nn.modules.dropout._DropoutNd) or kind in _STOCHASTIC_NAMES:
            p = getattr(m, "p", getattr(m, "drop_prob", None))
            if p is None or float(p) > 0:
                found.append(f"{name or kind} ({kind} p={p})")
        elif isinstance(m, nn.RReLU):
            found.append(f"{name or kind} (RReLU)")
    return found


def _tensors(model: nn.Module) -> list[tuple[str, tuple, torch.dtype]]:
    return [(f"{kind} {n}", tuple(t.shape), t.dtype)
            for kind, items in (("parameter", model.named_parameters()), ("buffer", model.named_buffers()))
            for n, t in items]


def architecture_fingerprint(model: nn.Module) -> str:
    """A short hash of the module tree (its repr) and every parameter/buffer name, shape and dtype."""
    return hashlib.sha256(repr((repr(model), _tensors(model))).encode()).hexdigest()[:16]


def check_batchable(models: Sequence[nn.Module]) -> None:
    """Raise `AuditConfigError` unless `models` share one deterministic architecture that vmap can batch."""
    if not models:
        raise AuditConfigError("train_seeds needs at least one model")
    noisy = stochastic_modules(models[0])
    if noisy:
        raise AuditConfigError(
            f"seed-batched training cannot reproduce the per-seed random stream of {', '.join(noisy)} "
            f"under vmap; {_USE_SEQUENTIAL}")
    ref = _tensors(models[0])
    for i, m in enumerate(models[1:], start=1):
        mine = _tensors(m)
        if mine != ref:
            diff = next((f"{a} vs {b}" for a, b in zip(ref, mine) if a != b), f"{len(ref)} vs {len(mine)} tensors")
            raise AuditConfigError(f"seed-batched models must share one architecture; model 0 and model {i} differ: "
                                   f"{diff}. Batch only the seeds of one variant.")
        if type(m) is not type(models[0]) or repr(m) != repr(models[0]):
            raise AuditConfigError(f"seed-batched models must share one architecture; model {i} is built differently "
                                   "from model 0 (module tree differs). Batch only the seeds of one variant.")


def _checked_labels(models: list, order_seeds: Sequence[int], labels: Optional[Sequence[str]]) -> list[str]:
    check_batchable(models)
    if len(order_seeds) != len(models):
        raise AuditConfigError(f"train_seeds got {len(models)} models but {len(order_seeds)} order seeds")
    labels = list(labels) if labels is not None else [f"model {i + 1}/{len(models)}" for i in range(len(models))]
    if len(labels) != len(models):
        raise AuditConfigError(f"train_seeds got {len(models)} models but {len(labels)} labels")
    return labels


def _vmapped_losses(models: list, config: TrainConfig) -> Callable:
    """Per-model losses for (S, B, ...) batches, from stacked parameters and buffers, in one vmapped call."""
    skeleton = copy.deepcopy(models[0]).to("meta").train()
    loss_fn = loss_function(config)  # the sequential trainer's loss, label smoothing included

    def one_model(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(skeleton, (p, b), (x,)), y)

    # randomness="error": any random op left in forward (functional dropout) fails loudly instead of diverging.
    return vmap(one_model, randomness="error")


def train_seeds(
    models: Sequence[nn.Module],
    data: SubgroupDataset,
    order_seeds: Sequence[int],
    config: TrainConfig = TrainConfig(),
    device: str | torch.device = "cpu",
    labels: Optional[Sequence[str]] = None,
    progress: Optional[Progress] = None,
) -> list[nn.Module]:
    """Train S same-architecture `models` together, as `training.train(models[i], data, order_seeds[i], config)` would.

    Each model gets its own batch order, `Stepper` (optimizer, lr schedule with its
    warmup, GradScaler) and BatchNorm statistics, and the recipe's loss (label
    smoothing included); the forward/backward pass runs once for all S under
    `torch.func.vmap`. Results equal sequential training up to float32 reduction order. Weights are
    written into `models`, returned in eval mode and in the memory format `config.channels_last` asks for.
    Progress gets one line per epoch with each model's mean loss and images/s summed over models.
    """
    models = list(models)
    labels = _checked_labels(models, order_seeds, labels)
    device, n, s_count = torch.device(device), len(data), len(models)
    for m in models:
        m.to(device).train()
        m.to(memory_format=torch.contiguous_format)  # see the module docstring
    # One stepper per model: an AMP overflow skips only that model's step, as in train().
    steppers = [Stepper.for_model(m, config, n, device) for m in models]
    use_amp = config.amp and device.type == "cuda"
    order_gens = [torch.Generator().manual_seed(int(s)) for s in order_seeds]
    params = [dict(m.named_parameters()) for m in models]
    buffers = {name: torch.stack([dict(m.named_buffers())[name] for m in models])
               for name, _ in models[0].named_buffers()}  # BatchNorm updates these in place, per model
    losses_of = _vmapped_losses(models, config)
    for epoch in range(config.epochs):
        t_epoch = time.perf_counter()
        perms = [torch.randperm(n, generator=g) for g in order_gens]
        running, seen = torch.zeros(s_count, device=device), 0
        for step in range(steps_per_epoch(n, config)):
            idx = torch.stack([p[step * config.batch_size:(step + 1) * config.batch_size] for p in perms])
            x = data.images[idx].to(device, non_blocking=True)  # (S, B, C, H, W): model i sees its own batch
            y = data.labels[idx].to(device, non_blocking=True)
            stacked = {name: torch.stack([p[name] for p in params]) for name in params[0]}
            with torch.autocast(device.type, enabled=use_amp):
                losses = _forward(losses_of, stacked, buffers, x, y, labels)
            bad = (~torch.isfinite(losses.detach())).nonzero().flatten().tolist()
            if bad:
                label = f"{labels[bad[0]]} (order seed {order_seeds[bad[0]]}, seed-batched)"
                raise non_finite_loss(label, losses[bad[0]].item(), epoch, step, config)
            for st in steppers:
                st.opt.zero_grad(set_to_none=True)
            # Summing keeps gradients per model: model i's parameters only feed losses[i].
            torch.stack([st.scaler.scale(loss) for st, loss in zip(steppers, losses.unbind())]).sum().backward()
            for st in steppers:
                st.step()
            running += losses.detach().float() * idx.shape[1]
            seen += idx.shape[1]
        if progress is not None:
            rate = s_count * seen / max(time.perf_counter() - t_epoch, 1e-9)
            mean = "/".join(f"{v:.4f}" for v in (running / seen).tolist())
            progress(f"{_batch_label(labels)} epoch {epoch + 1}/{config.epochs} loss {mean} {rate:.0f} img/s")
    return _finished(models, buffers, config)


def _forward(losses_of, stacked: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor,
             labels: list[str]) -> torch.Tensor:
    """Every model's loss on its own batch in one vmapped pass; random draws in forward cannot be batched."""
    try:
        return losses_of(stacked, buffers, x, y)
    except RuntimeError as e:
        if "randomness" not in str(e):
            raise
        raise AuditConfigError(f"{labels[0]}: the model draws random numbers in forward ({e}); "
                               f"{_USE_SEQUENTIAL}") from e


def _finished(models: list[nn.Module], buffers: dict, config: TrainConfig) -> list[nn.Module]:
    """Each model's own BatchNorm statistics written back; eval mode, in the memory format the recipe asks."""
    with torch.no_grad():
        for i, m in enumerate(models):
            for name, buf in m.named_buffers():
                buf.copy_(buffers[name][i])
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    return [m.to(memory_format=memory_format).eval() for m in models]


def _batch_label(labels: list[str]) -> str:
    """``"k=5 seed 1/3 + 2 more (seed-batched)"``: short enough for one progress line."""
    more = f" + {len(labels) - 1} more" if len(labels) > 1 else ""
    return f"{labels[0]}{more} (seed-batched)"


@dataclass(frozen=True)
class StrategyChoice:
    """How to train one variant's seeds: ``"sequential"`` (`training.train` per seed) or ``"vmap"`` (`train_seeds`).

    Rates are training images per second summed over models (one image seen by S
    models counts S times), measured on this device; None where not measured.
    """

    strategy: str
    sequential_img_per_s: Optional[float]
    vmap_img_per_s: Optional[float]
    reason: str


_CHOICES: dict[tuple, StrategyChoice] = {}


def clear_strategy_memo() -> None:
    """Forget every measured choice, e.g. after the machine's load changed."""
    _CHOICES.clear()


def choose_strategy(
    build: Callable[[], nn.Module],
    data: SubgroupDataset,
    config: TrainConfig,
    device: str | torch.device,
    seeds: int,
    probe_steps: int = 5,
    memo: Path | None = None,
) -> StrategyChoice:
    """Measure sequential against seed-batched training of `seeds` models from `build` and pick the faster.

    Each candidate runs 2 warm-up steps, then `probe_steps` timed steps of the real
    trainer on the first images of `data`, twice, interleaved; the best run counts.
    Models that vmap cannot batch exactly get ``"sequential"`` unmeasured. The choice
    is memoized per (architecture, device, seeds, batch size, memory format, AMP, image
    shape, torch version): in this process, and in the JSON file `memo` when given, so
    later runs on the same cache decide the same way without measuring again.
    """
    if seeds < 1 or probe_steps < 1:
        raise AuditConfigError(f"choose_strategy needs seeds >= 1 and probe_steps >= 1, got {seeds} and {probe_steps}")
    if seeds == 1:
        return StrategyChoice("sequential", None, None, "one seed: nothing to batch")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # probing must not shift the caller's random stream
        fingerprint = architecture_fingerprint(build())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else torch.backends.cpu.get_cpu_capability()
    key = json.dumps([fingerprint, device.type, name, seeds, config.batch_size, config.channels_last, config.amp,
                      list(data.images.shape[1:]), torch.__version__])
    if key not in _CHOICES:
        known = _read_memo(memo).get(key)
        if known is not None:
            _CHOICES[key] = StrategyChoice(known["strategy"], known["sequential"], known["vmap"],
                                           f"{known['reason']} (decided earlier, kept in {memo})")
        else:
            _CHOICES[key] = choice = _probe(build, data, config, device, seeds, probe_steps)
            _write_memo(memo, key, choice)
    return _CHOICES[key]


def _read_memo(memo: Path | None) -> dict:
    found = read_memo(memo) or {}  # absent, damaged or edited: measure again (a decision only ever costs time)
    return {k: v for k, v in found.items() if isinstance(v, dict) and v.get("strategy") in ("vmap", "sequential")
            and isinstance(v.get("reason"), str)}


def _write_memo(memo: Path | None, key: str, choice: StrategyChoice) -> None:
    # Sealed and replaced whole (a concurrent reader never sees half a file); read-only: this process only.
    write_memo(memo, {**_read_memo(memo), key: {"strategy": choice.strategy, "sequential": choice.sequential_img_per_s,
                                                "vmap": choice.vmap_img_per_s, "reason": choice.reason}})


def _seconds(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # kernels are asynchronous; count them all
    return time.perf_counter() - t0


def _probe(build: Callable[[], nn.Module], data: SubgroupDataset, config: TrainConfig, device: torch.device,
           seeds: int, probe_steps: int) -> StrategyChoice:
    """Time both candidates on this device (see `choose_strategy`)."""
    with torch.random.fork_rng(devices=[]):
        models = [build() for _ in range(seeds)]
        alone = build()  # the sequential candidate's own model, so neither run trains the other's
    try:
        check_batchable(models)
    except AuditConfigError as e:
        return StrategyChoice("sequential", None, None, f"not batchable: {e}")
    cfg = dataclasses.replace(config, epochs=1)
    warm = data.subset(torch.arange(min(len(data), 2 * config.batch_size)))
    timed = data.subset(torch.arange(min(len(data), probe_steps * config.batch_size)))
    order = list(range(seeds))

    def sequential(d: SubgroupDataset) -> object:
        return training.train(alone, d, 0, cfg, device)

    def batched(d: SubgroupDataset) -> object:
        return train_seeds(models, d, order, cfg, device)

    sequential(warm)
    try:
        batched(warm)
    except Exception as e:  # noqa: BLE001 - any failure of vmap on this architecture means "train sequentially"
        return StrategyChoice("sequential", None, None, f"vmap failed on this architecture ({type(e).__name__}: {e})")
    t_seq = t_vmap = math.inf
    for _ in range(2):  # interleaved, best of two: background load hits both alike
        t_seq = min(t_seq, _seconds(lambda: sequential(timed), device))
        t_vmap = min(t_vmap, _seconds(lambda: batched(timed), device))
    seq_rate, vmap_rate = len(timed) / t_seq, seeds * len(timed) / t_vmap
    strategy = "vmap" if vmap_rate > seq_rate else "sequential"
    reason = (f"{strategy} is faster: vmap/sequential = {vmap_rate / seq_rate:.2f} ({vmap_rate:.0f} vs {seq_rate:.0f} "
              f"img/s summed over models; {seeds} seeds, batch {config.batch_size}, "
              f"{'channels_last' if config.channels_last else 'NCHW'}, {device.type}, best of 2 x {len(timed)} images)")
    return StrategyChoice(strategy, seq_rate, vmap_rate, reason)
