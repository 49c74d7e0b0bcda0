"""Find the convolutions an intervention touches.

A selector is an exact qualified name, a glob (``"layer1.*.conv1"``), a list
of those, a predicate ``(name, module) -> bool``, ``"stem"`` (the first conv
the input meets in a forward pass) or ``"all"``; any of them can be narrowed
to the convs of one current kernel size with `Select(spec, kernel_size=3)`.

Conv units are the modules `_kinds.is_conv` accepts: `nn.Conv2d` and its
subclasses (timm's `Conv2dSame`, `StdConv2d`, `ScaledStdConv2d`, ...) plus
timm's `CondConv2d`. Naming a wrapper such as timm's `MixedConv2d` selects the
convs inside it.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
from torch import nn

from ..errors import InterventionError, UnknownLayerError
from ._downsample import is_pool
from ._kinds import is_conv


def conv_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Qualified name -> module for every conv unit, in registration order."""
    return {name: m for name, m in model.named_modules() if name and is_conv(m)}


def kernel_of(layer: object) -> tuple[int, int]:
    """A layer's kernel as (h, w) (a pool's may be one int), or a size given as one int or a pair."""
    size = getattr(layer, "kernel_size", layer)
    return (int(size), int(size)) if isinstance(size, int) else tuple(int(k) for k in size)  # type: ignore


@dataclass(frozen=True)
class Select:
    """A selector narrowed to convs whose current kernel is `kernel_size` x `kernel_size`."""

    spec: object
    kernel_size: int | None = None

    def __str__(self) -> str:
        k = f" with kernel {self.kernel_size}x{self.kernel_size}" if self.kernel_size else ""
        return f"{self.spec}{k}"


@dataclass(frozen=True)
class Each:
    """A layer map: every conv `selection` picks is its own arm, intervened on alone (see `each`)."""

    selection: object

    def __str__(self) -> str:
        return f"each({self.selection})"


def each(selection: object) -> Each:
    """`layer=each(selection)`: one arm per selected conv, do(kernel_size = k) on that layer alone, all arms
    sharing one reference (the architecture as built) and one family of effects. `selection` is anything
    `layer=` takes: a name, a glob, a list, a predicate, "all", "stem" or a `Select`."""
    if isinstance(selection, Each):
        raise InterventionError("each(each(...)) selects nothing new; give the selection once, e.g. each('all')")
    return Each(selection)


LayerSpec = Union[str, Sequence[str], Callable[[str, nn.Module], bool], Select, Each]


class _FoundStem(Exception):
    def __init__(self, name: str):
        self.name = name


def find_stem(model: nn.Module, input_size: Sequence[int] | None = None) -> str:
    """The name of the first conv the input meets, found by running a forward pass.

    Registration order is not execution order (re-parameterizable models
    register their branches before the stem), so the hooks stop the pass at the
    first conv actually executed; the rest of the network never runs.
    """
    convs = conv_layers(model)
    if not convs:
        raise UnknownLayerError('"stem" needs a conv layer, but the model has no nn.Conv2d layers at all')

    def hook(name):
        def fire(_module, _args):
            raise _FoundStem(name)
        return fire

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in convs.items()]
    sizes = [tuple(input_size)] if input_size else []
    cfg_size = getattr(model, "pretrained_cfg", {}) or {}
    in_chans = next(iter(convs.values())).in_channels if not cfg_size.get("input_size") else cfg_size["input_size"][0]
    sizes += [(1, in_chans, 64, 64)]
    if cfg_size.get("input_size"):
        sizes.append((1, *cfg_size["input_size"]))
    was_training = model.training
    model.eval()
    errors = []
    try:
        for size in sizes:
            param = next(model.parameters(), None)
            x = torch.zeros(size, device=param.device if param is not None else "cpu",
                            dtype=param.dtype if param is not None and param.is_floating_point() else torch.float32)
            try:
                with torch.no_grad():
                    model(x)
            except _FoundStem as found:
                return found.name
            except Exception as exc:  # try the next input size
                errors.append(f"{size}: {type(exc).__name__}: {exc}")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    raise UnknownLayerError(
        '"stem" could not be found: no forward pass reached a conv layer (' + "; ".join(errors)
        + "). Name the stem conv explicitly; " + candidates(convs)
    )


