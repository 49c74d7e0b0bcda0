"""What an audit tells its reader: the terminal summary, the JSON and HTML reports, and baselines.

`WRITERS` maps a report option (`--kernel-audit-<name>`) to the function that writes that file
from the session's audit records; adding a report is one module plus one entry here (and its option).
"""

from __future__ import annotations

from typing import Callable, Mapping

from ._html import write_html
from ._json import environment, write_json

Writer = Callable[[str, list, Mapping], object]  # (path, audit records, settings) -> the file written

WRITERS: dict[str, Writer] = {
    "json": write_json,
    "html": lambda path, records, settings: write_html(path, records, environment(), settings),
}
