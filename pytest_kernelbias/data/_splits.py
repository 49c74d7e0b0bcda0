"""Subgroup-aware sampling of a `SubgroupDataset`: balancing and stratified train/test splits."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import AuditConfigError, DatasetWarning
from ._subgroups import SubgroupDataset


def _with_meta(data: SubgroupDataset, **updates: Any) -> SubgroupDataset:
    return dataclasses.replace(data, meta={**data.meta, **updates})


def _cells(data: SubgroupDataset, attributes: str | Sequence[str], by_label: bool) -> dict[str, list[int]]:
    """Indices per subgroup key (times label when `by_label`), in sorted key order."""
    keys = data.group_keys(attributes)
    if by_label:
        keys = [f"{k}|label={y}" for k, y in zip(keys, data.labels.tolist())]
    cells: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        cells.setdefault(k, []).append(i)
    return dict(sorted(cells.items()))


def _shuffled(index: list[int], rng: np.random.Generator) -> list[int]:
    return [index[i] for i in rng.permutation(len(index))]


def balance(data: SubgroupDataset, attributes: str | Sequence[str], seed: int = 0,
            by_label: bool = False) -> SubgroupDataset:
    """Randomly subsample so every subgroup (times label when `by_label`) has the smallest group's count."""
    cells = _cells(data, attributes, by_label)
    if not cells:
        return data
    n = min(len(v) for v in cells.values())
    rng = np.random.default_rng(seed)
    keep = sorted(i for index in cells.values() for i in _shuffled(index, rng)[:n])
    out = data.subset(torch.tensor(keep, dtype=torch.int64))
    return _with_meta(out, balanced=True, counts=out.counts(attributes))


def _label_interleaved(index: list[int], labels: list[int], rng: np.random.Generator) -> list[int]:
    """`index` shuffled within each label and interleaved so that every prefix holds each label in proportion."""
    ranked = []
    for y in sorted(set(labels)):
        members = _shuffled([i for i, label in zip(index, labels) if label == y], rng)
        ranked += [((j + 0.5) / len(members), rng.random(), i) for j, i in enumerate(members)]
    return [i for *_, i in sorted(ranked)]


def stratified_split(data: SubgroupDataset, attributes: str | Sequence[str], test_fraction: float = 0.2,
                     seed: int = 0) -> tuple[SubgroupDataset, SubgroupDataset]:
    """(train, test) holding `test_fraction` of every subgroup in test, labels in proportion within each.

    Every subgroup with at least 2 images lands in both halves; one-image subgroups stay in train (warned).
    """
    if not 0 < test_fraction < 1:
        raise AuditConfigError(f"test_fraction={test_fraction}: must be strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    train, test, lonely = [], [], []
    for key, index in _cells(data, attributes, by_label=False).items():
        order = _label_interleaved(index, data.labels[index].tolist(), rng)
        n_test = min(max(round(len(order) * test_fraction), 1), len(order) - 1)
        lonely += [key] if len(order) < 2 else []
        test += order[:n_test]
        train += order[n_test:]
    if lonely:
        warnings.warn(f"{data.name}: subgroups {lonely} have one image and appear only in train", DatasetWarning,
                      stacklevel=2)
    parts = []
    for part, index in (("train", train), ("test", test)):
        sub = data.subset(torch.tensor(sorted(index), dtype=torch.int64), name=f"{data.name}-{part}")
        parts.append(_with_meta(sub, counts=sub.counts(attributes) if len(sub) else {}))
    return parts[0], parts[1]
