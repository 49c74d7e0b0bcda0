"""Progress lines that reach the terminal from wherever the audit runs: an xdist worker, or a data loader.

pytest-xdist workers have no terminal: what they print is lost, and the controller hears of a test only
when it ends, so an hour-long audit on a worker was an hour of silence. Each worker appends its progress
lines to a file of its own in a folder the controller made; a thread of the controller shows every
complete new line as it appears. The loaders log to the `pytest_kernelbias` logger (the standard channel
of a library, so a notebook can show it too), and `LineHandler` turns those records into the same lines.
Progress is best effort: a line that cannot be written or read is dropped, never an error in an audit.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

POLL_SECONDS = 0.5
LOGGER = "pytest_kernelbias"  # the package's logger: the loaders' decoding progress (data/_files.py)


class ProgressRelay:
    """The controller's side: a folder the workers write into, and a thread that shows their lines."""

    def __init__(self, write: Callable[[str], None]):
        self.folder = Path(tempfile.mkdtemp(prefix="kernel-audit-progress-"))
        self._write = write
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kernel-audit-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll()

    def poll(self) -> None:
        """Show the complete lines written since the last poll, file by file (one file per worker)."""
        for path in sorted(self.folder.glob("*.log")):
            offset = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except OSError:
                continue
            complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written waits for the next poll
            self._offsets[path] = offset + len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                self._write(line)

    def close(self) -> None:
        """Stop the thread, show what is left, and remove the folder."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()
        shutil.rmtree(self.folder, ignore_errors=True)


def worker_writer(folder: str, worker: str) -> Callable[[str], None]:
    """A worker's side: append each line to its own file in the controller's folder."""
    path = Path(folder) / f"{worker}.log"

    def write(line: str) -> None:
        try:
            with open(path, "a", encoding="utf-8") as fh:  # one write per line, so the reader sees whole lines
                fh.write(line.replace("\n", " ") + "\n")
        except OSError:
            pass  # a remote worker (xdist --tx ssh) does not share the folder: its lines are lost, as before

    return write


class LineHandler(logging.Handler):
    """Shows the package's log records (INFO and up) as progress lines."""

    def __init__(self, write: Callable[[str], None]):
        super().__init__(logging.INFO)
        self._line = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._line(record.getMessage())
        except Exception:  # a logging handler must not raise into the code that logged
            self.handleError(record)


def attach(write: Callable[[str], None]) -> Callable[[], None]:
    """Show the package logger's INFO records through `write`; returns the function that undoes it."""
    logger = logging.getLogger(LOGGER)
    handler, level = LineHandler(write), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)

    def detach() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    return detach
