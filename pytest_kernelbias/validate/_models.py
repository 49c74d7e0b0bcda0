"""Checks of the built models and the perturbations before any training: validate -> plan.

What a model factory, a forward pass or a perturbation does is visible only once
they run, so each runs here on a handful of images: the reference model at the
training batch size in train and eval mode, every level's model on a few images,
the factory's pairing (one initialization per seed, shared by every level), and
every perturbation on a validation batch. A problem is a `KernelBiasError` that
names the fix; what the audit can go on with is a warning.
"""

from __future__ import annotations

import warnings
from typing import Mapping

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from ..data import SubgroupDataset
from ..errors import InputDataWarning, ModelOutputError, PerturbationError
from ..intervention import KernelIntervention, aliases, level_label
from ..perturbations import Perturbation
from ._data import class_count

PROBE_IMAGES = 2  # per set: enough for a train-mode batch norm, cheap for any model
VALIDATION_IMAGES = 16  # test images each perturbation is run on before training
# Perturbed pixels may leave [0, 1] (a high-pass is signed, noise overshoots) but not by a whole range:
# beyond this a perturbation has scaled or offset the images, and every model sees noise.
PERTURBED_RANGE = (-1.0, 2.0)


def check_model(intervention: KernelIntervention, train: SubgroupDataset, test: SubgroupDataset,
                device: str, batch_size: int = PROBE_IMAGES) -> int:
    """Every level's model runs on clean images in train and eval mode; the class count.

    The reference also runs on one whole training batch, since a forward can fail
    only on larger batches. A model whose forward returns a tuple or dict, fails
    on these images, holds other than float32 weights, or has fewer outputs than
    the labels need is refused here rather than after training.
    """
    x = torch.cat([train.images[:PROBE_IMAGES], test.images[:PROBE_IMAGES]]).to(device)
    width = 0
    for level in intervention.levels:
        model = intervention.build(level, 0).to(device)
        width = _run(model, x, level, intervention.reference)
    # A copy: a model that writes into its input must not rewrite the caller's training images.
    batch = train.images[:max(PROBE_IMAGES, min(batch_size, len(train)))].to(device, copy=True)
    if len(batch) > len(x):
        _run(intervention.build(intervention.reference, 0).to(device), batch, intervention.reference,
             intervention.reference, modes=(True,))
    classes = class_count(train, test)
    if classes > width:
        raise ModelOutputError(f"the labels go up to {classes - 1} but the model outputs {width} logits; give the "
                               f"model {classes} outputs (num_classes={classes}) or map the labels to 0..{width - 1}")
    return width


def _run(model: nn.Module, x: torch.Tensor, level, reference, modes=(True, False)) -> int:
    width = 0
    which = "reference model" if level == reference else f"model at level {level_label(level)}"
    for training in modes:
        mode = "train" if training else "eval"
        model.train(training)
        try:
            with torch.no_grad():
                out = model(x)
        except Exception as exc:  # any failure of the user's forward: report it before training, not after
            raise ModelOutputError(f"the {which} fails in {mode} mode on a batch of {len(x)} images of shape "
                                   f"{tuple(x.shape[1:])}: {type(exc).__name__}: {exc}. Fix the forward for this "
                                   f"level and batch size, or drop the level") from None
        width = _logit_width(out, len(x), mode)
    return width


def _logit_width(out: object, n: int, mode: str) -> int:
    if not isinstance(out, torch.Tensor):
        raise ModelOutputError(f"the model's forward returns {type(out).__name__} in {mode} mode; an audit needs one "
                               f"(N, C) logits tensor: wrap the model so forward returns only the logits (for "
                               f"torchvision's inception/googlenet, aux_logits=False)")
    if out.ndim != 2 or out.shape[0] != n or out.shape[1] < 2 or not out.is_floating_point():
        raise ModelOutputError(f"the model's forward returns a {out.dtype} tensor of shape {tuple(out.shape)} for "
                               f"{n} images in {mode} mode; an audit needs float logits of shape ({n}, C) with "
                               f"C >= 2 classes (one logit per class, argmax is the prediction)")
    if not bool(torch.isfinite(out).all()):
        raise ModelOutputError(f"the freshly built model gives non-finite logits in {mode} mode on clean images; "
                               f"check its initialization and the input range")
    return int(out.shape[1])


