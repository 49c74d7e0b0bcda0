"""Per-subgroup classification metrics from predictions, vectorized with np.bincount.

Every metric is a rate in [0, 1] (a weighted mean when weights are given):

  accuracy            P(pred = y)
  error               P(pred != y) = 1 - accuracy
  tpr                 P(pred = 1 | y = 1), binary labels only
  fpr                 P(pred = 1 | y = 0), binary labels only
  balanced_accuracy   mean over the classes present in the group of P(pred = y | y = c)

One np.bincount over (row, group, cell) keys gives the counts of every group of
every row, so many models, conditions or bootstrap replicates cost one pass.
An undefined cell (no items; no positives for tpr; no negatives for fpr) is NaN;
`check_defined` turns NaN cells into an EmptySubgroupError that names the groups.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from ..errors import AuditConfigError, EmptySubgroupError

METRICS = ("accuracy", "error", "balanced_accuracy", "tpr", "fpr")

# Cells of the per-group binary confusion count, indexed by 2 * y + pred.
TN, FP, FN, TP = 0, 1, 2, 3

_UNDEFINED_BECAUSE = {
    "tpr": "no images with label 1",
    "fpr": "no images with label 0",
}


def _as_array(x: object) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return np.asarray(x.detach().cpu())
    return np.asarray(x)


def group_codes(keys: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Integer group code per item (0 .. n_groups - 1) and the sorted group names it indexes."""
    names, codes = np.unique(np.asarray(keys, dtype=str), return_inverse=True)
    return codes.astype(np.intp), [str(n) for n in names]


def index_codes(groups: Mapping[str, object], n_items: int) -> tuple[np.ndarray, list[str]]:
    """Group code per item from {group: item indices} (each item in exactly one group), and the names it indexes."""
    codes = np.full(n_items, -1, dtype=np.intp)
    for j, idx in enumerate(groups.values()):
        codes[_as_array(idx)] = j
    return codes, list(groups)


def _check_binary(x: np.ndarray, what: str, metric: str) -> None:
    if x.dtype != bool and not ((x == 0) | (x == 1)).all():
        raise AuditConfigError(
            f"{metric} needs binary {what} in {{0, 1}}, got values {np.unique(x)[:10].tolist()}; "
            "use metric='accuracy' or 'error' for more than two classes"
        )


def _check_codes(codes: np.ndarray, n_groups: int) -> None:
    # An out-of-range code would be counted in a neighbouring row's groups.
    if codes.size and (codes.min() < 0 or codes.max() >= n_groups):
        raise AuditConfigError(
            f"group codes must lie in [0, {n_groups}), got [{codes.min()}, {codes.max()}]; "
            "build them with group_codes() and pass n_groups=len(names)"
        )


def _item_shape(*arrays: np.ndarray | None) -> tuple[int, ...]:
    shapes = [a.shape for a in arrays if a is not None]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise AuditConfigError(
            f"pred, labels, codes and weights need one value per item along the last axis, got shapes {shapes}"
        ) from None


