"""The audit's one check of data and model before any training: spec -> validate -> plan.

The spec checks each setting on its own; this pass checks what only the data
and a built model can tell: pixel dtype and range, non-finite pixels, image
sizes, labels against the model's output, subgroups and their sizes, what a
forward pass returns, and whether each kernel fits the input it convolves.
Every problem is a `KernelBiasError` that names the fix, raised before the
first model trains; what an audit can go on with is a warning.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import replace
from typing import Sequence

import torch

from ..data import SubgroupDataset, check_group_sizes
from ..errors import (
    AuditConfigError,
    EmptySubgroupError,
    InputDataError,
    InputDataWarning,
)

# Float pixels may overshoot [0, 1] a little (a bicubic resize rings); 0..255 pixels or
# mean/std-normalized ones overshoot by far more, and every perturbation assumes [0, 1].
RANGE_SLACK = 0.05


def check_device(device: str) -> None:
    """The audit's device exists here: a missing GPU is named before any model is built, not by the driver."""
    dev = torch.device(device)
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            built = torch.version.cuda or "no CUDA (a CPU-only build)"
            raise AuditConfigError(f"device={device!r} but torch sees no CUDA GPU here (torch {torch.__version__} "
                                   f"built with {built}; torch.cuda.is_available() is False); use device='cpu', "
                                   "or install a CUDA build of torch that matches this machine's driver")
        if dev.index is not None and dev.index >= count:
            raise AuditConfigError(f"device={device!r} but this machine has {count} CUDA device(s), "
                                   f"cuda:0..cuda:{count - 1}; pick one of those")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise AuditConfigError(f"device={device!r} but the Apple MPS backend is not available here; use "
                               "device='cpu'")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise AuditConfigError(f"device={device!r}: audits run on cpu, cuda or mps; use one of those")


def check_images(data: SubgroupDataset, role: str) -> SubgroupDataset:
    """`data` with float pixels in [0, 1]; uint8 pixels are scaled with a warning, anything else refused."""
    x = data.images
    if len(data) == 0:
        raise InputDataError(f"the {role} set {data.name!r} has no images; an audit needs images to train and test on")
    _check_layout(data, role)
    if x.dtype == torch.uint8:
        warnings.warn(f"the {role} set {data.name!r} has uint8 pixels; they are divided by 255 to lie in [0, 1]. "
                      f"Pass float images in [0, 1] to silence this.", InputDataWarning, stacklevel=4)
        return replace(data, images=x.float() / 255)
    if not x.is_floating_point():
        raise InputDataError(f"the {role} set {data.name!r} has {x.dtype} pixels; pass float images in [0, 1], "
                             f"e.g. images.float() / 255")
    if x.dtype != torch.float32:  # models and perturbations run in float32; torch's own error names no fix
        warnings.warn(f"the {role} set {data.name!r} has {x.dtype} pixels; they are converted to float32, the "
                      f"dtype audits train and test in. Pass images.float() to silence this.", InputDataWarning,
                      stacklevel=4)
        data = replace(data, images=x.float())
        x = data.images
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


def _check_layout(data: SubgroupDataset, role: str) -> None:
    """(N, C, H, W) images: a last axis of 1, 3 or 4 after a wider second axis is an (N, H, W, C) array."""
    n, c, h, w = data.images.shape
    if w in (1, 3, 4) and c > 4 and h > 4:
        raise InputDataError(f"the {role} set {data.name!r} has images of shape {tuple(data.images.shape)}, which "
                             f"reads as channels-last (N, H, W, C) with {w} channels; audits take (N, C, H, W): "
                             "pass images.permute(0, 3, 1, 2)")


def check_overlap(train: SubgroupDataset, test: SubgroupDataset) -> None:
    """Test images must not be training images: the perturbed drop would then measure memorization."""
    seen = set(_image_hashes(train.images))
    shared = [i for i, h in enumerate(_image_hashes(test.images)) if h in seen]
    if not shared:
        return
    where = (f"{len(shared)} of the {len(test)} test images also occur in the training set {train.name!r} "
             f"(e.g. test index {shared[:5]})")
    if len(shared) == len(test):
        raise InputDataError(f"{where}: every test image is a training image, so the audit would score what the "
                             "models memorized; pass a held-out test set (stratified_split(data, ...), or the "
                             "loader's other split)")
    warnings.warn(f"{where}; their accuracy reflects memorization rather than generalization. Drop them from "
                  "the test set (or split before augmenting)", InputDataWarning, stacklevel=4)


def _image_hashes(images: torch.Tensor) -> list[bytes]:
    flat = images.detach().cpu().contiguous().flatten(1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def class_count(train: SubgroupDataset, test: SubgroupDataset) -> int:
    """The classes the model must output: one more than the largest label of either set."""
    return int(max(train.labels.max(), test.labels.max())) + 1


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
    check_group_sizes(counts, min_size, on_small, "test subgroups",
                      "An accuracy on n images has a standard error up to 0.5/sqrt(n) that no number of seeds "
                      "removes: add test images, or set min_group_size= lower", InputDataWarning, stacklevel=4)


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


def check_data(spec, train: SubgroupDataset, test: SubgroupDataset) -> tuple[SubgroupDataset, SubgroupDataset]:
    """Both sets checked (and uint8 pixels or narrow integer labels converted), then their pairing and subgroups."""
    train = check_labels(check_images(train, "training"), "training")
    test = check_labels(check_images(test, "test"), "test")
    check_pair(train, test)
    check_overlap(train, test)
    # Every subgroup trained on must be measurable: names the missing one (EmptySubgroupError). One pass over
    # each set's attributes; the loaders built after this need not check again.
    attributes = list(spec.data.attributes)
    groups = test.subgroup_indices(attributes, expected=list(train.subgroup_indices(attributes)))
    check_groups(test, {k: len(v) for k, v in groups.items()}, attributes, spec.data.min_group_size,
                 spec.data.on_small_group)
    check_labels_by_group(test, groups, spec.inference.metric)
    return train, test
