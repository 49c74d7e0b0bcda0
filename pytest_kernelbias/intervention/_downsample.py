"""How a layer downsamples: anti-aliasing (a fixed binomial low-pass before the subsampling, Zhang, "Making
convolutional networks shift-invariant again", ICML 2019) and the kind of a pooling layer.

Both keep the layer's output shape for every input size. A layer of stride s whose output is
floor((H + P - e)/s) + 1 (P its total padding, e its extent) becomes the same layer at stride 1, whose output is
H + P - e + 1, then a blur of odd size f padded by (f - 1)/2 on each side and subsampled by s, whose output is
floor((H + P - e)/s) + 1 again. A blur pool in place of a pool of kernel k, stride s and padding p is a k x k
binomial filter with that stride and padding: the pool's own geometry.

timm's `BlurPool2d` is this blur at stride 2 (tests/test_downsample.py checks the outputs agree); its padding
rule, (s - 1 + f - 1) // 2, keeps the shape only at stride 2, and its channel-free form is recent, so the
blur here is its own small module.
"""

from __future__ import annotations

import copy
from math import comb

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InterventionError
from ._surgery import Rebuilt, rebuild_conv

POOLING_KINDS = ("max", "avg", "blur")


def is_pool(module: nn.Module) -> bool:
    """A downsampling pool a `Pooling` or `AntiAlias` level can change (global and adaptive pools are not)."""
    return isinstance(module, (nn.MaxPool2d, nn.AvgPool2d))


def pool_kind(module: nn.Module) -> str | None:
    if isinstance(module, BlurPool):
        return "blur"
    return "max" if isinstance(module, nn.MaxPool2d) else "avg" if isinstance(module, nn.AvgPool2d) else None


def _pair(value: object) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)  # type: ignore


def binomial_filter(size: int) -> torch.Tensor:
    """The size x size binomial low-pass, (C(n-1, i) C(n-1, j)) / 4^(n-1): sums to 1."""
    row = torch.tensor([comb(size - 1, i) for i in range(size)], dtype=torch.float64) / 2 ** (size - 1)
    return (row[:, None] * row[None, :]).float()


def pooled_size(n: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False) -> int:
    """torch's pooling output size along one axis (with ceil_mode, a last window must start inside the input or
    its left padding)."""
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + padding:
        out -= 1
    return out


class BlurPool(nn.Module):
    """A fixed binomial low-pass of `filter_size`, applied per channel with `stride` and `padding` (reflected
    where it fits the input, else zeros); no parameters, so the state dict is the architecture's own. With
    `ceil_mode` (a blur pool in place of a ceil-mode pool) its output has that pool's size: the last, partial
    windows see the edge repeated."""

    def __init__(self, filter_size: int, stride: int = 2, padding: tuple[int, int] | int | None = None,
                 ceil_mode: bool = False):
        super().__init__()
        self.filter_size, self.stride, self.ceil_mode = int(filter_size), _pair(stride), bool(ceil_mode)
        self.padding = _pair((self.filter_size - 1) // 2 if padding is None else padding)
        self.register_buffer("filt", binomial_filter(self.filter_size)[None, None], persistent=False)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Blur and subsample `x`; `size` (or, in ceil mode, the ceil-mode pool's) is the output size to give."""
        (ph, pw), f = self.padding, self.filter_size
        if size is None and self.ceil_mode:
            size = tuple(pooled_size(n, f, s, p, ceil_mode=True)
                         for n, s, p in zip(x.shape[-2:], self.stride, self.padding))  # type: ignore[assignment]
        if ph or pw:
            fits = ph < x.shape[-2] and pw < x.shape[-1]
            x = F.pad(x, (pw, pw, ph, ph), mode="reflect" if fits else "constant")
        if size is not None:  # extend right and bottom until the last window fits, then keep `size`
            extra = [max(0, (n - 1) * s + f - m) for n, s, m in zip(size, self.stride, x.shape[-2:])]
            if any(extra):
                x = F.pad(x, (0, extra[1], 0, extra[0]), mode="replicate")
        channels = x.shape[1]
        weight = self.filt.to(x.dtype).expand(channels, 1, f, f)
        out = F.conv2d(x, weight, stride=self.stride, groups=channels)
        return out if size is None else out[..., :size[0], :size[1]]

    def extra_repr(self) -> str:
        return (f"filter_size={self.filter_size}, stride={self.stride}, padding={self.padding}"
                + (", ceil_mode=True" if self.ceil_mode else ""))


class AntiAliased(nn.Module):
    """`inner` (the layer at stride 1), then a `BlurPool` that subsamples by the layer's stride. The conv's
    weights stay `inner`'s, so `weight` and `kernel_size` read through to it."""

    def __init__(self, inner: nn.Module, blur: BlurPool, ceil_geometry: tuple | None = None):
        super().__init__()
        self.inner, self.blur = inner, blur
        # A ceil-mode pool's (kernel, stride, padding, dilation) per axis: its output size, which the blur gives.
        self.ceil_geometry = ceil_geometry

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = None
        if self.ceil_geometry is not None:
            size = tuple(pooled_size(n, *axis, ceil_mode=True) for n, axis in zip(x.shape[-2:], self.ceil_geometry))
        return self.blur(self.inner(x), size)

    def extra_repr(self) -> str:
        return "ceil_mode=True" if self.ceil_geometry is not None else ""

    def __getattr__(self, name: str):
        if name in ("weight", "kernel_size", "dilation", "groups", "in_channels", "out_channels"):
            return getattr(self._modules["inner"], name)
        return super().__getattr__(name)


def check_filter_size(filter_size: object) -> int:
    if isinstance(filter_size, bool) or not isinstance(filter_size, int) or filter_size < 3 or filter_size % 2 == 0:
        raise InterventionError(f"AntiAlias(filter_size={filter_size!r}): the blur needs an odd size of at least 3 "
                                "(3 or 5 as in Zhang 2019) so that it keeps the layer's output shape")
    return filter_size


def check_pooling(kind: object) -> str:
    if kind not in POOLING_KINDS:
        raise InterventionError(f"Pooling({kind!r}): the kind is one of {POOLING_KINDS}")
    return kind  # type: ignore[return-value]


def anti_alias(layer: nn.Module, name: str, filter_size: int) -> AntiAliased:
    """`layer` at stride 1, then a blur of `filter_size` that subsamples by its stride; weights unchanged."""
    stride = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
    if stride == (1, 1):
        raise InterventionError(f"{name}: AntiAlias blurs before a subsampling, and this {type(layer).__name__} has "
                                "stride 1: nothing is subsampled. Select a strided conv or a pooling layer (e.g. "
                                "resnet's conv1 or maxpool)")
    inner = copy.deepcopy(layer)
    inner.stride = 1 if is_pool(inner) else (1, 1)
    geometry = None
    if getattr(layer, "ceil_mode", False):  # at stride 1 ceil and floor agree; the blur gives the pool's size
        inner.ceil_mode = False
        geometry = tuple(zip(_pair(layer.kernel_size), stride, _pair(layer.padding),
                             _pair(getattr(layer, "dilation", 1))))
    return AntiAliased(inner, BlurPool(filter_size, stride), geometry)


def repool(pool: nn.Module, name: str, kind: str) -> nn.Module:
    """`pool` as another kind (max, avg or a binomial blur pool) with its kernel, stride and padding."""
    if not is_pool(pool):
        raise InterventionError(f"{name}: Pooling changes a MaxPool2d or AvgPool2d, and this is a "
                                f"{type(pool).__name__}; select a pooling layer (e.g. resnet's maxpool)")
    k, s, p = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size), _pair(pool.padding)
    ceil, dilation = bool(pool.ceil_mode), _pair(getattr(pool, "dilation", 1))
    if kind == "max":
        return nn.MaxPool2d(k, s, p, dilation=dilation, ceil_mode=ceil)
    if dilation != (1, 1):
        raise InterventionError(f"{name}: this max pool is dilated {dilation}; an {kind} pool of the same window "
                                "cannot be, so its output shape would change. Use AntiAlias here instead")
    if kind == "avg":  # padding is not counted: a border window averages the pixels it covers, as max sees them
        return nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=False)
    if k[0] != k[1]:
        raise InterventionError(f"{name}: a blur pool needs a square window, and this pool's is {k}")
    return BlurPool(k[0], s, p, ceil_mode=ceil)


