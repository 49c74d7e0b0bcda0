"""What an audit tells its reader: the terminal summary, the JSON and HTML reports, and baselines.

`WRITERS` maps a report option (`--kernel-audit-<name>`) to the function that writes that file
from the session's audit records; adding a report is one module plus one entry here (and its option).
A writer also gets the run's status, ``{"complete": bool, "incomplete_reason": str | None}``, and
must show it (`_session.py` decides where an incomplete report goes).
"""

from __future__ import annotations

from typing import Callable, Mapping

from .._lazy import lazy_api
from ._json import environment, write_json
from ._markdown import write_markdown

# Each name this part offers and the module that defines it; loaded on first use (_lazy.py).
_HOMES = {
    **dict.fromkeys(["AuditSession"], "._audit_session"),
    **dict.fromkeys(["check_name"], "._baseline"),
    **dict.fromkeys(["junit_properties"], "._junit"),
    **dict.fromkeys(["GITHUB_SUMMARY"], "._markdown"),
    **dict.fromkeys(["error_record", "report_reason"], "._records"),
    **dict.fromkeys(["attach", "ProgressRelay", "worker_writer"], "._relay"),
}
__getattr__, __dir__ = lazy_api(__name__, _HOMES)
__all__ = sorted(_HOMES) + ["WRITERS", "Writer", "environment", "write_json", "write_markdown"]

Writer = Callable[[str, list, Mapping, Mapping], object]  # (path, audit records, settings, status) -> the file


def _html(path: str, records: list, settings: Mapping, status: Mapping) -> object:
    # Imported when an HTML report is written: its plots need numpy, and the plugin loads this package in every
    # pytest run, which must not pay for numpy, scipy or torch when no audit runs (docs/ci.md).
    from ._html import write_html

    return write_html(path, records, environment(), settings, status)


WRITERS: dict[str, Writer] = {"json": write_json, "html": _html, "md": write_markdown}
