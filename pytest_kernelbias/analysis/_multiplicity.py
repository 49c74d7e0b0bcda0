"""Family-wise (Holm) and false-discovery (Benjamini-Hochberg) adjustment of p-values."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import AuditConfigError

CORRECTIONS = ("holm", "bh", "none")


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (controls the family-wise error rate)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (controls the false discovery rate)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p)[::-1]
    ranks = m - np.arange(m)
    stepped = np.minimum.accumulate(p[order] * m / ranks)
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def adjust(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    if method not in CORRECTIONS:
        raise AuditConfigError(f"correction must be one of {CORRECTIONS}, got {method!r}")
    if len(pvalues) == 0:
        return np.asarray([], dtype=float)
    if method == "holm":
        return holm(pvalues)
    if method == "bh":
        return benjamini_hochberg(pvalues)
    return np.asarray(pvalues, dtype=float)
