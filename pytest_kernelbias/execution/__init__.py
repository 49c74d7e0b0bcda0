"""Turning a plan into trained weights: the `Executor` registry (serial, seed-batched, pool, Ray) and stores."""

from ._ledger import RunLedger
from ._store import MemoryStore, VariantCache

__all__ = ["MemoryStore", "RunLedger", "VariantCache"]
