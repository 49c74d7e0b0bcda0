"""`SubgroupDataset`: images, a binary task label and named subgroup attributes."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Mapping, Sequence

import numpy as np
import torch

from ..errors import AuditConfigError, EmptySubgroupError, InputDataError, MissingAttributeError, SmallSubgroupError

if TYPE_CHECKING:
    from ._faces import LabelSpec

_FINGERPRINT_MEMO = "_fingerprint_memo"  # instance attribute outside the dataclass fields


def _check_separators(names: Sequence[str], columns: Sequence[np.ndarray], dataset: str) -> None:
    """Subgroup keys join attr=value pairs with "&": a name or value holding "&" or "=" would merge subgroups."""
    for a, col in zip(names, columns):
        bad = [v for v in dict.fromkeys(map(str, col)) if "&" in v or "=" in v]
        if "&" in a or "=" in a or bad:
            what = f"attribute name {a!r}" if ("&" in a or "=" in a) else f"value {bad[0]!r} of attribute {a!r}"
            raise InputDataError(f"{dataset}: the {what} holds '&' or '=', which subgroup keys "
                                 "('attr=value&attr=value') use as separators, so two subgroups could share one "
                                 "key; rename it (map the values, e.g. 'a&b' -> 'a+b') before the audit")


def check_group_sizes(counts: Mapping[str, int], minimum: int, on_small: str, what: str, fix: str,
                      category: type[Warning], stacklevel: int) -> None:
    """The one small-subgroup rule, for loaders and audits alike: a subgroup under `minimum` images is a
    warning of `category`, or with on_small="error" a `SmallSubgroupError`; `what` and `fix` word the message."""
    if on_small not in ("warn", "error"):
        raise AuditConfigError(f"on_small_group={on_small!r}; use 'warn' or 'error'")
    small = {k: n for k, n in counts.items() if n < minimum}
    if not small:
        return
    listing = ", ".join(f"{k!r} has {n}" for k, n in small.items())
    message = f"{what} under min_group_size={minimum} images: {listing}. {fix}"
    if on_small == "error":
        raise SmallSubgroupError(message)
    warnings.warn(message, category, stacklevel=stacklevel + 1)


@dataclass(frozen=True, repr=False)
class SubgroupDataset:
    """A labelled image set whose every image carries subgroup attributes.

    `images` is float (N, C, H, W) with values in [0, 1]; `labels` is int64 (N,);
    `attributes` maps an attribute name (e.g. ``"skin_tone"``) to N string values.
    """

    images: torch.Tensor
    labels: torch.Tensor
    attributes: Mapping[str, Sequence[str]]
    name: str = "dataset"
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or not isinstance(self.labels, torch.Tensor):
            raise InputDataError(f"{self.name}: images and labels must be torch tensors, got "
                                 f"{type(self.images).__name__} and {type(self.labels).__name__}; use "
                                 f"torch.as_tensor, or build the set with from_tensors()")
        n = len(self.images)
        if self.images.ndim != 4:
            raise InputDataError(f"{self.name}: images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        if len(self.labels) != n:
            raise InputDataError(f"{self.name}: {len(self.labels)} labels for {n} images")
        for attr, values in self.attributes.items():
            if len(values) != n:
                raise InputDataError(f"{self.name}: attribute {attr!r} has {len(values)} values for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        # Short on purpose: failure reports and tracebacks show this, never thousands of pixel values.
        shape = "x".join(map(str, tuple(self.images.shape[1:])))
        return (f"SubgroupDataset({self.name!r}, n={len(self)}, images={shape} {self.images.dtype}, "
                f"attributes={sorted(self.attributes)})")

    def group_keys(self, attributes: str | Sequence[str]) -> list[str]:
        """One subgroup key per image, e.g. ``"skin_tone=dark"`` or ``"skin_tone=dark&gender=f"``."""
        names = [attributes] if isinstance(attributes, str) else list(attributes)
        missing = [a for a in names if a not in self.attributes]
        if missing:
            raise MissingAttributeError(
                f"{self.name} has no subgroup attribute {missing[0]!r}; "
                f"pass one of {sorted(self.attributes)} as `attributes=`"
            )
        columns = [np.asarray(self.attributes[a], dtype=object) for a in names]
        _check_separators(names, columns, self.name)
        return ["&".join(f"{a}={col[i]}" for a, col in zip(names, columns)) for i in range(len(self))]

    def subgroup_indices(
        self, attributes: str | Sequence[str], expected: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Map each subgroup key to the indices of its images, in sorted key order.

        `expected` lists keys that must be present; a missing one is an
        `EmptySubgroupError` naming it, because a subgroup with no images has no metric.
        """
        keys = np.asarray(self.group_keys(attributes), dtype=object)
        groups = {k: torch.from_numpy(np.flatnonzero(keys == k)) for k in sorted(set(keys.tolist()))}
        for k in expected or ():
            if k not in groups:
                raise EmptySubgroupError(
                    f"subgroup {k!r} has no images in {self.name}; present subgroups are "
                    f"{sorted(groups)}. Enlarge the test set or drop that subgroup."
                )
        return groups

    def subset(self, index: torch.Tensor, name: str | None = None) -> "SubgroupDataset":
        idx = index.cpu().numpy()
        return SubgroupDataset(
            images=self.images[index],
            labels=self.labels[index],
            attributes={a: [v[i] for i in idx] for a, v in self.attributes.items()},
            name=name or self.name,
            meta=dict(self.meta),
        )

    def copy(self) -> "SubgroupDataset":
        """A deep copy (tensors cloned): what user code receives, so it can never change the audit's data."""
        return SubgroupDataset(self.images.clone(), self.labels.clone(),
                               {a: list(v) for a, v in self.attributes.items()}, self.name, dict(self.meta))

    def counts(self, attributes: str | Sequence[str]) -> dict[str, int]:
        return {k: len(v) for k, v in self.subgroup_indices(attributes).items()}

    def save(self, folder: str | Path, layout: Literal["fairface", "utkface", "csv"] = "csv", *,
             label: LabelSpec | None = None, split: str | None = None, overwrite: bool = False) -> Path:
        """Write the images and a label file that this package's loader for `layout` reads back; returns what to
        pass it: the label file (``"fairface"``, ``"csv"``) or `folder` (``"utkface"``, whose file names are its
        labels). Layouts, accepted values and the loader calls: docs/data.md.

        - ``"csv"`` holds any dataset: ``labels.csv`` (columns image, label, one per attribute) and ``images/``;
          read back with ``load_csv_manifest(path, "image", "label", list(attributes), size=side)``.
        - ``"fairface"``: ``fairface_label_{split}.csv`` and ``{split}/1.png``...; attributes exactly age, gender,
          race (FairFace names) and optionally service_test, which comes back as ``""`` where absent; read back
          with ``load_fairface(path.parent, split=split, label=label, size=side)``.
        - ``"utkface"``: ``{age}_{gender code}_{race code}_{index}.jpg`` (PNG bytes under the name the loader
          matches); attributes exactly age (digits), gender, race (UTKFace names); read back with
          ``load_utkface(folder, label=label, size=side)``, in file-name order: the last field of a name is the
          image's index here.

        FairFace and UTKFace store no label: `label` (default: the loader's own, ``("gender", "Female")``) must
        give every image's label from those attributes, and is what to pass the loader. Round trip, with
        ``size=`` the images' side: labels, attribute values (as strings) and order (UTKFace: see above) are
        equal; images come back as ``round(255 * x) / 255`` in float32: bit-identical for pixels on the 1/255
        grid (as the loaders and ``uint8.float() / 255`` make them), else within 0.5/255 of the source
        (SynthFaces pixels are not on the grid).

        Everything is checked before the first file is written, raising `DatasetFormatError` for data the layout
        cannot hold (attributes, values, labels; non-square, non-RGB or out-of-range images) and
        `AuditConfigError` for an unknown layout or a non-empty folder. ``overwrite=True`` first removes an
        earlier save of the same layout there (the label file and its image folder, or UTKFace-named files) and
        leaves other files, so FairFace's train and val splits can share one folder.
        """
        from ._save import save_dataset  # here, not at the top: _save imports the loaders, which import this module

        return save_dataset(self, folder, layout, label=label, split=split, overwrite=overwrite)

    def fingerprint(self) -> str:
        """A content hash (16 hex chars): same images, labels and attributes give the same string.

        The hash is memoized on the instance and redone when either tensor's version
        counter moves, which every in-place torch write bumps (``images[i] = v``,
        ``images.mul_(2)``, writes through views or ``.detach()``), or when an attribute
        value changes (attributes are rehashed each call: plain lists, cheap next to pixels).
        Writes that bypass the counter (through ``.numpy()`` or ``.data``) are not seen.
        Inference-mode tensors have no counter, so their hash is never memoized.
        """
        # JSON of (name, values) pairs: an injective encoding, so {"ab": ["c"]} and {"a": ["bc"]} differ.
        attributes = json.dumps([[attr, [str(v) for v in self.attributes[attr]]] for attr in sorted(self.attributes)]
                                ).encode()
        versions = [None if t.is_inference() else t._version for t in (self.images, self.labels)]
        key = (*versions, hashlib.sha256(attributes).digest())
        memo = self.__dict__.get(_FINGERPRINT_MEMO)
        if memo is not None and memo[0] == key and None not in versions:
            return memo[1]
        h = hashlib.sha256()
        # Shapes and dtypes first: the same bytes as (2, 3, 8, 8) or (3, 2, 8, 8) images are other data.
        h.update(repr([(tuple(t.shape), str(t.dtype)) for t in (self.images, self.labels)]).encode())
        h.update(self.images.detach().cpu().contiguous().numpy().tobytes())
        h.update(self.labels.detach().cpu().contiguous().numpy().tobytes())
        h.update(attributes)  # the concatenation in one update: the same digest as the unmemoized hash
        digest = h.hexdigest()[:16]
        object.__setattr__(self, _FINGERPRINT_MEMO, (key, digest))  # frozen dataclass: bypass its __setattr__
        return digest

    def __getstate__(self) -> dict:
        # A copy's tensors restart their version counters, so a carried-over memo could match stale content.
        return {k: v for k, v in self.__dict__.items() if k != _FINGERPRINT_MEMO}