def candidates(convs: dict[str, nn.Module], limit: int = 40) -> str:
    if not convs:
        return "the model has no nn.Conv2d layers at all"
    listed = [f"{n} ({kernel_of(m)[0]}x{kernel_of(m)[1]})" for n, m in convs.items()]
    more = f", ... and {len(listed) - limit} more" if len(listed) > limit else ""
    return f"conv layers of this model: {', '.join(listed[:limit])}{more}"


def _expand_wrapper(model: nn.Module, name: str, convs: dict[str, nn.Module]) -> list[str]:
    """A wrapper holding convs (e.g. MixedConv2d's splits) stands for all of them, when they share a kernel.

    Splits of different kernels are the architecture's mix: one level for all would erase it without a word,
    so naming the wrapper is refused with the splits to name instead."""
    prefix = name + "."
    inner = [n for n in convs if n.startswith(prefix) and "." not in n[len(prefix):]]
    kernels = {n: kernel_of(convs[n]) for n in inner}
    if len(set(kernels.values())) > 1:
        splits = ", ".join(f"{n!r} ({k[0]}x{k[1]})" for n, k in kernels.items())
        raise UnknownLayerError(
            f"layer {name!r} is a {type(model.get_submodule(name)).__name__} whose splits have different kernels: "
            f"{splits}; one level for all would remove that mix. Name the split to change (e.g. {inner[-1]!r}), "
            f"or list every split to set them alike on purpose")
    return inner


def _resolve_one(model: nn.Module, spec: str, convs: dict[str, nn.Module], input_size) -> list[str]:
    if spec == "stem":
        return [find_stem(model, input_size)]
    if spec == "all":
        return list(convs)
    if spec in convs:
        return [spec]
    modules = dict(model.named_modules())
    if spec in modules and is_pool(modules[spec]):
        return [spec]  # by its exact name: a Pooling or AntiAlias level changes it
    if spec in modules:
        inner = _expand_wrapper(model, spec, convs)
        if inner:
            return inner
        raise UnknownLayerError(
            f"layer {spec!r} is a {type(modules[spec]).__name__}, not a convolution. {candidates(convs)}")
    if any(ch in spec for ch in "*?["):
        hits = [n for n in convs if fnmatch.fnmatchcase(n, spec)]
        if hits:
            return hits
        non_conv = [n for n in modules if n and fnmatch.fnmatchcase(n, spec)]
        what = f"matches only non-conv modules ({', '.join(non_conv[:5])})" if non_conv else "matches no layer"
        raise UnknownLayerError(f"pattern {spec!r} {what}. {candidates(convs)}")
    close = difflib.get_close_matches(spec, list(convs), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise UnknownLayerError(f"layer {spec!r} is not a layer of this model.{hint} {candidates(convs)}")


def resolve_layers(model: nn.Module, layer: LayerSpec, input_size: Sequence[int] | None = None) -> list[str]:
    """Names of the conv units selected by `layer`, without duplicates, in selection order."""
    convs = conv_layers(model)
    kernel = None
    if isinstance(layer, Each):  # a layer map selects layers as its selection does; the arms come later
        layer = layer.selection
    if isinstance(layer, Select):
        layer, kernel = layer.spec, layer.kernel_size
    if callable(layer) and not isinstance(layer, str):
        names = [n for n, m in convs.items() if layer(n, m)]
        if not names:
            raise UnknownLayerError(f"the layer predicate selected no conv layer. {candidates(convs)}")
    else:
        specs = [layer] if isinstance(layer, str) else list(layer)  # type: ignore[arg-type]
        if not specs:
            raise UnknownLayerError(f"no layer given. {candidates(convs)}")
        names = []
        for spec in specs:
            if not isinstance(spec, str):
                raise UnknownLayerError(f"a layer selector must be a string, got {spec!r}")
            names += [n for n in _resolve_one(model, spec, convs, input_size) if n not in names]
    if kernel is not None:
        kept = [n for n in names if kernel_of(model.get_submodule(n)) == (kernel, kernel)]
        if not kept:
            sizes = sorted({kernel_of(model.get_submodule(n)) for n in names})
            raise UnknownLayerError(
                f"no selected conv has a {kernel}x{kernel} kernel; the selection has kernels {sizes}")
        names = kept
    return names
