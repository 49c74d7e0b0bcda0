"""The time left in a pool's work, from the models that finished and the ones still running.

"Elapsed per finished model x models left" counts every worker as idle: when
the first of two workers reports, the other has been training just as long,
and the longest models start first, so that estimate came out three times the
time actually left (147 s printed, 48 s left, in an audit of six SynthFacesCNN
models on two workers). This one gives each model left the mean time of the
finished ones, less what a running one has already trained, and plays the
rest out on the workers as the pool hands it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PoolEta:
    """Feed `finished` with each model a worker reports; it returns the seconds left."""

    workers: int
    total: int
    start: float  # when the work was handed out
    _seconds: list[float] = field(default_factory=list)
    _last_report: dict[int, float] = field(default_factory=dict)  # worker -> when it last finished a model

    def finished(self, worker: int, seconds: float, now: float) -> float:
        """A model that `worker` trained in `seconds` finished at `now`; the seconds left after it."""
        self._seconds.append(seconds)
        self._last_report[worker] = now
        left = self.total - len(self._seconds)
        if left <= 0:
            return 0.0
        mean = sum(self._seconds) / len(self._seconds)
        running = min(self.workers, left)
        # A worker picks its next model as it reports, so its current one started at its last report;
        # one that has not reported yet started with the pool. Those that waited longest are the ones
        # still busy (the others found nothing left to take).
        starts = sorted([*self._last_report.values(), *[self.start] * (self.workers - len(self._last_report))])
        free = [max(0.0, mean - (now - s)) for s in starts[:running]] + [0.0] * (self.workers - running)
        for _ in range(left - running):  # the queued models, each to the worker that frees first
            i = free.index(min(free))
            free[i] += mean
        return max(free)
