"""do(hyperparameter = value) on selected conv layers: intervention objects,
`intervene`, the paired per-level model factories, and their description.
"""

from __future__ import annotations

import copy
import difflib
import warnings
from dataclasses import replace
from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import InterventionError, InterventionWarning, ModelOutputError
from ..fingerprints import model_fingerprint
from ._downsample import AntiAliased, BlurPool, conv_unchanged, is_pool, pool_kind, rebuild_layer
from ._factorial import check_factorial, check_factorial_layers
from ._kinds import has_dynamic_same_pad
from ._levels import (
    AsBuilt,
    Intervention,
    Level,
    as_intervention,
    layer_seed,
    level_label,
    scoped,
)
from ._reach import check_kernel_reach, layer_input_sizes
from ._select import Each, LayerSpec, kernel_of, resolve_layers
from ._surgery import Rebuilt, asymmetric_pads, check_init


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _apply(model: nn.Module, names: Sequence[str], change: Intervention, init: str,
           seed: int | None) -> tuple[nn.Module, dict[str, Rebuilt]]:
    new_model = copy.deepcopy(model)
    rebuilt = {}
    for name, part in scoped(change, names):
        old = new_model.get_submodule(name)
        if _unchanged(old, part):
            continue  # do(k = the layer's own k) is no intervention: the layer stays as built, weights and all
        rebuilt[name] = rebuild_layer(old, name, part, init, None if seed is None else layer_seed(seed, name))
        # A tied conv (one module registered under several names) is replaced at every name by one new
        # module, so the tie survives the intervention and every place it is used gets the new kernel.
        for alias in aliases(new_model, old) or [name]:
            _set_submodule(new_model, alias, rebuilt[name].conv)
    return new_model, rebuilt


def map_levels(probe: nn.Module, layers: Sequence[str], levels: Sequence[Level], reference: Level) -> list:
    """A layer map's levels: the architecture as built (the shared reference), then per layer in network order
    one arm per level that changes it (a level equal to the layer's own hyperparameters is its reference)."""
    arms = []
    if any(as_intervention(level).anti_alias for level in levels):
        _check_strided(probe, layers)
    for name in layers:
        conv = probe.get_submodule(name)
        arms += [replace(as_intervention(level), layer=name) for level in levels
                 if not _unchanged(conv, as_intervention(level))]
    if not arms:
        raise InterventionError(f"no level changes any of the selected layers {list(layers)}: each already has "
                                f"the hyperparameters of {[level_label(v) for v in levels]}; add a level that differs")
    return [AsBuilt(), *arms]


def _check_strided(probe: nn.Module, layers: Sequence[str]) -> None:
    """A layer map of AntiAlias levels needs layers that subsample: name the strided ones of the selection."""
    def strided(name: str) -> bool:
        module = probe.get_submodule(name)
        return kernel_of(getattr(module, "stride", None) or module.kernel_size) != (1, 1)

    flat = [name for name in layers if not strided(name)]
    if flat:
        keep = [name for name in layers if strided(name)]
        raise InterventionError(f"AntiAlias blurs before a subsampling, and {len(flat)} selected layer(s) have "
                                f"stride 1 ({', '.join(flat[:5])}{', ...' if len(flat) > 5 else ''}); the strided "
                                f"ones of this selection are {keep}: pass each({keep})")


def _unchanged(layer: nn.Module, change: Intervention) -> bool:
    """Whether `change` sets everything of `layer` to what it already has (anti-aliasing always changes it)."""
    if change.anti_alias is not None or (change.pooling is not None and change.pooling != pool_kind(layer)):
        return False
    return conv_unchanged(layer, change)


def changes_stride(change, names: Sequence[str]) -> bool:
    """Whether a level sets a stride on any layer (later feature maps then change size by design)."""
    return any(part.stride is not None for _, part in scoped(change, names))


def aliases(model: nn.Module, module: nn.Module) -> list[str]:
    """Every name under which `module` is registered in `model` (more than one when weights are tied)."""
    return [n for n, m in model.named_modules(remove_duplicate=False) if m is module]