CONV_SETTINGS = ("kernel_size", "dilation", "stride")
# Usually the reference level; "placebo" is reserved for the placebo checks, which are something else.
UNCHANGED = "unchanged level: hyperparameters equal the original's"


def conv_unchanged(layer: nn.Module, change) -> bool:
    """Whether `change` sets no conv hyperparameter of `layer` to a value other than its own."""
    own = {"kernel_size": _pair(layer.kernel_size), "dilation": _pair(getattr(layer, "dilation", 1)),
           "stride": _pair(layer.stride if layer.stride is not None else layer.kernel_size)}
    return all(own[n] == (v, v) for n in CONV_SETTINGS if (v := getattr(change, n)) is not None)


def rebuild_layer(layer: nn.Module, name: str, change, init: str, seed: int | None) -> Rebuilt:
    """`layer` with `change` applied: conv hyperparameters (`rebuild_conv`), then the pooling kind, then
    anti-aliasing. A conv whose hyperparameters stay keeps its weights as built, so a level that only
    anti-aliases is paired with the reference in that layer too."""
    if is_pool(layer):
        if not conv_unchanged(layer, change):
            raise InterventionError(f"{name}: level {change} sets a conv hyperparameter, and this layer is a "
                                    f"{type(layer).__name__}; intervene on a conv, or use Pooling/AntiAlias here")
        rebuilt = Rebuilt(copy.deepcopy(layer), [] if change.anti_alias else [UNCHANGED])
        if change.pooling is not None and change.pooling != pool_kind(layer):
            rebuilt = Rebuilt(repool(layer, name, change.pooling), [f"pooling {pool_kind(layer)} -> {change.pooling}"])
    elif change.pooling is not None:
        raise InterventionError(f"{name}: Pooling({change.pooling!r}) changes a pooling layer, and this is a "
                                f"{type(layer).__name__}; select a MaxPool2d or AvgPool2d (e.g. resnet's maxpool)")
    elif conv_unchanged(layer, change):
        rebuilt = Rebuilt(copy.deepcopy(layer), [] if change.anti_alias else [UNCHANGED])
    else:
        rebuilt = rebuild_conv(layer, name, change.kernel_size, change.dilation, change.stride, init, seed)
    if change.anti_alias is None:
        return rebuilt
    stride = _pair(rebuilt.conv.stride if rebuilt.conv.stride is not None else rebuilt.conv.kernel_size)
    return Rebuilt(anti_alias(rebuilt.conv, name, change.anti_alias),
                   rebuilt.notes + [f"anti-aliased: stride 1, then a {change.anti_alias}x{change.anti_alias} "
                                    f"binomial blur subsampling by {stride[0]}"])
