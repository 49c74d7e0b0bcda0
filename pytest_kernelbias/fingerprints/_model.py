"""A model factory's fingerprint: what it builds and what that computes, never its code or its name.

Three parts, each a digest, so a cache warning can say which one moved:

- `tree`: every module's type, hyperparameters (`extra_repr`) and plain attributes (a drop rate, a flag),
  every parameter's and buffer's name, shape, dtype, and whether it trains or is saved;
- `init`: the state of the reference build under a fixed seed (what `build` returns);
- `behaviour`: on a fixed probe batch (real training images and seeded noise), the outputs in eval and in
  train mode (dropout drawn from a fixed seed), the input gradient and every parameter gradient of a
  seeded projection of the train-mode output, and the buffers after that train-mode step (batch-norm
  momentum).

Two factories share a fingerprint exactly when they build models that look and compute alike on the
probe, whatever their code, closures, globals or helpers.
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from ..errors import ModelOutputError
from ._digest import PROBE_SEED, array_digest, float_code, probe_conditions, probe_images

PROBE_REAL, PROBE_NOISE = 4, 4  # images of each kind in the probe batch
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def _plain(value: object) -> object:
    """A module attribute as JSON when it is a plain setting (numbers, strings, flags, tuples of them)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return float_code(value)
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        return _SKIP if any(i is _SKIP for i in items) else {type(value).__name__: items}
    return _SKIP


_SKIP = object()


def module_tree(model: nn.Module) -> str:
    """Digest of the module tree, parameters and buffers (no tensor values)."""
    rows: list[object] = []
    for name, module in model.named_modules(remove_duplicate=False):
        settings = {k: p for k, v in sorted(vars(module).items())
                    if not k.startswith("_") and (p := _plain(v)) is not _SKIP}
        kind = type(module)
        rows.append([name, f"{kind.__module__}.{kind.__qualname__}", _ADDRESS.sub("0x?", module.extra_repr()),
                     settings])
    for name, p in model.named_parameters(remove_duplicate=False):
        rows.append(["parameter", name, list(p.shape), str(p.dtype), p.requires_grad])
    saved = set(model.state_dict(keep_vars=True))
    for name, b in model.named_buffers(remove_duplicate=False):
        rows.append(["buffer", name, list(b.shape), str(b.dtype), name in saved])
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def state_digest(model: nn.Module) -> str:
    """Digest of every saved tensor's name and exact value."""
    h = hashlib.sha256()
    for name, value in model.state_dict().items():
        h.update(repr((name, array_digest(value))).encode())
    return h.hexdigest()


def probe_batch(train_images: torch.Tensor) -> torch.Tensor:
    """The probe: the first training images (real data) and seeded noise images of the same shape."""
    return probe_images(train_images, PROBE_REAL, PROBE_NOISE)


def _behaviour(model: nn.Module, x: torch.Tensor) -> str:
    h = hashlib.sha256()
    model.eval()
    with torch.no_grad():
        torch.manual_seed(PROBE_SEED)
        h.update(repr(array_digest(model(x.clone()))).encode())
    model.train()
    xg = x.clone().requires_grad_(True)
    torch.manual_seed(PROBE_SEED)
    out = model(xg + 0)  # not the leaf itself: a model may write into its input (an in-place first op)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(PROBE_SEED + 1))
    (out * weights).sum().backward()
    h.update(repr(array_digest(out.detach())).encode())
    h.update(repr(None if xg.grad is None else array_digest(xg.grad)).encode())
    for name, p in model.named_parameters():
        h.update(repr((name, None if p.grad is None else array_digest(p.grad))).encode())
    for name, b in model.named_buffers():
        h.update(repr((name, array_digest(b))).encode())
    return h.hexdigest()


def model_fingerprint(build: Callable[[], nn.Module], train_images: torch.Tensor) -> dict[str, str]:
    """{"tree", "init", "behaviour"} digests of the model `build` returns (see the module docstring).

    `build` must give the reference model at a fixed seed; it runs on the CPU on one thread, with the
    caller's random streams kept.
    """
    with probe_conditions():
        model = build().to("cpu")
        x = probe_batch(train_images)
        try:
            if any(is_lazy(t) for t in (*model.parameters(), *model.buffers())):
                with torch.no_grad():  # lazy modules take their shapes from a first forward, seeded like the rest
                    model.eval()(x)
            tree, init = module_tree(model), state_digest(model)
            behaviour = _behaviour(model, x)
        except Exception as exc:  # the user's forward or backward: name it before any training
            raise ModelOutputError(f"the model fails on the fingerprint probe ({PROBE_REAL} training images and "
                                   f"{PROBE_NOISE} noise images, train and eval mode, with a backward pass): "
                                   f"{type(exc).__name__}: {exc}. Its forward must accept float32 (N, C, H, W) "
                                   "batches and be differentiable in its input") from None
    return {"tree": tree, "init": init, "behaviour": behaviour}
