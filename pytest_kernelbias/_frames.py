"""An audit's failure report in pytest: the user's frames and the message, not this package's internals."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import pytest

from .errors import AuditFailure, KernelBiasError

_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


def hide_package_frames(item: pytest.Item, excinfo: pytest.ExceptionInfo, report: pytest.TestReport) -> None:
    """An audit failure, or an error the package raised on purpose, shows the user's frames and the message.

    The message (the audit's table, or what to change) is the whole story; this package's frames in
    between would only add its internals and, in long style, the reprs of their arguments (datasets
    with their tensors). --fulltrace keeps every frame, and a bug (any other exception) is left as is.
    """
    if item.config.getoption("fulltrace", False) or not excinfo.errisinstance((AuditFailure, KernelBiasError)):
        return
    # A new chain of the raw traceback: pytest re-reads the raw chain when it cuts to the test function,
    # so filtering only pytest's Traceback view would not last.
    kept, tb = [], excinfo.tb
    while tb is not None:
        if not os.path.realpath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE):
            kept.append(tb)
        tb = tb.tb_next
    pruned = None
    for entry in reversed(kept):
        pruned = TracebackType(pruned, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    if pruned is not None and len(kept) < len(excinfo.traceback):
        report.longrepr = item.repr_failure(pytest.ExceptionInfo.from_exc_info((excinfo.type, excinfo.value, pruned)))
