"""`RunLedger`: what an audit has trained so far, filled as it runs, for the report of one that raised.

An audit that stops on an error (a model that did not learn, a worker that died, Ctrl-C) still
trained models and filled the cache; the report says how many. The caller passes a ledger
(`run_audit(..., ledger=RunLedger())`, as the plugin does for every audit test) and reads it after
the error: a typed record, not an attribute set on the exception.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class RunLedger:
    models: int = 0  # planned at the look that stopped
    trained: int = 0  # over every look, a seed an earlier look trained included
    from_cache: int = 0
    cache: str | None = None  # the cache folder, when it outlives the audit

    def stopped_at(self, models: int, trained: int, from_cache: int, cache: str | None) -> None:
        """The look that raised: its plan and what it trained before stopping."""
        self.models, self.trained, self.from_cache, self.cache = models, trained, from_cache, cache

    def add_earlier(self, trained: int) -> None:
        """Seeds that earlier looks of this audit trained: trained by it, not cache hits of the failing look."""
        self.trained += trained
        self.from_cache = max(0, self.from_cache - trained)

    def as_dict(self) -> dict:
        return asdict(self)