def _forward_error(original: bool, exc: Exception, shape: tuple, stride_change: bool) -> InterventionError:
    """The error for a forward that fails on the probe input, with the likely cause for each model."""
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if original:
        return InterventionError(f"the original model fails on an input of shape {shape} ({what}); it must accept "
                                 "float32 (N, C, H, W) images of the audit's size: check the channel order "
                                 "(images.permute(0, 3, 1, 2) for channels-last arrays) and the image size")
    if stride_change:
        return InterventionError(f"the model with a changed stride fails on an input of shape {shape} ({what}): "
                                 "a stride level changes the size of every later feature map, and this forward "
                                 "assumes the original one (a fixed reshape, an assert, a Linear on flattened "
                                 "maps); pool before the head (e.g. nn.AdaptiveAvgPool2d) or drop the level")
    return InterventionError(f"the intervened model fails on an input of shape {shape} ({what}). A kernel larger "
                             "than the padded input or a dilation too large for it causes this: use a smaller "
                             "kernel/dilation or a larger input.")


def check_float32(model: nn.Module) -> None:
    """Audits train float32 models: any other weight dtype is refused here, before torch's own dtype error."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes - {torch.float32}:
        raise ModelOutputError(f"the model has {sorted(map(str, dtypes))} weights; audits train in float32 (mixed "
                               "precision is the trainer's choice, not the model's): build it in float32, e.g. "
                               "return model.float() from the factory")


def check_output_shapes(original: nn.Module, changed: nn.Module, names: Sequence[str],
                        example: torch.Tensor, allow_change: bool = False) -> None:
    """Run both models on `example` and raise if a replaced layer's output shape differs."""
    shapes: dict[tuple[str, str], tuple] = {}

    def record(tag, name):
        def hook(_m, _args, out):
            shapes[(tag, name)] = tuple(out.shape)
        return hook

    handles = []
    for tag, model in (("old", original), ("new", changed)):
        for n in names:
            handles.append(model.get_submodule(n).register_forward_hook(record(tag, n)))
    try:
        with torch.no_grad():
            for tag, model in (("old", original), ("new", changed)):
                was = model.training
                model.eval()
                try:
                    model(example)
                except Exception as exc:  # the user's forward, whatever it raises (an assert, a shape error)
                    raise _forward_error(tag == "old", exc, tuple(example.shape), allow_change) from None
                finally:
                    model.train(was)
    finally:
        for h in handles:
            h.remove()
    if allow_change:
        return
    for n in names:
        old, new = shapes.get(("old", n)), shapes.get(("new", n))
        if old != new:
            raise InterventionError(f"{n}: output shape changed from {old} to {new} on input "
                                    f"{tuple(example.shape)}; this intervention cannot keep the shape here")


def intervene(model: nn.Module, layer: LayerSpec, kernel_size: int | Intervention, seed: int | None = None,
              init: str = "fresh", example_input: torch.Tensor | None = None) -> nn.Module:
    """A copy of `model` with do(`kernel_size`) (or any `Intervention`) on the selected convs.

    The input model is left untouched. With ``init="fresh"`` replaced layers get
    their own default initialization from a generator seeded by (`seed`, layer
    name); ``"transfer"`` centre-crops or zero-pads the old kernel;
    ``"interpolate"`` resizes it keeping its response to a constant input.
    Every other parameter and buffer is copied unchanged. With
    `example_input`, both models run once and any change in a replaced layer's
    output shape is an error.
    """
    change = as_intervention(kernel_size)
    check_init(init)
    size = None if example_input is None else tuple(example_input.shape)
    names = resolve_layers(model, layer, size)
    new_model, rebuilt = _apply(model, names, change, init, seed)
    for name, r in rebuilt.items():
        for note in r.notes:
            if "never seen" in note:
                warnings.warn(InterventionWarning(f"{name}: {note}"), stacklevel=2)
    if example_input is not None:
        check_output_shapes(model, new_model, names, example_input, allow_change=changes_stride(change, names))
    return new_model


def describe_intervention(model: nn.Module, layer: LayerSpec, levels: Sequence[Level],
                          input_size: Sequence[int] | None = None) -> "InterventionTable":
    """A table of the layers touched: old and new hyperparameters, parameter-count change, notes."""
    names = resolve_layers(model, layer, input_size)
    rows = []
    for level in levels:
        change = as_intervention(level)
        for name, part in scoped(change, names):
            old = model.get_submodule(name)
            r = rebuild_layer(old, name, part, "fresh", 0)
            old_p = sum(p.numel() for p in old.parameters())
            new_p = sum(p.numel() for p in r.conv.parameters())
            rows.append({
                "level": str(change), "layer": name, "class": type(old).__name__,
                "old": _hyper(old), "new": _hyper(r.conv), "params": old_p, "params_change": new_p - old_p,
                "notes": r.notes,
            })
    return InterventionTable(rows)


