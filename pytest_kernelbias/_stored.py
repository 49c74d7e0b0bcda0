"""Reading and writing the files the package keeps: only regular files are read, and every record is sealed.

A leaf module (standard library only), so the cache, the memos of any part and the image decoder share
one rule: a file is opened without following a symbolic link and without blocking, and checked to be a
regular file before its first byte is read, so a FIFO, a device or a link put in a cache folder is a
damaged entry (re-measured), never a hang. A sealed record carries the SHA-256 of its own canonical
JSON, so an edit to any field is seen on reading. The seal detects damage and hand edits; it is not a
signature (docs/cache-and-cluster.md).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Mapping

SEAL = "record_sha256"
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


class NotRegularFile(ValueError):
    """A path that should hold a file the package wrote holds something else (a link, a FIFO, a device)."""


def read_regular(path: str | os.PathLike, follow_links: bool = False, max_bytes: int | None = None) -> bytes:
    """The bytes of `path`, which must be a regular file; `NotRegularFile` for anything else, and ValueError
    for one larger than `max_bytes` (judged on the open file, and never read past it).

    O_NOFOLLOW refuses a symbolic link (unless `follow_links`, for a user's data files, which a link may
    rightly name), and O_NONBLOCK makes opening a FIFO return at once (with no writer it would wait
    forever); fstat on the open descriptor then decides, so the check and the read see the same file.
    """
    nofollow = 0 if follow_links else getattr(os, "O_NOFOLLOW", 0)
    flags = os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(f"{Path(path).name} is a symbolic link, not a file the package wrote") from None
        if exc.errno == errno.ENXIO:  # a socket cannot be opened at all
            raise _not_regular(path, os.lstat(path).st_mode) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        if max_bytes is not None and info.st_size > max_bytes:
            raise ValueError(f"it is {info.st_size} bytes, more than the {max_bytes} allowed")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as fh:
            fd = -1  # the file object owns it now
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:  # it grew after the check
            raise ValueError(f"it grew past the {max_bytes} bytes allowed while it was read")
        return data
    finally:
        if fd >= 0:
            os.close(fd)


def _not_regular(path: str | os.PathLike, mode: int) -> NotRegularFile:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return NotRegularFile(f"{Path(path).name} is {kind}, not a file the package wrote")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(record: Mapping[str, object]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def plain(value: object) -> object:
    """`value` as a reader of its sealed JSON gets it back (values JSON cannot hold become their str())."""
    return json.loads(json.dumps(value, default=str))


def seal(record: Mapping[str, object]) -> str:
    """The JSON text of `record` plus its seal; values JSON cannot hold are stored as their str()."""
    content = plain(dict(record))
    content.pop(SEAL, None)
    return json.dumps({**content, SEAL: hashlib.sha256(_canonical(content)).hexdigest()}, indent=2, sort_keys=True)


def unseal_text(text: str | bytes, name: str) -> dict:
    """The record in `text`, its seal checked; ValueError on any damage."""
    try:
        record = json.loads(text)
    except RecursionError:  # "[[[[..." from damage or on purpose: a damaged record, not a crash
        raise ValueError(f"{name} is nested too deeply to be a record the package wrote") from None
    if not isinstance(record, dict):
        raise ValueError(f"{name} holds a JSON {type(record).__name__}, not an object")
    stored = record.pop(SEAL, None)
    if not isinstance(stored, str) or hashlib.sha256(_canonical(record)).hexdigest() != stored:
        raise ValueError(f"{name} does not match its checksum (edited or damaged)")
    return record


def unseal(path: Path) -> dict:
    """The record stored at `path` (a regular file), its seal checked; ValueError (or OSError) on any damage."""
    return unseal_text(read_regular(path), Path(path).name)


def read_memo(path: Path | None) -> dict | None:
    """A measured decision kept in a cache folder (sealed JSON), or None: none kept, or damaged, edited or
    not a regular file (measured again; a memo only ever saves time)."""
    if path is None or path.parent.is_symlink():  # a memo folder linked out of the cache is not the cache's
        return None
    try:
        return unseal(path)
    except (OSError, ValueError):
        return None


def write_memo(path: Path | None, record: Mapping[str, object]) -> None:
    """Keep a measured decision, sealed, whole or not at all (another pytest-xdist worker may read it
    meanwhile); a folder that cannot be written only means it is measured again next time."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(seal(record))
        os.replace(tmp, path)
    except OSError:
        pass


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
