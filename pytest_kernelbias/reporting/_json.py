"""The versioned JSON report and the environment every report records."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path
from typing import Mapping

from ._files import strict_json, write_atomic

SCHEMA_VERSION = 1


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _installed(name: str) -> str | None:
    # The installed distribution's version: importing timm only to read it costs seconds (it loads torch._dynamo).
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    import torch

    from .._version import __version__

    return {
        "package": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "timm": _installed("timm"), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(), "git_commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


COMPLETE = {"complete": True, "incomplete_reason": None}


def write_json(path: str | os.PathLike, audits: list[Mapping], settings: Mapping,
               status: Mapping = COMPLETE) -> Path:
    """Write the versioned JSON report atomically; create the folder if needed.

    `status` says whether the run was whole; a reader must check "complete" before trusting "audits" as
    every audit of the suite.
    """
    target = Path(path)
    doc = {"schema_version": SCHEMA_VERSION, "complete": bool(status["complete"]),
           "incomplete_reason": status.get("incomplete_reason"), "environment": environment(),
           "settings": dict(settings), "audits": list(audits)}
    return write_atomic(target, strict_json(doc), "kernel-audit JSON report")
