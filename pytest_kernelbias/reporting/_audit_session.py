"""`AuditSession`: the session's audits, which the plugin's hooks hand every event to.

It holds the records as they arrive (from this process, or from xdist workers through their test
reports), which tests started and finished, the baseline the audits compare with (loaded once), and
the outcome of each marked test. From those it decides a regression (`gate`), the terminal summary
(`summary`) and the files (`finish`). It knows nothing of pytest: the plugin turns pytest's hooks
into these calls, and a failure message `gate` returns into `pytest.fail`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from ._baseline import baseline_tests, compare, in_baseline, load_baseline, regression_message, unmatched
from ._records import not_run_record, ran
from ._session import Notes, SessionProgress, write_outputs
from ._text import session_tail, summary_lines, wrap_id


class AuditSession:
    """Every audit of one pytest session (the controller's, under xdist)."""

    def __init__(self, root: Path, compare: str | None = None, save: str | None = None, merge: bool = False):
        self.root, self.compare_with, self.save, self.merge = Path(root), compare, save, merge
        self.audits: dict[tuple[str, str], dict] = {}
        self.outcomes: dict[str, str] = {}  # marked test id -> pytest outcome
        self.reasons: dict[str, str] = {}  # marked test id -> why it skipped or failed, in one line
        self.progress = SessionProgress()
        self.notes = Notes()  # what happened to the reports and the baseline, for the terminal
        self._baseline: object = None
        self._loaded = False

    def add(self, value: str) -> None:
        """One audit's record, as JSON (how it crosses from an xdist worker)."""
        record = json.loads(value)
        self.audits[(record["test"], record["name"])] = record

    def outcome(self, test: str, outcome: str, reason: str, final: bool) -> None:
        """A marked test's outcome; `final` (its call phase) replaces an earlier phase's."""
        if test not in self.outcomes or final:
            self.outcomes[test], self.reasons[test] = outcome, reason

    def records(self) -> list[dict]:
        """Every audit test's records, by test id: audits as they ran, and marked tests whose audit did not."""
        found = [{**r, "test_outcome": self.outcomes.get(r["test"], "unknown")} for r in self.audits.values()]
        tested = {r["test"] for r in found}
        found += [not_run_record(test, outcome, self.reasons.get(test, ""))
                  for test, outcome in self.outcomes.items() if test not in tested]
        if not any(ran(r) for r in found):
            return []  # no audit ran (e.g. --kernel-audit off): nothing to report
        return sorted(found, key=lambda r: (r["test"], r["name"]))  # one order, serial or under xdist

    def baseline(self):
        """The baseline to compare with (loaded once), or None when not comparing or unusable."""
        if self.compare_with is None:
            return None
        if not self._loaded:
            self._baseline, self._loaded = load_baseline(self.root, self.compare_with or None), True
        return self._baseline

    def gate(self, record: Mapping, compare_fail: float | None) -> tuple[dict | None, str]:
        """One audit against the baseline: what the report records of it, and a failure message ("" to pass). A
        test the baseline has not seen is new (reported, not failed); a known one whose effects all changed
        fails under compare-fail, since nothing of it was compared (docs/ci.md)."""
        baseline = self.baseline()
        if baseline is None:
            return None, ""
        rows, missing, new = compare(record, baseline), unmatched(record, baseline), not in_baseline(record, baseline)
        entry = {"path": baseline["path"], "rows": rows, "compare_fail": compare_fail, "unmatched": missing,
                 "new": new}
        if compare_fail is not None and not rows and not new:
            return entry, (f"--kernel-audit-compare-fail {compare_fail:g}: nothing of this audit matches baseline "
                           f"{baseline['path']}, so nothing was compared: {' '.join(missing)}; after review, "
                           "--kernel-audit-save NAME --kernel-audit-save-merge records it")
        return entry, regression_message(rows, compare_fail, baseline["path"]) or ""

    def summary(self) -> list[str]:
        """The terminal summary's lines (none when no audit ran), long ids wrapped at their separators."""
        records = self.records()
        lines = summary_lines(records)
        if not lines:
            return []
        baseline = self.baseline()
        tail = session_tail(records, baseline_tests(baseline) if baseline else None)
        return lines + [part for line in tail for part in wrap_id(line)]

    def finish(self, settings: Mapping, interrupted: bool, stopped: str, collected: int) -> Notes:
        """Write the reports and the baseline as far as the run can be trusted (_session.py); what to tell."""
        reason = self.progress.incomplete_reason(interrupted, stopped, collected)
        self.notes = write_outputs(self.records(), settings, reason, self.save, self.root, merge=self.merge)
        return self.notes
