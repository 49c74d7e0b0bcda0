"""The serial executor: each variant trains in this process when evaluation first needs it.

Training nothing ahead keeps one model in memory at a time; the store's
per-key lock still lets parallel pytest-xdist workers share one cache.
"""

from __future__ import annotations

from typing import ClassVar

from ._base import TrainReport


class SerialExecutor:
    name: ClassVar[str] = "serial"
    parallel = 1

    @classmethod
    def from_spec(cls, execution, recipe) -> "SerialExecutor":
        return cls()

    def start(self, job) -> None:
        return None  # trains in this process

    def after_run(self, variants, store, execution) -> None:
        return None  # trained in this process or its workers, on this machine

    def store_for(self, store):
        return store

    def train_ahead(self, variants, job, store, retrain, progress, evaluation=None) -> TrainReport:
        return TrainReport()
