"""Sealed JSON records and defensive file operations for the variant cache.

A sealed record carries the SHA-256 of its own canonical JSON, so any edit
to any field (not only the ones a reader happens to check) is seen on
reading. The seal detects damage and hand edits; it is not a signature, so
someone who recomputes it on purpose is not stopped (see
docs/cache-and-cluster.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

SEAL = "record_sha256"


def _canonical(record: Mapping[str, object]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def seal(record: Mapping[str, object]) -> str:
    """The JSON text of `record` plus its seal; values JSON cannot hold are stored as their str()."""
    plain = json.loads(json.dumps(dict(record), default=str))  # what a reader will get back, hashed as such
    plain.pop(SEAL, None)
    return json.dumps({**plain, SEAL: hashlib.sha256(_canonical(plain)).hexdigest()}, indent=2, sort_keys=True)


def unseal(path: Path) -> dict:
    """The record stored at `path`, its seal checked; ValueError (or OSError) on any damage."""
    if path.is_symlink():
        raise ValueError(f"{path.name} is a symbolic link, not a file the cache wrote")
    record = json.loads(path.read_text())
    if not isinstance(record, dict):
        raise ValueError(f"{path.name} holds a JSON {type(record).__name__}, not an object")
    stored = record.pop(SEAL, None)
    if not isinstance(stored, str) or hashlib.sha256(_canonical(record)).hexdigest() != stored:
        raise ValueError(f"{path.name} does not match its checksum (edited or damaged)")
    return record


def current_umask() -> int:
    """The process umask, read from /proc where the system has it (Linux).

    os.umask can only read the mask by setting it, and a file another thread creates in between
    would get the wrong mode; the fallback sets the common 022 for that instant, never 0.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike, folder: bool = False) -> None:
    """Give `path` the mode a plain open() or mkdir() would have: 0o666 (0o777 for a folder) less the umask.

    tempfile.mkstemp/mkdtemp and safetensors create 0600/0700 files and folders, private to the user
    whatever the umask says, so a report or cache shared through the umask would be unreadable to the
    others it was shared with.
    """
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def make_temp_folder(prefix: str) -> Path:
    """tempfile.mkdtemp, with the mode the umask gives a new folder (see honour_umask)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    honour_umask(folder, folder=True)
    return folder


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def remove(path: Path) -> bool:
    """Remove a file, a symbolic link (never what it points to) or a folder; whether it is gone."""
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    except OSError:
        return False  # a read-only cache: the damaged entry stays, and is retrained elsewhere
    return not path.exists() and not path.is_symlink()


def ensure_folder(path: Path) -> bool:
    """`path` as a real folder; a file or link in its place is removed first. Whether it was replaced."""
    if path.is_dir() and not path.is_symlink():
        return False
    replaced = path.exists() or path.is_symlink()
    if replaced:
        remove(path)
    path.mkdir(parents=True, exist_ok=True)
    return replaced


def read_memo(path: Path | None) -> dict | None:
    """A measured decision kept in the cache folder (JSON), or None: none kept, or damaged (measured again)."""
    try:
        return json.loads(path.read_text()) if path is not None and path.exists() else None
    except (OSError, ValueError):
        return None


def write_memo(path: Path | None, record: Mapping[str, object]) -> None:
    """Keep a measured decision whole or not at all (another pytest-xdist worker may read it meanwhile);
    a cache folder that cannot be written only means it is measured again next time."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    except OSError:
        pass
