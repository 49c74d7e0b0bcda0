"""The audit's one check of data and model before any training: spec -> validate -> plan.

The spec checks each setting on its own; this pass checks what only the data
and a built model can tell: pixel dtype and range, non-finite pixels, image
sizes, labels against the model's output, subgroups and their sizes, what a
forward pass returns, and whether each kernel fits the input it convolves.
Every problem is a `KernelBiasError` that names the fix, raised before the
first model trains; what an audit can go on with is a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Sequence

import torch

from .data._subgroups import SubgroupDataset
from .errors import EmptySubgroupError, InputDataError, InputDataWarning, ModelOutputError, SmallSubgroupError
from .intervention._intervene import KernelIntervention

# Float pixels may overshoot [0, 1] a little (a bicubic resize rings); 0..255 pixels or
# mean/std-normalized ones overshoot by far more, and every perturbation assumes [0, 1].
RANGE_SLACK = 0.05
PROBE_IMAGES = 2  # per set: enough for a train-mode batch norm, cheap for any model


def check_images(data: SubgroupDataset, role: str) -> SubgroupDataset:
    """`data` with float pixels in [0, 1]; uint8 pixels are scaled with a warning, anything else refused."""
    x = data.images
    if len(data) == 0:
        raise InputDataError(f"the {role} set {data.name!r} has no images; an audit needs images to train and test on")
    if x.dtype == torch.uint8:
        warnings.warn(f"the {role} set {data.name!r} has uint8 pixels; they are divided by 255 to lie in [0, 1]. "
                      f"Pass float images in [0, 1] to silence this.", InputDataWarning, stacklevel=4)
        return replace(data, images=x.float() / 255)
    if not x.is_floating_point():
        raise InputDataError(f"the {role} set {data.name!r} has {x.dtype} pixels; pass float images in [0, 1], "
                             f"e.g. images.float() / 255")
    finite = torch.isfinite(x).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()
        raise InputDataError(f"the {role} set {data.name!r} has non-finite (NaN or Inf) pixels in {len(bad)} "
                             f"image(s), e.g. index {bad[:5].tolist()}; drop or repair those images")
    low, high = float(x.min()), float(x.max())
    if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
        raise InputDataError(f"the {role} set {data.name!r} has pixels in [{low:.3g}, {high:.3g}]; images must lie "
                             f"in [0, 1]: divide 0..255 pixels by 255, and put any mean/std normalization inside "
                             f"the model, because the perturbations act on [0, 1] pixels")
    return data


def check_labels(data: SubgroupDataset, role: str) -> SubgroupDataset:
    """`data` with int64 class indices >= 0 (other integer dtypes are widened; floats are refused)."""
    y = data.labels
    if not isinstance(y, torch.Tensor) or y.ndim != 1:
        raise InputDataError(f"the {role} set {data.name!r} needs labels as a 1-D tensor of class indices, got "
                             f"{type(y).__name__} of shape {tuple(getattr(y, 'shape', ()))}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise InputDataError(f"the {role} set {data.name!r} has {y.dtype} labels; pass int64 class indices "
                             f"0..C-1, e.g. labels.long()")
    negative = torch.nonzero(y < 0).flatten()
    if len(negative):
        raise InputDataError(f"the {role} set {data.name!r} has {len(negative)} negative label(s) (e.g. "
                             f"{int(y[negative[0]])} at index {int(negative[0])}); labels are class indices "
                             f"0..C-1: drop unlabelled images or map their labels")
    return data if y.dtype == torch.int64 else replace(data, labels=y.long())


def check_pair(train: SubgroupDataset, test: SubgroupDataset) -> None:
    """Train and test images share one (C, H, W); test labels unseen in training are a warning."""
    if tuple(train.images.shape[1:]) != tuple(test.images.shape[1:]):
        raise InputDataError(f"training images are {tuple(train.images.shape[1:])} (C, H, W) but test images are "
                             f"{tuple(test.images.shape[1:])}; resize both sets to one size (the loaders' size=)")
    unseen = sorted(set(test.labels.unique().tolist()) - set(train.labels.unique().tolist()))
    if unseen:
        warnings.warn(f"test label(s) {unseen} never occur in the training set {train.name!r}; the models cannot "
                      f"learn them, so every such test image counts as an error", InputDataWarning, stacklevel=4)


def check_groups(test: SubgroupDataset, counts: dict[str, int], attributes: Sequence[str], min_size: int,
                 on_small: str) -> None:
    """At least two test subgroups; those under `min_size` images warn (or raise with on_small="error")."""
    if len(counts) < 2:
        raise InputDataError(f"attributes={list(attributes)} give {len(counts)} subgroup(s) in the test set "
                             f"{test.name!r} ({sorted(counts)}); an audit compares two or more: choose an "
                             f"attribute with two or more values")
    small = {k: n for k, n in counts.items() if n < min_size}
    if not small:
        return
    listing = ", ".join(f"{k!r} has {n}" for k, n in small.items())
    message = (f"test subgroups under min_group_size={min_size} images: {listing}. An accuracy on n images has a "
               f"standard error up to 0.5/sqrt(n) that no number of seeds removes: add test images, or set "
               f"min_group_size= lower")
    if on_small == "error":
        raise SmallSubgroupError(message)
    warnings.warn(message, InputDataWarning, stacklevel=4)


BINARY_METRICS = ("tpr", "fpr", "balanced_accuracy")
_NEEDS = {"tpr": (1, "positives (label 1)"), "fpr": (0, "negatives (label 0)")}


def check_labels_by_group(test: SubgroupDataset, groups: dict, metric: str) -> None:
    """Labels the metric can score in every test subgroup; subgroups whose label never varies are named.

    A binary metric on other labels, or a TPR (FPR) subgroup without positives (negatives), would
    be refused only after every model trained; a subgroup holding one class cannot be judged
    against chance by the learning check, and when every subgroup does, the attribute decides the
    label and a gap between subgroups is a gap between classes.
    """
    labels = test.labels
    if metric in BINARY_METRICS and not set(labels.unique().tolist()) <= {0, 1}:
        raise InputDataError(f"metric={metric!r} needs 0/1 labels, but the test set {test.name!r} has classes "
                             f"{sorted(labels.unique().tolist())}; use metric='accuracy' or 'error', or binarize "
                             "the label (label=(column, positive values)) when loading")
    constant = {}
    for name, index in groups.items():
        values = labels[index].unique().tolist()
        if metric in _NEEDS and _NEEDS[metric][0] not in values:
            raise EmptySubgroupError(f"metric={metric!r} is undefined for test subgroup {name!r}: it has no "
                                     f"{_NEEDS[metric][1]}; use another metric, or rebalance the test set "
                                     "(stratified_split by subgroup and label)")
        if len(values) == 1:
            constant[name] = int(values[0])
    if not constant:
        return
    listing = ", ".join(f"{g!r} (always {v})" for g, v in constant.items())
    if len(constant) == len(groups):
        warnings.warn(InputDataWarning(
            f"the subgroup attribute(s) determine the label in {test.name!r}: every subgroup holds one class "
            f"({listing}), so a gap between subgroups is a gap between classes and the learning check can judge "
            "no subgroup; audit subgroups that each hold both classes"), stacklevel=4)
        return
    warnings.warn(InputDataWarning(
        f"the label never varies in test subgroup(s) {listing}: their {metric} scores one class only, and the "
        "learning check cannot judge them against chance"), stacklevel=4)


def check_model(intervention: KernelIntervention, train: SubgroupDataset, test: SubgroupDataset,
                device: str) -> int:
    """Run the reference model on a few training and test images, in train and eval mode; its class count.

    A model whose forward returns a tuple or dict, fails on these images, or has
    fewer outputs than the labels need is refused here rather than after training.
    """
    model = intervention.build(intervention.reference, 0).to(device)
    x = torch.cat([train.images[:PROBE_IMAGES], test.images[:PROBE_IMAGES]]).to(device)
    width = 0
    for training in (True, False):
        mode = "train" if training else "eval"
        model.train(training)
        try:
            with torch.no_grad():
                out = model(x)
        except Exception as exc:  # any failure of the user's forward: report it before training, not after
            raise ModelOutputError(f"the reference model fails in {mode} mode on {len(x)} images of shape "
                                   f"{tuple(x.shape[1:])}: {type(exc).__name__}: {exc}") from None
        width = _logit_width(out, len(x), mode)
    classes = int(max(train.labels.max(), test.labels.max())) + 1
    if classes > width:
        raise ModelOutputError(f"the labels go up to {classes - 1} but the model outputs {width} logits; give the "
                               f"model {classes} outputs (num_classes={classes}) or map the labels to 0..{width - 1}")
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


def check_data(spec, train: SubgroupDataset, test: SubgroupDataset) -> tuple[SubgroupDataset, SubgroupDataset]:
    """Both sets checked (and uint8 pixels or narrow integer labels converted), then their pairing and subgroups."""
    train = check_labels(check_images(train, "training"), "training")
    test = check_labels(check_images(test, "test"), "test")
    check_pair(train, test)
    # Every subgroup trained on must be measurable: names the missing one (EmptySubgroupError). One pass over
    # each set's attributes; the loaders built after this need not check again.
    attributes = list(spec.data.attributes)
    groups = test.subgroup_indices(attributes, expected=list(train.subgroup_indices(attributes)))
    check_groups(test, {k: len(v) for k, v in groups.items()}, attributes, spec.data.min_group_size,
                 spec.data.on_small_group)
    check_labels_by_group(test, groups, spec.inference.metric)
    return train, test
