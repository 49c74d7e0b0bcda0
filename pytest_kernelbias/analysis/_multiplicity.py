"""Family-wise (Holm) and false-discovery (Benjamini-Hochberg) adjustment of p-values."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

from ..errors import AuditConfigError

CORRECTIONS = ("holm", "bh", "none")


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (controls the family-wise error rate).

    scipy has no Holm adjustment (statsmodels' `multipletests`, a test-only
    dependency here, is the reference the tests check this against).
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (controls the false discovery rate); scipy's own."""
    p = np.asarray(pvalues, dtype=float)
    return stats.false_discovery_control(p, method="bh") if len(p) else p


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
