"""Progress lines under pytest: where they go (the terminal past capture, or the xdist controller's relay) and
which ones a verbosity shows."""

from __future__ import annotations

import threading
from typing import Callable

import pytest

from .reporting import worker_writer

RELAY_KEY = "kernel_audit_relay"  # in an xdist worker's workerinput: the folder its progress lines go to
_AUDIT_TIMES = pytest.StashKey[list]()


def progress_for(config: pytest.Config, position: str):
    """The audit's progress lines: past pytest's capture, or through the controller under xdist (lines)."""
    verbosity, write = config.getoption("verbose"), lines(config)
    worker = getattr(config, "workerinput", {}).get("workerid")
    prefix = f"[kernel-audit{' ' + worker if worker else ''}{position}]"

    def progress(msg: str) -> None:
        # Setup decisions and per-model lines always; per-epoch lines only with -v, training is the long part.
        shown = verbosity > 0 or "+evaluated" in msg or msg.startswith(("setup:", "session:", "Ray:", "data:"))
        if shown and verbosity >= 0:
            write(f"{prefix} {msg}")
    return progress


def lines(config: pytest.Config) -> Callable[[str], None]:
    """Where this process's progress lines go: the terminal, past pytest's capture; in an xdist worker, the file the
    controller's relay shows (reporting/_relay.py), or nowhere when the controller made none."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        folder = workerinput.get(RELAY_KEY)
        return worker_writer(folder, workerinput["workerid"]) if folder else (lambda line: None)

    def write(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capman is None or threading.current_thread() is not threading.main_thread():
            # The relay's thread: the controller captures nothing while workers run. xdist's outcome letters
            # leave the line open without telling write_line, which would append to it.
            if getattr(getattr(reporter, "_tw", None), "width_of_current_line", 0):
                reporter.write("\n")
            reporter.write_line(line)
            return
        with capman.global_and_fixture_disabled():  # otherwise captured and shown only on failure
            reporter.write_line(line)
    return write


def session_line(config: pytest.Config, left: int, position: str, seconds: float, progress) -> None:
    """After an audit: its time, and the session's time left (`left` audit tests after it) at this process's mean
    audit time so far."""
    times = config.stash.setdefault(_AUDIT_TIMES, [])
    times.append(seconds)
    if hasattr(config, "workerinput") or not left:  # under xdist, other workers run the rest
        progress(f"session: audit{position} done in {seconds:.0f}s")
        return
    progress(f"session: audit{position} done in {seconds:.0f}s; about {left * sum(times) / len(times):.0f}s left for "
             f"the {left} audit test(s) after it, at the mean audit time so far")
