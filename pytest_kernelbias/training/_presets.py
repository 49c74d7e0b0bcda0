"""Training presets named for the normalization layers an architecture uses.

Nets with BatchNorm learn planted SynthFaces with the default recipe (AdamW, lr 3e-3, 4 epochs, batch
64; measured on SynthFacesCNN, timm and torchvision resnet18, mobilenetv3_small_050, efficientnet_b0).
Nets normalized per sample (LayerNorm, as in ConvNeXt; GroupNorm; InstanceNorm; RMSNorm) lack the
batch statistics that rescale every layer's input: timm's convnext_atto stays at chance with the
default recipe, and a user saw 4 of 6 fail at lr 1e-3 for 6 epochs. They get a gentler recipe:
a lower peak lr reached through a warmup, more epochs at a smaller batch, a little label smoothing.
A net with no normalization keeps the default (not measured: no such net in the benchmark).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import AuditConfigError
from ._trainer import TrainConfig

# Class names (anywhere in a layer's MRO) of batch-statistics normalization: torch's BatchNorm1d/2d/3d
# and SyncBatchNorm, timm's BatchNormAct2d and FrozenBatchNorm2d.
_BATCH_NORMS = ("BatchNorm",)
# Per-sample normalization: torch's LayerNorm, GroupNorm, InstanceNorm*d, RMSNorm; timm's LayerNorm2d,
# LayerNormAct2d, GroupNormAct, RmsNorm, RmsNorm2d.
_SAMPLE_NORMS = ("LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm", "RmsNorm")

PRESETS: dict[str, TrainConfig] = {
    "batchnorm": TrainConfig(),
    # The working point a user found for convnext_atto (epochs 8, lr 5e-4, batch 32) plus a 10% warmup (first
    # epoch's train accuracy 0.52 -> 0.64) and smoothing 0.05. Measured, 32 px planted SynthFaces, 2000 training
    # images (benchmarks/recipes_learn.py): clean accuracy 0.915 / 0.909 on seeds 0 / 1, where the default
    # recipe gives 0.478 / 0.478 against a majority rate of 0.522.
    "layernorm": TrainConfig(epochs=8, batch_size=32, lr=5e-4, warmup=0.1, label_smoothing=0.05),
    "none": TrainConfig(),
}


def _kinds(layer: nn.Module) -> set[str]:
    names = [c.__name__ for c in type(layer).__mro__]
    found = set()
    if any(key in name for name in names for key in _BATCH_NORMS):
        found.add("batchnorm")
    if any(key in name for name in names for key in _SAMPLE_NORMS):
        found.add("layernorm")
    return found


def norm_kind(model: nn.Module) -> str:
    """"layernorm" if any layer normalizes per sample, else "batchnorm" if any uses batch statistics, else "none"."""
    kinds = set().union(*(_kinds(m) for m in model.modules()))
    # One per-sample norm is enough: such a net (e.g. a BatchNorm stem before LayerNorm blocks) trips on the
    # default recipe where its LayerNorm blocks do.
    for kind in ("layernorm", "batchnorm"):
        if kind in kinds:
            return kind
    return "none"


def preset_for(model: nn.Module) -> tuple[str, TrainConfig]:
    """The preset's name ("batchnorm", "layernorm" or "none") for `model`'s normalization layers, and its recipe."""
    kind = norm_kind(model)
    return kind, PRESETS[kind]


def config_for(model: object, **changes: object) -> TrainConfig:
    """`preset_for` of `model` (an nn.Module, a zero-argument factory or a timm name), with `changes` applied."""
    if not isinstance(model, nn.Module):
        from ..intervention import model_source

        with torch.random.fork_rng(devices=[]):  # building draws weights: the caller's generator must not move
            built = model_source(model)()
        if not isinstance(built, nn.Module):
            raise AuditConfigError(f"TrainConfig.for_model: the factory {getattr(model, '__name__', model)!r} "
                                   f"returned {type(built).__name__}, not an nn.Module; make it return the model")
        model = built
    return dataclasses.replace(preset_for(model)[1], **changes)
