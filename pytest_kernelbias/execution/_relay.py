"""Warnings raised in another process (a pool worker, a Ray task), relayed to the audit's process.

A worker's own warnings would reach only its stderr (Ray's is not even shown),
out of sight of pytest's warning summary and of the caller's filters: a
custom trainer's warning or a damaged cache entry found in a worker must warn
as it does in a serial run.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
Relayed = tuple[type, str, str, int]  # category, message, filename, line

_REISSUED: dict = {}  # warn_explicit's registry: under the "default" action each warning shows once


def recording(fn: Callable[[], T]) -> tuple[T, list[Relayed]]:
    """fn()'s result and every warning it raised, in a form that can cross to another process."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the audit's process applies its own filters when it re-issues them
        result = fn()
    # The category travels by reference (a class importable in both processes); the message as text,
    # since a warning object may hold things that do not pickle.
    return result, [(w.category, str(w.message), w.filename, w.lineno) for w in caught]


def reissue(caught: Sequence[Relayed]) -> None:
    """Raise another process's warnings again in this one, at that process's code location."""
    for category, message, filename, lineno in caught:
        warnings.warn_explicit(message, category, filename, lineno, registry=_REISSUED)
