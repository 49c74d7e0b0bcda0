"""Datasets already in memory: a torch `Dataset`, or tensors with per-image attributes.

Both give the `SubgroupDataset` the file loaders give (float (N, C, H, W) images in
[0, 1], 0/1 labels, string attributes) with the same group options, and name the
item and the fix for anything they cannot read.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from typing_extensions import Unpack

from ..errors import DatasetFormatError
from ._faces import GroupOptions, LabelSpec, _finish, _labels, _Source
from ._images import fit_tensor
from ._subgroups import SubgroupDataset


def _as_image(image: Any, size: int | None, where: str) -> torch.Tensor:
    """A PIL image, a (C, H, W) tensor or a (C, H, W) / (H, W, C) array (uint8, or float in [0, 1]) as float CHW."""
    kind = type(image).__name__
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
        if image.ndim == 3 and image.shape[-1] in (1, 3, 4) and image.shape[0] not in (1, 3, 4):
            image = image.permute(2, 0, 1)  # (H, W, C), as PIL and OpenCV give it
    elif hasattr(image, "convert"):  # PIL image: go through numpy, never through pickle
        image = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] not in (1, 3, 4):
        shape = tuple(getattr(image, "shape", ()))
        raise DatasetFormatError(f"{where}: the image is a {kind} of shape {shape}; give a PIL "
                                 "image, a (C, H, W) tensor or a (C, H, W) / (H, W, C) array with 1, 3 or 4 channels "
                                 "(e.g. transform=torchvision.transforms.ToTensor())")
    image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    return fit_tensor(image, size) if size is not None else image


def _sample(dataset: Any, i: int, n: int, keys: tuple[str, str]) -> tuple[Any, Any, Any]:
    """Item `i` as (image, label, sample); a failure names the index, and dict samples are read by `keys`."""
    try:
        sample = dataset[i]
    except IndexError as exc:
        raise DatasetFormatError(f"dataset item {i} raises IndexError ({exc}) although len(dataset) is {n}; make "
                                 "__len__ return the number of items __getitem__ can give") from None
    except Exception as exc:  # the user's __getitem__: say which item, so it can be fixed or dropped
        raise DatasetFormatError(f"dataset item {i} of {n} raises {type(exc).__name__}: {exc}; repair that item "
                                 "or leave it out (torch.utils.data.Subset(dataset, good_indices))") from None
    if isinstance(sample, Mapping):
        missing = [k for k in keys if k not in sample]
        if missing:
            raise DatasetFormatError(f"dataset item {i} is a dict with keys {sorted(map(str, sample))}, without "
                                     f"{missing}; name its image and label keys: keys=('<image key>', '<label key>')")
        return sample[keys[0]], sample[keys[1]], sample
    if not isinstance(sample, (tuple, list)) or len(sample) < 2:
        raise DatasetFormatError(f"dataset item {i} is a {type(sample).__name__}; from_torch_dataset reads "
                                 "(image, label) pairs or dicts (keys=('image', 'label'))")
    return sample[0], sample[1], sample


def from_torch_dataset(dataset: Any, subgroup_fn: Callable[[int, Any], Mapping[str, object]],
                       label: LabelSpec = "label", size: int | None = None, name: str = "torch-dataset",
                       keys: tuple[str, str] = ("image", "label"),
                       **options: Unpack[GroupOptions]) -> SubgroupDataset:
    """A map-style torch `Dataset` of ``(image, label)`` plus ``subgroup_fn(index, sample) -> {attr: value}``.

    Items may also be dicts, read by `keys` (image key, label key). Label functions
    see the attributes plus ``"label"`` (the dataset's label as a string).
    """
    images, rows, n = [], [], len(dataset)
    for i in range(n):
        image, y, sample = _sample(dataset, i, n, keys)
        images.append(_as_image(image, size, f"{name} item {i}"))
        rows.append({"label": _scalar_str(y, i, name), **{k: str(v) for k, v in subgroup_fn(i, sample).items()}})
    return _from_rows(images, rows, label, name, options)


def _class_index(y: Any, i: int, name: str) -> str:
    """A label as the string of a whole class index; fractions and text are refused, never truncated."""
    try:
        value = float(y)
    except (TypeError, ValueError, RuntimeError):
        raise DatasetFormatError(f"{name}: label {y!r} at index {i} is not a class index; pass 0/1 labels (map "
                                 "text labels first, e.g. [int(v == 'smiling') for v in labels])") from None
    if not value.is_integer():
        raise DatasetFormatError(f"{name}: label {value:.6g} at index {i} is not a whole number, and truncating it "
                                 "would change the class; pass 0/1 labels (e.g. (scores > 0.5).long())")
    return str(int(value))


def _scalar_str(y: Any, i: int, name: str) -> str:
    """A dataset's label as a string: a class index or its text; a vector target (e.g. CelebA's 40 attributes)
    gives "" - derive the label in subgroup_fn."""
    if isinstance(y, str):
        return y
    if isinstance(y, torch.Tensor) and y.numel() != 1 or isinstance(y, (np.ndarray, list, tuple)) and np.size(y) != 1:
        return ""
    return _class_index(y, i, name)


def from_tensors(images: torch.Tensor, labels: Sequence[int] | torch.Tensor,
                 attributes: Mapping[str, Sequence[object]], name: str = "tensors",
                 **options: Unpack[GroupOptions]) -> SubgroupDataset:
    """In-memory float (N, C, H, W) images in [0, 1], 0/1 labels and per-image attribute values."""
    columns = {a: [str(v) for v in vs] for a, vs in attributes.items()}
    for a, values in columns.items():
        if len(values) != len(labels):
            raise DatasetFormatError(f"{name}: attribute {a!r} has {len(values)} values for {len(labels)} labels")
    rows = [{**{a: columns[a][i] for a in columns}, "label": _class_index(y, i, name)} for i, y in enumerate(labels)]
    return _from_rows(list(images), rows, "label", name, options)


def _from_rows(images: list[torch.Tensor], rows: list[dict[str, str]], label: LabelSpec, name: str,
               options: GroupOptions) -> SubgroupDataset:
    """Shared tail of the in-memory loaders: all images must share one shape; rows hold ``"label"`` first."""
    shapes = sorted({tuple(im.shape) for im in images})
    if len(shapes) > 1:
        raise DatasetFormatError(f"{name}: images have shapes {shapes[:5]}; pass size= to resize and crop them")
    labels = _labels(rows, [f"{name} item {i}" for i in range(len(rows))], label)
    columns = [c for c in (rows[0] if rows else {}) if c != "label"]
    stacked = torch.stack(images) if images else torch.zeros(0, 3, 1, 1)
    source = _Source(name, {"label": repr(label), "skipped": [], "n_skipped": 0}, ())
    return _finish(stacked, labels, {c: [r[c] for r in rows] for c in columns}, source, options)
