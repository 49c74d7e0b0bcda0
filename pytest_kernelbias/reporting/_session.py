"""What a session leaves on disk: the reports and a baseline, each written only as far as the run can be trusted.

A baseline is what later runs are judged against, so it is saved only from a whole run: one that
recorded at least one audit result and was neither interrupted nor stopped early, and whose every
started test finished. A report of an interrupted run still tells what finished, so it is written,
marked incomplete, beside the requested path (``report.json`` -> ``report.incomplete.json``): a
report a whole run wrote is never replaced by a partial one. A run that recorded no audit result
(audits skipped, or none finished) writes nothing. Each of these decisions is returned as a line
for the terminal and issued as a `ReportWarning`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..errors import ReportWarning
from . import WRITERS
from ._baseline import write_baseline
from ._markdown import appends


@dataclass
class SessionProgress:
    """Which tests started and finished, from the report stream (which also crosses pytest-xdist)."""

    started: dict = field(default_factory=dict)  # node id -> None: a set that keeps the running order
    finished: set = field(default_factory=set)
    interrupted_by: str = ""

    def start(self, nodeid: str) -> None:
        self.started[nodeid] = None

    def finish(self, nodeid: str) -> None:
        self.finished.add(nodeid)

    def interrupt(self, reason: str) -> None:
        self.interrupted_by = self.interrupted_by or reason or "KeyboardInterrupt"

    def incomplete_reason(self, interrupted: bool, stopped: str = "", collected: int = 0) -> str:
        """Why this run's results are partial ("" when the run is whole).

        `stopped` is pytest's reason for stopping early (-x, --maxfail); it only matters when fewer
        tests started than the `collected` ones (0: not known here, as on an xdist controller).
        """
        reasons = []
        if interrupted or self.interrupted_by:
            reasons.append(f"the session was interrupted ({self.interrupted_by or 'KeyboardInterrupt'})")
        elif stopped and not 0 < collected <= len(self.started):
            reasons.append(f"the session stopped early ({stopped}), so later tests did not run")
        unfinished = [n for n in self.started if n not in self.finished]
        if unfinished:
            more = f" and {len(unfinished) - 3} more" if len(unfinished) > 3 else ""
            reasons.append(f"{len(unfinished)} test(s) did not finish: {', '.join(unfinished[:3])}{more}")
        return "; ".join(reasons)


def incomplete_path(path: str | Path) -> Path:
    """Where a report marked incomplete goes: beside the requested one, e.g. report.incomplete.json."""
    target = Path(path)
    return target.with_name(f"{target.stem}.incomplete{target.suffix}")


class Notes(list):
    """The lines to show; `as_errors` is true when a warnings filter (-W error) turned them into errors; `done`
    says what was written where (not a warning)."""

    as_errors = False

    def __init__(self, lines=(), done=()):
        super().__init__(lines)
        self.done = list(done)


def write_outputs(records: list[Mapping], settings: Mapping, reason: str, save: str | None, root: Path,
                  merge: bool = False) -> Notes:
    """Write the requested reports and baseline as the module docstring says; return what to tell the user."""
    requested = {option: settings[option] for option in WRITERS if settings.get(option)}
    notes = []
    if not records:
        why = f"({reason})" if reason else "(were the audits skipped? they run only with --kernel-audit)"
        targets = [f"the {option.upper()} report {path}" for option, path in requested.items()]
        targets += [f"baseline {save!r}"] if save else []
        if targets:
            notes.append(f"not written: {', '.join(targets)}: no audit result was recorded {why}; "
                         "files already there are left as they were")
        return _warn(notes)
    status = {"complete": not reason, "incomplete_reason": reason or None}
    for option, path in requested.items():
        # A shared CI job summary is appended to where CI reads it; its text carries the incomplete banner.
        target = incomplete_path(path) if reason and not appends(path) else Path(path)
        try:
            WRITERS[option](target, records, settings, status)
        except OSError as exc:
            notes.append(f"the {option.upper()} report was not written: {exc}")
            continue
        if reason and target != Path(path):
            notes.append(f"the {option.upper()} report is marked incomplete and written to {target}; {path} is "
                         f"left as it was. Incomplete because {reason}")
    if save and reason:
        notes.append(f"baseline {save!r} not saved (a saved one of that name is left as it was), because {reason}")
    done = []
    if save and not reason:
        try:
            done.append(write_baseline(root, save, records, merge=merge)[1])
        except OSError as exc:
            notes.append(f"baseline {save!r} not saved: {exc}")
    out = _warn(notes)
    out.done = done
    return out


def _warn(lines: list[str]) -> Notes:
    notes = Notes(lines)
    for note in notes:
        try:
            # stacklevel 1: the warning names this module, not pytest's hook machinery that called it.
            warnings.warn(ReportWarning(note), stacklevel=1)
        except ReportWarning:
            # Raised at session end it would be an INTERNALERROR traceback; the caller fails the run instead.
            notes.as_errors = True
    return notes