def _conv_shape(conv: nn.Module) -> tuple[tuple[int, int], int, int]:
    """Kernel, stride and (input channels per group x output channels) of a conv, for `cost`; a pool has no
    channel product (it costs next to nothing)."""
    if is_pool(conv):
        return kernel_of(conv), int(kernel_of(conv.stride or conv.kernel_size)[0]), 0
    # Every kind `is_conv` admits (nn.Conv2d and its subclasses, timm's CondConv2d) keeps 2-tuples here.
    return kernel_of(conv), int(conv.stride[0]), conv.in_channels // conv.groups * conv.out_channels


def _hyper(conv: nn.Module) -> str:
    if isinstance(conv, AntiAliased):
        f = conv.blur.filter_size
        return f"{_hyper(conv.inner)}, then blur {f}x{f} s={conv.blur.stride[0]}"
    if isinstance(conv, BlurPool):
        return f"blur pool k={conv.filter_size} s={conv.stride[0]} pad={conv.padding}"
    if is_pool(conv):
        stride = kernel_of(conv.stride or conv.kernel_size)[0]
        return f"{pool_kind(conv)} pool k={kernel_of(conv)[0]} s={stride} pad={conv.padding}"
    k = kernel_of(conv)
    pad = "dynamic SAME" if has_dynamic_same_pad(conv) else conv.padding
    asym = list(asymmetric_pads(conv).values())
    if asym:
        pad = asym[0].pad
    return f"k={k[0]}x{k[1]} s={conv.stride[0]} d={conv.dilation[0]} g={conv.groups} pad={pad}"


class InterventionTable(list):
    """Rows of `describe_intervention`; `str()` is the aligned text table."""

    def __str__(self) -> str:
        head = ("level", "layer", "class", "before", "after", "params", "notes")
        body = [(r["level"], r["layer"], r["class"], r["old"], r["new"],
                 f"{r['params']}{r['params_change']:+d}", "; ".join(r["notes"])) for r in self]
        widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join(fmt.format(*x).rstrip() for x in [head, *body])


def model_source(model: object, num_classes: int = 2) -> Callable[[], nn.Module]:
    """A zero-argument builder from a class/function, a timm model name, or a module to copy.

    A builder or timm name draws fresh weights from the global generator, so
    calling it under `torch.manual_seed(s)` gives the seed-s initialization.
    A module instance (e.g. pretrained) is copied as is for every seed.
    """
    if isinstance(model, str):
        import timm

        if not timm.is_model(model):
            close = difflib.get_close_matches(model, timm.list_models(), n=3)
            raise InterventionError(f"{model!r} is not a timm model name; did you mean {close}?")
        return lambda: timm.create_model(model, pretrained=False, num_classes=num_classes)
    if isinstance(model, nn.Module):
        return lambda: copy.deepcopy(model)
    if callable(model):
        return model  # type: ignore[return-value]
    raise InterventionError(f"model must be an nn.Module, a callable returning one, or a timm name; got {type(model)}")


