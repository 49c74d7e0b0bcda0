"""The level vocabulary of an intervention: what a level sets (`Intervention`), the architecture as built
(`AsBuilt`), the shorthands, labels and per-layer seeds. A leaf: rebuilding convs lives in `_intervene`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Sequence, Union

from ..errors import AuditConfigError, InterventionError
from ._downsample import check_filter_size, check_pooling
from ._surgery import check_positive_int


@dataclass(frozen=True)
class Intervention:
    """New values for conv hyperparameters; None leaves one as it is.

    Combine with ``&``: ``KernelSize(5) & Dilation(2)``. Kernel size and
    dilation keep each layer's output size; stride changes it by design.
    """

    kernel_size: int | None = None
    dilation: int | None = None
    stride: int | None = None
    layer: str | None = None  # one layer of the selection only (an arm of a layer map); None: every one
    anti_alias: int | None = None  # blur size before the subsampling (AntiAlias); None: as built
    pooling: str | None = None  # a pooling layer's kind (Pooling); None: as built

    def __post_init__(self) -> None:
        for name in HYPERPARAMETERS:
            value = getattr(self, name)
            if value is not None:
                check_positive_int(name, value)
        if self.anti_alias is not None:
            check_filter_size(self.anti_alias)
        if self.pooling is not None:
            check_pooling(self.pooling)
        if all(getattr(self, name) is None for name in SETTINGS):
            raise InterventionError("an intervention must set kernel_size, dilation, stride, anti_alias or pooling")

    def __and__(self, other: "Intervention") -> "Intervention":
        merged = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a is not None and b is not None and a != b:
                raise InterventionError(f"cannot combine {self} and {other}: both set {f.name}")
            merged[f.name] = a if a is not None else b
        return Intervention(**merged)

    def __str__(self) -> str:
        text = ", ".join(f"{n}={getattr(self, n)}" for n in SETTINGS if getattr(self, n) is not None)
        return f"{self.layer}: {text}" if self.layer else text


HYPERPARAMETERS = ("kernel_size", "dilation", "stride")  # a conv's; numeric, so levels can form a dose-response
SETTINGS = (*HYPERPARAMETERS, "anti_alias", "pooling")  # everything a level can set


@dataclass(frozen=True)
class AsBuilt:
    """The architecture as its factory builds it: no layer changed (the shared reference of a layer map)."""

    kernel_size: None = None
    dilation: None = None
    stride: None = None
    layer: None = None
    anti_alias: None = None
    pooling: None = None

    def __str__(self) -> str:
        return "as built"


def targets(change, layers: Sequence[str]) -> list[str]:
    """The layers a level changes: none as built, its own layer for a layer-map arm, a factorial cell's factor
    layers, else every one selected."""
    return [name for name, _ in scoped(change, layers)]


def scoped(change, layers: Sequence[str]) -> list[tuple[str, "Intervention"]]:
    """(layer, what it gets) for each layer a level changes."""
    if isinstance(change, AsBuilt):
        return []
    if getattr(change, "compound", False):
        return change.parts()  # a factorial cell: each factor's level on its own layer
    return [(name, change) for name in ([change.layer] if change.layer is not None else list(layers))]


def KernelSize(k: int) -> Intervention:  # noqa: N802 - reads as a value, like the other levels
    """do(kernel_size = k): a k x k kernel, output size kept."""
    return Intervention(kernel_size=k)


def Dilation(d: int) -> Intervention:  # noqa: N802
    """do(dilation = d), output size kept."""
    return Intervention(dilation=d)


def Stride(s: int) -> Intervention:  # noqa: N802
    """do(stride = s). Changes the layer's output size by about old/new; later layers must cope."""
    return Intervention(stride=s)


def AntiAlias(filter_size: int = 3) -> Intervention:  # noqa: N802
    """Anti-aliased downsampling (Zhang 2019): a strided conv or pool runs at stride 1, then a fixed
    `filter_size` x `filter_size` binomial blur subsamples by its stride. Output shape and weights kept."""
    return Intervention(anti_alias=filter_size)


def Pooling(kind: str) -> Intervention:  # noqa: N802
    """A pooling layer's kind: "max", "avg" (padding not counted) or "blur" (a binomial filter over the same
    window), with its kernel, stride and padding; output shape kept."""
    return Intervention(pooling=kind)


Level = Union[int, Intervention, AsBuilt]


def as_intervention(level: Level) -> Intervention:
    """An int level means a kernel size; an `Intervention`, `AsBuilt` or factorial cell is itself."""
    if isinstance(level, (Intervention, AsBuilt)) or getattr(level, "compound", False):
        return level
    if isinstance(level, bool) or not isinstance(level, int):
        raise InterventionError(f"a level is a kernel size (int) or an Intervention, got {level!r}")
    return KernelSize(level)


def level_label(level: Level) -> str:
    return str(as_intervention(level))


def layer_seed(seed: int, layer: str) -> int:
    """A 63-bit seed for one layer's fresh weights, shared by all levels of an audit seed."""
    digest = hashlib.sha256(f"{seed}:{layer}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def check_levels(levels: tuple, reference: object, layer_map: bool = False) -> None:
    """At least two distinct levels (kernel sizes or interventions), and a reference among them; a layer map
    compares with the architecture as built, so one level is enough there (`each(...)`, [AntiAlias(3)])."""
    changes = [as_intervention(level) for level in levels]  # each level's own check, naming the fix
    if layer_map and len(changes) == 1:
        return
    if len(changes) < 2:
        raise AuditConfigError(f"levels={[str(c) for c in changes]}: an audit compares a reference with at least "
                               "one other level; give two or more, e.g. levels=[3, 7] (a layer map, each(...), "
                               "compares with the architecture as built and takes one)")
    if len(set(changes)) != len(changes):
        raise AuditConfigError(f"levels={list(levels)} repeats a level; give each level once, e.g. [3, 7]")
    if reference is not None and as_intervention(reference) not in changes:
        raise AuditConfigError(f"reference={reference!r} is not one of levels={list(levels)}; add it to the levels "
                               "or leave reference out (the first level is the reference)")
