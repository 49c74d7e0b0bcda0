"""Defensive file operations for the variant cache; sealed records and regular-file reads come from
`.._stored` (a leaf every part shares) and are re-exported here for the cache's modules.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .._stored import (  # noqa: F401  (the cache's names for them)
    NotRegularFile,
    plain,
    read_memo,
    read_regular,
    seal,
    sha256_bytes,
    unseal,
    unseal_text,
    write_memo,
)


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