class KernelIntervention:
    """do(...) on `layer` of `model`, one paired model factory per level.

    `build(level, seed)` seeds the global generator with `seed`, builds the base
    model (so every level shares its initialization), then swaps in the
    replacement layers drawn from (seed, layer)-seeded generators. Levels are
    kernel sizes (ints) or `Intervention` objects; the first is the reference
    unless `reference` says otherwise.
    """

    def __init__(self, model: object, layer: LayerSpec, levels: Sequence[Level], reference: Level | None = None,
                 num_classes: int = 2, init: str = "fresh", input_size: Sequence[int] | None = None):
        if len(levels) < (1 if isinstance(layer, Each) else 2):
            raise InterventionError(f"an intervention needs at least two levels (a reference and a treatment), "
                                    f"got {list(levels)}")
        self.levels = list(levels)
        self.changes = [as_intervention(level) for level in self.levels]
        if len(set(self.changes)) != len(self.changes):
            raise InterventionError(f"levels must be distinct, got {[str(c) for c in self.changes]}")
        if isinstance(layer, Each) and reference is not None:
            raise InterventionError(f"reference={reference!r} with layer=each(...): a layer map compares every arm "
                                    "with the architecture as built, so a reference level would be ignored; drop "
                                    "reference=, or audit one layer (layer='name') with that reference")
        self.reference = self.levels[0] if reference is None else reference
        if self.reference not in self.levels:
            raise InterventionError(f"reference level {self.reference} is not one of the levels {self.levels}")
        check_factorial(layer, self.levels, self.reference)
        self.init = check_init(init)
        self.num_classes = num_classes
        self.source = model_source(model, num_classes)
        self.layer = layer
        probe = self.source()
        if not isinstance(probe, nn.Module):
            raise ModelOutputError(f"the model factory {getattr(model, '__name__', model)!r} returned "
                                   f"{type(probe).__name__}, not an nn.Module; make it return the built model")
        check_float32(probe)
        self.layers = resolve_layers(probe, layer, input_size)  # fail now, not after training
        check_factorial_layers(self.changes, self.layers)
        if isinstance(layer, Each):  # a layer map: the arms and their shared reference replace the levels
            self.levels = map_levels(probe, self.layers, self.levels, self.reference)
            self.changes, self.reference = list(self.levels), self.levels[0]
        self.input_sizes: dict[str, tuple[int, int]] = {}
        if input_size is not None:  # before any level's layer is built: a mistyped kernel would allocate first
            check_kernel_reach(probe, self.layers, self.changes, tuple(input_size)[1:])
            self.input_sizes = layer_input_sizes(probe, self.layers, torch.zeros(1, *tuple(input_size)[1:]))
        self.table = describe_intervention(probe, self.layers, self.levels)  # also checks every level
        if input_size is not None:
            example = torch.zeros(tuple(input_size))
            for change in self.changes:
                changed, _ = _apply(probe, self.layers, change, "fresh", 0)
                check_output_shapes(probe, changed, self.layers, example,
                                    allow_change=changes_stride(change, self.layers))
        self.model_name = model if isinstance(model, str) else getattr(model, "__name__", type(probe).__name__)
        self._shapes = {name: _conv_shape(probe.get_submodule(name)) for name in self.layers}

    def fingerprint(self, train_images: torch.Tensor) -> dict[str, str]:
        """The model's behavioural fingerprint (`fingerprints.model_fingerprint` of what the factory builds at
        seed 0, before any intervention, probed with the first `train_images`): what keys every variant's
        weights, the same whichever level is the reference. Computed once."""
        memo = self.__dict__.get("_fingerprint")
        mark = (train_images.data_ptr(), tuple(train_images.shape), train_images._version)
        if memo is None or memo[0] != mark:
            memo = (mark, model_fingerprint(lambda: self._base(0), train_images))
            self._fingerprint = memo
        return memo[1]

    def _base(self, seed: int) -> nn.Module:
        """What the factory builds under `torch.manual_seed(seed)`, the caller's random stream kept."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.source()

    def cost(self, level: Level) -> float:
        """Multiply-adds per input pixel of the intervened layers at `level`: a training-cost order, not a time.

        Every level shares the rest of the model, so this orders levels by how long
        they train (larger kernels and finer strides cost more); pools start the
        longest first so that no long model is left running alone at the end.
        """
        touched = dict(scoped(as_intervention(level), self.layers))
        total = 0.0
        for name, ((kh, kw), stride, channel_products) in self._shapes.items():
            part = touched.get(name)
            k = (part.kernel_size, part.kernel_size) if part is not None and part.kernel_size else (kh, kw)
            s = part.stride if part is not None and part.stride else stride
            total += k[0] * k[1] * channel_products / (s * s)
        return total

    def build(self, level: Level, seed: int, paired: bool = True) -> nn.Module:
        """The seed-`seed` model at `level`. `paired=False` decorrelates levels (for comparison only)."""
        init_seed = seed if paired else layer_seed(seed, f"unpaired-{level_label(level)}")
        model, _ = _apply(self._base(init_seed), self.layers, as_intervention(level), self.init, init_seed)
        return model

    @property
    def factories(self) -> dict[Level, Callable[[int], nn.Module]]:
        return {level: (lambda seed, level=level: self.build(level, seed)) for level in self.levels}

    @property
    def treatments(self) -> list[Level]:
        return [level for level in self.levels if level != self.reference]

    def own_kernels(self) -> dict[str, int]:
        """Each selected layer's kernel size as built, in the selection's (network) order."""
        return {name: shape[0][0] for name, shape in self._shapes.items()}

    def describe(self) -> str:
        """A one-line summary for reports; `self.table` has the per-layer detail."""
        levels = ", ".join(level_label(level) for level in self.levels)
        layers = ", ".join(self.layers[:6]) + (f", ... ({len(self.layers)} layers)" if len(self.layers) > 6 else "")
        return f"{self.model_name}: do({levels}) on {layers}; reference {level_label(self.reference)}"