def _unchanged(model: nn.Module, layers) -> dict[str, torch.Tensor]:
    """The parameters and buffers outside the intervened layers: what every level of one seed must share.

    A tied layer (one module under several names) is intervened at every name, so each name is inside.
    Lazy parameters have no values until the first forward, so there is nothing to compare yet.
    """
    inside = tuple(f"{alias}." for name in layers for alias in aliases(model, model.get_submodule(name)))
    return {k: v for k, v in model.state_dict(keep_vars=False).items() if not k.startswith(inside) and not is_lazy(v)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


def check_factory(intervention: KernelIntervention, paired: bool, copies_module: bool) -> None:
    """The factory pairs the levels: one initialization per seed, shared by every level, drawn from the seed.

    Checked on built models before training: two builds of one (level, seed) are equal (no randomness
    outside torch's seeded generator), every level of seed 0 shares the unchanged layers' weights (with
    paired=True), and seeds 0 and 1 differ there (a warning: the seeds then vary only the intervened
    layer and the training order). A factory that returns one object every call is refused.
    """
    if not copies_module and intervention.source() is intervention.source():
        raise ModelOutputError("the model factory returns the same module object on every call, so every seed "
                               "starts from one set of weights and training one model changes the next; build a "
                               "new module in the factory, or pass the module itself (model=m: every seed then "
                               "starts from a copy of its weights, on purpose)")
    ref, layers = intervention.reference, intervention.layers
    first = _unchanged(intervention.build(ref, 0), layers)
    if not _same(first, _unchanged(intervention.build(ref, 0), layers)):
        raise ModelOutputError("two builds of the same seed gave different weights: the model factory draws "
                               "randomness that the seed does not fix (Python's random, numpy, a time or a "
                               "counter); draw every random choice from torch (seeded per build) or fix it")
    if paired:
        for level in intervention.treatments:
            if not _same(first, _unchanged(intervention.build(level, 0), layers)):
                raise ModelOutputError(
                    f"level {level_label(level)} of seed 0 differs from the reference outside the intervened "
                    f"layers {list(layers)}: the factory's model depends on more than the seed, so levels are "
                    "not paired; make the factory build one architecture whatever the level")
    if not copies_module and _same(first, _unchanged(intervention.build(ref, 1), layers)):
        warnings.warn(InputDataWarning(
            "seeds 0 and 1 give the same weights outside the intervened layers: the factory loads or fixes its "
            "weights, so the seeds vary only the intervened layer's initialization and the training order, and "
            "the interval speaks for that variation only; build fresh weights in the factory to audit over "
            "initializations"), stacklevel=4)


def check_perturbations(perturbations: Mapping[str, Perturbation], test: SubgroupDataset) -> None:
    """Each perturbation, run on a validation batch of test images, returns finite images of that shape near [0, 1]."""
    x = test.images[:VALIDATION_IMAGES]
    for name, p in perturbations.items():
        p.reset()
        given = x.clone()
        try:
            out = p(given)
        except Exception as exc:  # the user's perturbation: name it and the batch, before any training
            raise PerturbationError(f"perturbation {name!r} ({p!r}) fails on a batch of {len(x)} test images of "
                                    f"shape {tuple(x.shape[1:])}: {type(exc).__name__}: {exc}") from None
        finally:
            p.reset()  # seeded perturbations restart, so evaluation draws what it would have without this check
        if not torch.equal(given, x):  # Perturbation.__call__ hands apply() a copy: only an own __call__ gets here
            raise PerturbationError(f"perturbation {name!r} ({p!r}) writes into the images it is given, which would "
                                    "rewrite the caller's test images; override apply(x) and leave __call__ to the "
                                    "base class, or return a new tensor (x = x.clone() first)")
        _check_output(name, p, x, out)


def _check_output(name: str, p: Perturbation, x: torch.Tensor, out: object) -> None:
    where = f"perturbation {name!r} ({p!r})"
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape) or not out.is_floating_point():
        got = f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))} {getattr(out, 'dtype', '')}".strip()
        raise PerturbationError(f"{where} returns {got} for float images {tuple(x.shape)}; apply(x) must return "
                                "float images of the shape it was given")
    finite = torch.isfinite(out)
    if not bool(finite.all()):
        raise PerturbationError(f"{where} returns non-finite pixels ({int((~finite).sum())} of {out.numel()} on "
                                f"{len(x)} test images); every model would predict one class on them. Fix apply(), "
                                "e.g. guard its divisions")
    low, high = float(out.min()), float(out.max())
    if low < PERTURBED_RANGE[0] or high > PERTURBED_RANGE[1]:
        raise PerturbationError(f"{where} returns pixels in [{low:.3g}, {high:.3g}] for images in [0, 1]; it "
                                "must keep them near [0, 1] (clip=True clips them): check its scale, e.g. a "
                                "0..255 constant")
    if len(out) > 1 and bool((out == out[:1]).all()) and not bool((x == x[:1]).all()):
        warnings.warn(InputDataWarning(f"{where} maps {len(x)} different test images to one image; every model "
                                       "then predicts one class on the perturbed set"), stacklevel=4)