def group_counts(
    cells: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    n_cells: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """(Weighted) number of items per (group, cell), shape (..., n_groups, n_cells).

    `cells` holds each item's cell in [0, n_cells) and may have leading row axes;
    `codes` and `weights` broadcast against it.
    """
    shape = _item_shape(cells, codes, weights)
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    per_row = n_groups * n_cells
    key = np.broadcast_to(codes * n_cells + cells, shape).reshape(rows, shape[-1])
    if rows > 1:  # offset each row so all rows share one bincount
        key = key + (np.arange(rows) * per_row)[:, None]
    w = None if weights is None else np.broadcast_to(weights, shape).ravel()
    counts = np.bincount(key.ravel(), weights=w, minlength=rows * per_row)
    return counts.reshape(*shape[:-1], n_groups, n_cells)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # NaN where nothing was counted, without a divide-by-zero warning.
    return np.divide(num, den, out=np.full(np.shape(den), np.nan), where=den > 0)


def _from_confusion(c: np.ndarray, metric: str) -> np.ndarray:
    tpr = _ratio(c[..., TP], c[..., TP] + c[..., FN])
    fpr = _ratio(c[..., FP], c[..., TN] + c[..., FP])
    if metric == "tpr":
        return tpr
    if metric == "fpr":
        return fpr
    recalls = np.stack([tpr, 1.0 - fpr])  # recall of class 1 and of class 0
    present = ~np.isnan(recalls)
    return _ratio(np.where(present, recalls, 0.0).sum(axis=0), present.sum(axis=0))


def group_metric(
    pred: object,
    labels: object,
    codes: object,
    n_groups: int,
    metric: str = "accuracy",
    weights: object | None = None,
) -> np.ndarray:
    """One metric per subgroup, in [0, 1]; NaN where the group has nothing to measure.

    pred      predicted class per item, shape (n,) or (..., n): leading axes are
              models / conditions, all computed at once.
    labels    true class per item, shape (n,) (or broadcastable to pred).
    codes     group code per item from `group_codes`, shape (n,).
    weights   optional non-negative weight per item (e.g. bootstrap resample counts),
              shape (n,) or (..., n) for one replicate per row; metrics become weighted means.
    Returns shape (..., n_groups), groups in the order of `group_codes`' names.
    accuracy and error accept any classes; tpr, fpr and balanced_accuracy need {0, 1}.
    """
    if metric not in METRICS:
        raise AuditConfigError(f"metric must be one of {', '.join(map(repr, METRICS))}, got {metric!r}")
    pred, labels, codes = _as_array(pred), _as_array(labels), _as_array(codes).astype(np.intp, copy=False)
    w = None if weights is None else _as_array(weights).astype(np.float64, copy=False)
    _item_shape(pred, labels, codes, w)
    _check_codes(codes, n_groups)
    if w is not None and (w < 0).any():
        raise AuditConfigError("weights must be >= 0 (a count or share per item)")
    if metric in ("accuracy", "error"):
        c = group_counts((pred == labels).view(np.int8), codes, n_groups, 2, w)
        return _ratio(c[..., 1 if metric == "accuracy" else 0], c.sum(axis=-1))
    _check_binary(labels, "labels", metric)
    _check_binary(pred, "predictions", metric)
    cells = 2 * labels.astype(np.int8) + pred.astype(np.int8)
    return _from_confusion(group_counts(cells, codes, n_groups, 4, w), metric)


def check_defined(values: np.ndarray, names: Sequence[str], metric: str) -> np.ndarray:
    """Return `values` (shape (..., n_groups)) if no cell is NaN, else raise EmptySubgroupError."""
    bad = np.isnan(np.asarray(values, dtype=float)).reshape(-1, len(names)).any(axis=0)
    if not bad.any():
        return values
    groups = ", ".join(repr(names[i]) for i in np.flatnonzero(bad))
    reason = _UNDEFINED_BECAUSE.get(metric, "no images")
    raise EmptySubgroupError(
        f"{metric} is undefined for subgroup(s) {groups}: {reason} there (or zero total weight). "
        "Enlarge or rebalance the test set (stratified_split), or drop those subgroups."
    )


def between_group_difference(values: np.ndarray) -> float | np.ndarray:
    """max - min over groups (last axis), in metric units; NaN if any group is NaN.

    A float for shape (n_groups,), an array of shape (...,) for (..., n_groups).
    """
    diff = np.ptp(np.asarray(values, dtype=float), axis=-1)  # ptp propagates NaN: no silent skip
    return float(diff) if diff.ndim == 0 else diff


def to_reference_difference(values: np.ndarray, names: Sequence[str], reference: str) -> np.ndarray:
    """Each group's value minus the reference group's, in metric units, shape of `values`."""
    names = list(names)
    if reference not in names:
        raise AuditConfigError(f"reference group {reference!r} is not a subgroup; choose one of {names}")
    values = np.asarray(values, dtype=float)
    i = names.index(reference)
    return values - values[..., i:i + 1]
