"""The terminal summary table and the JSON report."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

SCHEMA_VERSION = 1
COLUMNS = ("test", "contrast", "perturbation", "effect", "95% CI", "p", "p adj", "threshold", "verdict")


def summary_lines(audits: Iterable[Mapping]) -> list[str]:
    """One row per (audit, treated level): the terminal summary's body."""
    rows, notes = [], []
    for audit in audits:
        for e in audit["effects"]:
            verdict = e["verdict"]
            if audit.get("test_outcome") in ("xfailed", "xpassed"):
                verdict += f" ({audit['test_outcome']})"
            p_adj = "" if e.get("p_adjusted") is None else f"{e['p_adjusted']:.3g}"
            rows.append((
                audit["test"], e["contrast"], e["perturbation"], f"{e['effect']:+.4f}",
                f"[{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]", f"{e['p_value']:.3g}", p_adj,
                f"{e['threshold']:g} ({e['rule']})", verdict,
            ))
            if e.get("note"):
                notes.append(f"warn: {audit['test']} {e['contrast']}: passed; {e['note']}")
    if not rows:
        return []
    widths = [max(len(str(r[i])) for r in rows + [COLUMNS]) for i in range(len(COLUMNS))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*COLUMNS), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows]
    return [line.rstrip() for line in lines] + notes


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def environment() -> dict:
    import timm
    import torch

    from .. import __version__

    return {
        "package": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "timm": timm.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(), "git_commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_json(path: str | os.PathLike, audits: list[Mapping], settings: Mapping) -> Path:
    """Write the versioned JSON report atomically; create the folder if needed."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the folder for the kernel-audit JSON report {target}: {exc}") from exc
    doc = {"schema_version": SCHEMA_VERSION, "environment": environment(), "settings": dict(settings),
           "audits": list(audits)}
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
    os.replace(tmp, target)
    return target
