"""do(kernel_size = k): find a convolution, build its replacement, swap it in.

The replacement keeps channels, stride, dilation, groups, bias, padding mode
and, for every input size, the output's spatial size. Shape is kept by holding
the layer's "lost border" constant: a conv with kernel k, dilation d and total
padding P maps H to floor((H + P - d(k-1) - 1)/s) + 1, so the new kernel k'
gets total padding P' = P + d(k' - k). When P' is odd (even k' against an odd
k) the extra pixel goes right/bottom, as TensorFlow's SAME padding does.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import hashlib
from typing import Callable, Iterable, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InterventionError, UnknownLayerError

LayerSpec = Union[str, Sequence[str], Callable[[str, nn.Module], bool]]

_PAD_MODES = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


class AsymmetricPadConv2d(nn.Conv2d):
    """A Conv2d that pads (left, right, top, bottom) itself before convolving.

    Needed for even kernels, whose shape-preserving padding is not symmetric.
    It stays an `nn.Conv2d`, so parameter names and isinstance checks are kept.
    """

    def __init__(self, *args, pad: tuple[int, int, int, int], pad_mode: str = "zeros", **kwargs):
        super().__init__(*args, padding=0, **kwargs)
        self.pad = tuple(int(p) for p in pad)
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_mode == "zeros":
            x = F.pad(x, self.pad)
        else:
            x = F.pad(x, self.pad, mode=_PAD_MODES[self.pad_mode])
        return self._conv_forward(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pad={self.pad}"


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """Qualified name -> module for every 2-D convolution in `model`."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def resolve_layers(model: nn.Module, layer: LayerSpec) -> list[str]:
    """Names of the conv layers selected by an exact name, a glob, a list of those, or a predicate."""
    convs = conv_layers(model)
    if callable(layer) and not isinstance(layer, str):
        names = [n for n, m in convs.items() if layer(n, m)]
        if not names:
            raise UnknownLayerError(f"the layer predicate selected no conv layer; {_candidates(convs)}")
        return names
    specs = [layer] if isinstance(layer, str) else list(layer)
    if not specs:
        raise UnknownLayerError(f"no layer given; {_candidates(convs)}")
    names: list[str] = []
    for spec in specs:
        if spec in convs:
            hits = [spec]
        elif any(ch in spec for ch in "*?["):
            hits = [n for n in convs if fnmatch.fnmatchcase(n, spec)]
        else:
            hits = []
        if not hits:
            modules = dict(model.named_modules())
            what = "is not a Conv2d" if spec in modules else "is not a layer of this model"
            close = difflib.get_close_matches(spec, list(convs), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownLayerError(f"layer {spec!r} {what}.{hint} {_candidates(convs)}")
        names += [h for h in hits if h not in names]
    return names


def _candidates(convs: dict[str, nn.Conv2d], limit: int = 40) -> str:
    if not convs:
        return "the model has no nn.Conv2d layers at all"
    listed = [f"{n} ({tuple(m.kernel_size)[0]}x{tuple(m.kernel_size)[1]})" for n, m in convs.items()]
    more = f", ... and {len(listed) - limit} more" if len(listed) > limit else ""
    return f"conv layers of this model: {', '.join(listed[:limit])}{more}"


def check_kernel_size(kernel_size: object) -> int:
    """A square kernel side as a positive int, or an `InterventionError` saying why not."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise InterventionError(f"kernel_size must be a positive int (one side of a square kernel), got {kernel_size!r}")
    if kernel_size < 1:
        raise InterventionError(f"kernel_size must be >= 1, got {kernel_size}; use e.g. 3, 5 or 7")
    return kernel_size


def layer_seed(seed: int, layer: str) -> int:
    """A 63-bit seed for one layer's fresh weights, shared by all levels of an audit seed."""
    digest = hashlib.sha256(f"{seed}:{layer}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _total_padding(conv: nn.Conv2d, new_k: int) -> list[int] | str:
    if isinstance(conv.padding, str):
        if conv.padding == "same":
            return "same"  # torch pads 'same' itself, even kernels included
        old_pad = (0, 0)  # 'valid'
    else:
        old_pad = tuple(conv.padding)
    totals = []
    for p, k, d in zip(old_pad, conv.kernel_size, conv.dilation):
        total = 2 * p + d * (new_k - k)
        if total < 0:
            raise InterventionError(
                f"kernel_size={new_k} would shrink this layer's output: it has kernel {k} with padding {p}, "
                f"so no padding >= 0 keeps the output size. Use kernel_size >= {k - (2 * p) // d}."
            )
        totals.append(total)
    return totals


def replacement_conv(conv: nn.Conv2d, kernel_size: int, seed: int | None = None) -> nn.Conv2d:
    """A fresh conv like `conv` but with a square `kernel_size`, initialized from `seed`."""
    k = check_kernel_size(kernel_size)
    totals = _total_padding(conv, k)
    kwargs = dict(
        in_channels=conv.in_channels, out_channels=conv.out_channels, kernel_size=k, stride=conv.stride,
        dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
        device=conv.weight.device, dtype=conv.weight.dtype,
    )
    with torch.random.fork_rng(devices=[]):
        # nn.Conv2d draws its default init from the global CPU generator; pin it.
        if seed is not None:
            torch.manual_seed(seed)
        if totals == "same":
            new = nn.Conv2d(padding="same", padding_mode=conv.padding_mode, **kwargs)
        elif all(t % 2 == 0 for t in totals):
            new = nn.Conv2d(padding=(totals[0] // 2, totals[1] // 2), padding_mode=conv.padding_mode, **kwargs)
        else:
            th, tw = totals
            pad = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
            new = AsymmetricPadConv2d(pad=pad, pad_mode=conv.padding_mode, **kwargs)
    new.train(conv.training)
    return new


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def intervene(model: nn.Module, layer: LayerSpec, kernel_size: int, seed: int | None = None) -> nn.Module:
    """A copy of `model` whose selected conv layers have a `kernel_size` x `kernel_size` kernel.

    The input model is left untouched. Replaced layers get their default
    initialization drawn from a generator seeded by (`seed`, layer name), so
    every level of one audit seed shares those random numbers; all other
    parameters and buffers are copied unchanged.
    """
    check_kernel_size(kernel_size)
    names = resolve_layers(model, layer)
    new_model = copy.deepcopy(model)
    for name in names:
        old = new_model.get_submodule(name)
        _set_submodule(new_model, name, replacement_conv(old, kernel_size, None if seed is None else layer_seed(seed, name)))
    return new_model


def describe_layers(model: nn.Module, names: Iterable[str]) -> list[dict]:
    """Current hyperparameters of the named conv layers, for reports."""
    convs = conv_layers(model)
    return [
        {"layer": n, "kernel_size": list(convs[n].kernel_size), "stride": list(convs[n].stride),
         "dilation": list(convs[n].dilation), "groups": convs[n].groups,
         "params": sum(p.numel() for p in convs[n].parameters())}
        for n in names
    ]


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
    """do(kernel_size = k) on `layer` of `model`, one model factory per level.

    `build(k, seed)` seeds the global generator with `seed`, builds the base
    model (so every level shares its initialization), then swaps in the
    replacement layer drawn from a (seed, layer)-seeded generator.
    """

    def __init__(self, model: object, layer: LayerSpec, levels: Sequence[int], reference: int | None = None,
                 num_classes: int = 2):
        if len(levels) < 2:
            raise InterventionError(f"an intervention needs at least two levels (a reference and a treatment), got {list(levels)}")
        self.levels = [check_kernel_size(k) for k in levels]
        if len(set(self.levels)) != len(self.levels):
            raise InterventionError(f"levels must be distinct, got {self.levels}")
        self.reference = self.levels[0] if reference is None else check_kernel_size(reference)
        if self.reference not in self.levels:
            raise InterventionError(f"reference level {self.reference} is not one of the levels {self.levels}")
        self.source = model_source(model, num_classes)
        self.layer = layer
        probe = self.source()
        self.layers = resolve_layers(probe, layer)  # fail now, not after training
        self.original = describe_layers(probe, self.layers)
        for k in self.levels:  # a bad level is found before any training
            for name in self.layers:
                _total_padding(probe.get_submodule(name), k)
        self.model_name = model if isinstance(model, str) else type(probe).__name__

    def build(self, level: int, seed: int, paired: bool = True) -> nn.Module:
        """The seed-`seed` model at `level`. `paired=False` decorrelates levels (for comparison only)."""
        init_seed = seed if paired else layer_seed(seed, f"unpaired-{level}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            base = self.source()
        return intervene(base, self.layers, level, seed=init_seed)

    @property
    def factories(self) -> dict[int, Callable[[int], nn.Module]]:
        return {k: (lambda seed, k=k: self.build(k, seed)) for k in self.levels}

    @property
    def treatments(self) -> list[int]:
        return [k for k in self.levels if k != self.reference]

    def describe(self) -> str:
        """One line per touched layer: original hyperparameters and the levels."""
        rows = [f"{d['layer']}: kernel {d['kernel_size'][0]}x{d['kernel_size'][1]}, stride {d['stride'][0]}, "
                f"dilation {d['dilation'][0]}, groups {d['groups']} -> do(kernel_size in {self.levels}), "
                f"reference k0={self.reference}" for d in self.original]
        return f"{self.model_name}: " + "; ".join(rows)
