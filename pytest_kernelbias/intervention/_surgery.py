"""Rebuild one conv with new hyperparameters, keeping its class and output shape.

The replacement is a copy of the layer itself (so timm's `StdConv2d`,
`Conv2dSame`, `ScaledStdConv2d`, `CondConv2d`, ... keep their extra
behaviour) with a new kernel size, dilation or stride and a new weight tensor.

Shape rule: a conv with kernel k, dilation d and total padding P maps H to
floor((H + P - d(k-1) - 1)/s) + 1. Keeping P - d(k-1) fixed keeps that for
every H, so the new total padding is P' = P + d'(k'-1) - d(k-1). An odd P'
cannot be split evenly; the extra pixel goes right/bottom (TensorFlow's SAME
convention) through a forward pre-hook, so the layer's class is unchanged. A
negative P' (a kernel that reaches less far than the original, e.g. 3x3 in a
16x16 patchify stem, or any smaller kernel in a padding=0 layer) crops the input
instead, which keeps the output size just the same.
Layers with dynamic SAME padding (`_kinds.has_dynamic_same_pad`) pad from the
kernel at run time and need no help.

timm's padding helpers do not fit here: `get_padding` / `get_padding_value` /
`is_static_pad` choose padding for a new layer from (k, s, d), not the P' that
keeps an existing layer's shape, and `get_same_padding` / `pad_same` work from
the input size at run time and never crop. For P' >= 0 the split is timm's
(extra pixel right/bottom), which tests/test_conv_kinds.py checks against
`Conv2dSame`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _reverse_repeat_tuple

from ..errors import InterventionError
from ._kinds import has_dynamic_same_pad, is_cond_conv

INIT_MODES = ("fresh", "transfer", "interpolate")


def check_init(init: str) -> str:
    """`init` if it is one of `INIT_MODES`, else an `InterventionError` naming it and the valid modes."""
    if init not in INIT_MODES:
        raise InterventionError(f"init must be one of {INIT_MODES}, got {init!r}")
    return init


class AsymmetricPad:
    """Forward pre-hook padding the input (left, right, top, bottom) before the conv runs."""

    def __init__(self, pad: tuple[int, int, int, int], mode: str = "zeros"):
        self.pad = tuple(int(p) for p in pad)
        self.mode = mode

    def __call__(self, _module: nn.Module, args: tuple):
        x = args[0]
        x = F.pad(x, self.pad) if self.mode == "zeros" else F.pad(x, self.pad, mode=self.mode)
        return (x, *args[1:])

    def __repr__(self) -> str:
        return f"AsymmetricPad{self.pad}"


def asymmetric_pads(conv: nn.Module) -> dict[int, AsymmetricPad]:
    """The `AsymmetricPad` pre-hooks a previous intervention put on `conv`, by hook id."""
    return {key: hook for key, hook in conv._forward_pre_hooks.items() if isinstance(hook, AsymmetricPad)}


@dataclass
class Rebuilt:
    """The new conv plus what a reader of the report should know about it."""

    conv: nn.Module
    notes: list[str] = field(default_factory=list)


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        hint = {"kernel_size": "e.g. 3, 5 or 7", "dilation": "e.g. 1 or 2", "stride": "e.g. 1 or 2"}[name]
        raise InterventionError(f"{name} must be a positive int ({hint}), got {value!r}")
    return value


def _new_padding(conv: nn.Module, k: int, d: int, name: str) -> tuple[object, tuple | None]:
    """(padding attribute, asymmetric (l, r, t, b) or None) that keeps the output size."""
    if has_dynamic_same_pad(conv):
        return conv.padding, None
    if isinstance(conv.padding, str):
        if conv.padding == "same":
            return "same", None  # torch pads 'same' itself, even kernels included
        old_pad = (0, 0)
    else:
        old_pad = tuple(conv.padding)
    totals = [2 * p + d * (k - 1) - d0 * (k0 - 1) for p, k0, d0 in zip(old_pad, conv.kernel_size, conv.dilation)]
    th, tw = totals
    if th >= 0 and tw >= 0 and th % 2 == 0 and tw % 2 == 0:
        return (th // 2, tw // 2), None
    if min(totals) < 0 and getattr(conv, "padding_mode", "zeros") != "zeros":
        raise InterventionError(
            f"{name}: kernel_size={k}, dilation={d} reaches less far than the original kernel, so the input must be "
            f"cropped to keep the output size, which padding_mode={conv.padding_mode!r} cannot do. "
            "Use a kernel at least as large as the original."
        )
    # Odd totals put the extra pixel right/bottom; negative totals crop (F.pad with negative sizes).
    return (0, 0), (_split(tw)[0], _split(tw)[1], _split(th)[0], _split(th)[1])


def _split(total: int) -> tuple[int, int]:
    before = total // 2 if total >= 0 else -((-total) // 2)
    return before, total - before


def _resized_kernel(old: torch.Tensor, k: int, mode: str) -> torch.Tensor:
    """Old (O, I, kh, kw) weights at size k x k: centre crop / zero pad, or interpolation."""
    kh, kw = old.shape[-2:]
    if mode == "transfer":
        out = old.new_zeros(*old.shape[:-2], k, k)
        # Centre both kernels on each other; the crop/pad offsets follow from the size difference.
        sh, sw = (kh - k) // 2, (kw - k) // 2
        src = old[..., max(sh, 0):max(sh, 0) + min(k, kh), max(sw, 0):max(sw, 0) + min(k, kw)]
        th, tw = max(-sh, 0), max(-sw, 0)
        out[..., th:th + src.shape[-2], tw:tw + src.shape[-1]] = src
        return out
    flat = old.reshape(-1, 1, kh, kw).float()
    resized = F.interpolate(flat, size=(k, k), mode="bilinear", align_corners=True)
    # Keep the response to a constant input (the kernel's sum) exactly, by an additive correction:
    # multiplying would fail for kernels that sum to ~0.
    resized = resized + (flat.sum(dim=(-2, -1), keepdim=True) - resized.sum(dim=(-2, -1), keepdim=True)) / (k * k)
    return resized.reshape(*old.shape[:-2], k, k).to(old.dtype)


# A kernel this large is a mistyped level (one 3->64 conv at k=4097 already holds 3.2e9 weights); refused
# before the allocation rather than after the allocator fails.
MAX_KERNEL_WEIGHTS = 2**28


def _check_size(name: str, kernel: torch.Tensor, k: int) -> None:
    count = kernel[..., :1, :1].numel() * k * k
    if count > MAX_KERNEL_WEIGHTS:
        raise InterventionError(f"{name}: kernel size {k} gives {count:.3g} weights in this one layer "
                                f"({count * kernel.element_size() / 2**30:.3g} GiB); use a kernel no larger than "
                                f"the layer's input (a few to a few dozen pixels)")


def _new_weights(conv: nn.Module, new: nn.Module, name: str, k: int, init: str, seed: int | None) -> None:
    """Give `new` a k x k weight: fresh (seeded), resized from `conv`'s, or `conv`'s own when k is unchanged."""
    old_w = conv.weight.detach()
    cond = is_cond_conv(conv)
    old_kernel = old_w.view(-1, *conv.weight_shape) if cond else old_w
    _check_size(name, old_kernel, k)
    if init == "fresh" or (k, k) == tuple(old_kernel.shape[-2:]):
        new_kernel = old_kernel.new_empty(*old_kernel.shape[:-2], k, k)
    else:
        new_kernel = _resized_kernel(old_kernel, k, init)
    if cond:
        new.weight_shape = (new.out_channels, new.in_channels // new.groups, k, k)
        new.weight = nn.Parameter(new_kernel.reshape(conv.num_experts, -1).clone(),
                                  requires_grad=conv.weight.requires_grad)
    else:
        new.weight = nn.Parameter(new_kernel.clone(), requires_grad=conv.weight.requires_grad)
    if init != "fresh" and (k, k) == tuple(old_kernel.shape[-2:]):
        new.weight.data.copy_(old_w.view_as(new.weight))  # only dilation/stride changed: weights carry over
    if hasattr(new, "scale") and hasattr(new, "gain"):
        # ScaledStdConv2d caches gamma / sqrt(fan_in); the fan-in changed with the kernel.
        new.scale = conv.scale * math.sqrt(old_kernel[0].numel() / new_kernel[0].numel())
    if init == "fresh":
        with torch.random.fork_rng(devices=[]):
            # The layer's own reset_parameters draws from the global CPU generator; pin it.
            if seed is not None:
                torch.manual_seed(seed)
            new.reset_parameters()


def rebuild_conv(
    conv: nn.Module,
    name: str,
    kernel_size: int | None = None,
    dilation: int | None = None,
    stride: int | None = None,
    init: str = "fresh",
    seed: int | None = None,
) -> Rebuilt:
    """A copy of `conv` with the given hyperparameters changed (None keeps the current value)."""
    check_init(init)
    k0, d0, s0 = conv.kernel_size[0], conv.dilation[0], conv.stride[0]
    k = k0 if kernel_size is None else check_positive_int("kernel_size", kernel_size)
    d = d0 if dilation is None else check_positive_int("dilation", dilation)
    s = s0 if stride is None else check_positive_int("stride", stride)
    notes: list[str] = []
    new = copy.deepcopy(conv)
    padding, asym = _new_padding(conv, k, d, name)
    if s != s0:
        if padding == "same":
            raise InterventionError(f"{name}: torch's padding='same' does not allow stride {s}; "
                                    "intervene on a layer with numeric padding")
        notes.append(f"stride {s0}->{s} changes this layer's output size by a factor of about {s0}/{s}")
    new.kernel_size, new.dilation, new.stride = (k, k), (d, d), (s, s)
    new.padding = padding
    if isinstance(new, nn.Conv2d) and not isinstance(padding, str):
        new._reversed_padding_repeated_twice = _reverse_repeat_tuple(padding, 2)
    for key in asymmetric_pads(new):
        del new._forward_pre_hooks[key]
    if asym is not None:
        new.register_forward_pre_hook(AsymmetricPad(asym, getattr(conv, "padding_mode", "zeros")))
        if min(asym) < 0:
            notes.append(f"smaller reach than the original: input cropped, (left, right, top, bottom) = {asym}")
        else:
            notes.append(f"asymmetric padding (left, right, top, bottom) = {asym}")
    if d * (k - 1) + 1 < s:
        notes.append(f"kernel extent {d * (k - 1) + 1} < stride {s}: some input pixels are never seen")

    _new_weights(conv, new, name, k, init, seed)
    if (k, d, s) == (k0, d0, s0) and tuple(conv.kernel_size) == (k0, k0):
        # Usually the reference level; "placebo" is reserved for the placebo checks, which are something else.
        notes.append("unchanged level: hyperparameters equal the original's")
    new.train(conv.training)
    return Rebuilt(new, notes)
