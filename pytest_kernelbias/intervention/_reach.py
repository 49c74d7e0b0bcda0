"""Whether each level's kernel fits the input its layer convolves (checked before any training)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import InterventionError
from ._downsample import is_pool
from ._kinds import has_dynamic_same_pad
from ._levels import scoped
from ._select import kernel_of


def layer_input_sizes(model: nn.Module, names: Sequence[str], example: torch.Tensor) -> dict[str, tuple[int, int]]:
    """(H, W) of the input each named layer sees on `example`, from one forward pass in eval mode."""
    sizes: dict[str, tuple[int, int]] = {}

    def record(name: str):
        def hook(_module, args) -> None:  # returns None: a pre-hook's return value would replace the input
            sizes.setdefault(name, tuple(args[0].shape[-2:]))
        return hook

    hooks = [model.get_submodule(n).register_forward_pre_hook(record(n)) for n in names]
    was = model.training
    try:
        with torch.no_grad():
            model.eval()(example)
    except RuntimeError as exc:
        raise InterventionError(f"the original model fails on an input of shape {tuple(example.shape)}: "
                                f"{exc}") from None
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return sizes


def check_kernel_reach(probe: nn.Module, layers: Sequence[str], changes: Sequence, image_shape: Sequence[int]) -> None:
    """Refuse a level whose kernel, with its dilation, spans more than its layer's input plus the original padding.

    Such a kernel's outer taps only ever meet padding: its weights there never
    learn, and it costs time (one k=201 step on 32 x 32 took 75 s).
    """
    sizes = layer_input_sizes(probe, layers, torch.zeros(1, *image_shape))
    for level in changes:
        for name, change in scoped(level, layers):
            conv, size = probe.get_submodule(name), sizes.get(name)
            if size is None or (change.kernel_size is None and change.dilation is None) or is_pool(conv):
                continue  # off the forward path (resolve_layers says so), its reach kept, or a pool (refused later)
            k = change.kernel_size or kernel_of(conv)[0]
            d = change.dilation or int(conv.dilation[0])
            extent, pads = d * (k - 1) + 1, _original_pads(conv)
            for axis, (n, pad) in enumerate(zip(size, pads)):
                if extent > n + 2 * pad:
                    raise InterventionError(
                        f"{name}: level {change} spans {extent} pixels (dilation {d}) but the layer's input is "
                        f"{size[0]}x{size[1]}, padded by {pad} to {n + 2 * pad} along axis {axis}; its outer taps "
                        f"would only ever see padding. Use a kernel of at most {(n + 2 * pad - 1) // d + 1} here, "
                        f"or larger images")


def _original_pads(conv: nn.Module) -> tuple[int, int]:
    """The padding the architecture gives `conv` on each side; SAME padding is half the dilated kernel."""
    k, d = kernel_of(conv), conv.dilation
    if conv.padding == "same" or has_dynamic_same_pad(conv):
        return d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2
    if conv.padding == "valid":
        return 0, 0
    return int(conv.padding[0]), int(conv.padding[1])
