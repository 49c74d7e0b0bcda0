"""Which kind of convolution a module is: the one place that knows timm's conv classes.

Conv units are `nn.Conv2d` and its subclasses (timm's `Conv2dSame`,
`StdConv2d`, `ScaledStdConv2d`, ...) plus timm's `CondConv2d`, which is an
`nn.Module` holding its experts' kernels flattened in one (experts, -1) weight.
"""

from __future__ import annotations

import sys

from torch import nn


def _is_timm(module: nn.Module, name: str) -> bool:
    """True if `module` is an instance of `timm.layers.<name>`.

    timm is looked up in `sys.modules`, not imported: importing it takes
    seconds and this package loads as a pytest plugin in every pytest run.
    Nothing can be an instance of a timm class before timm is imported, so
    the answer is the same as with an import.
    """
    cls = getattr(sys.modules.get("timm.layers"), name, None)
    return cls is not None and isinstance(module, cls)


def is_cond_conv(module: nn.Module) -> bool:
    """True for timm's `CondConv2d` (mixture-of-experts kernels, weight of shape (experts, -1))."""
    return _is_timm(module, "CondConv2d")


def is_conv(module: nn.Module) -> bool:
    """True for a weight-bearing 2-D convolution this package can intervene on."""
    return isinstance(module, nn.Conv2d) or is_cond_conv(module)


def has_dynamic_same_pad(conv: nn.Module) -> bool:
    """True if `conv` computes TensorFlow-style SAME padding from the input and kernel at run time.

    timm's `Conv2dSame` always does; `StdConv2dSame` and `ScaledStdConv2dSame`
    set `same_pad`, and `CondConv2d` sets `dynamic_padding`, when their SAME
    padding cannot be static. Such layers keep their output size under any
    new kernel without help.
    """
    return (_is_timm(conv, "Conv2dSame") or bool(getattr(conv, "same_pad", False))
            or bool(getattr(conv, "dynamic_padding", False)))
