"""Defensive file operations for the variant cache; sealed records and regular-file reads come from
`.._stored` (a leaf every part shares) and are re-exported here for the cache's modules.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .._stored import (  # noqa: F401  (the cache's names for them)
    NotRegularFile,
    current_umask,
    honour_umask,
    plain,
    read_memo,
    read_regular,
    seal,
    sha256_bytes,
    unseal,
    unseal_text,
    write_memo,
)


def make_temp_folder(prefix: str) -> Path:
    """tempfile.mkdtemp, with the mode the umask gives a new folder (see honour_umask)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    honour_umask(folder, folder=True)
    return folder


def sha256_file(path: Path) -> str:
    """SHA-256 of a regular file's bytes (`NotRegularFile` for a link, FIFO or device)."""
    return sha256_bytes(read_regular(path))


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
