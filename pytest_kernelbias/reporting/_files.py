"""Report files are written whole or not at all: a temporary file in the same folder, then one rename."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from .._stored import honour_umask


def write_atomic(target: Path, text: str, what: str) -> Path:
    """Write `text` to `target` atomically, creating its folder; `what` names the file in errors.

    The file gets the mode a plain write would give it (0o666 less the umask), not mkstemp's private 0600.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the folder for the {what} {target}: {exc}") from exc
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # the HTML report is UTF-8 whatever the locale
            fh.write(text)
        honour_umask(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)  # a failed write (disk full) leaves nothing behind
    return target


def finite(value: object) -> object:
    """`value` with every non-finite float (an interval too wide to bound, an undefined p) as None, so the
    JSON written is strict: `Infinity` and `NaN` are not JSON, and many readers refuse them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def strict_json(doc: object) -> str:
    """Strict JSON of a report document (non-finite numbers as null; `allow_nan=False` proves it)."""
    return json.dumps(finite(doc), indent=2, sort_keys=True, allow_nan=False)
