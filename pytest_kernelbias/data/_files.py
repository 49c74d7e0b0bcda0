"""Reading a dataset's files: label files, root containment, full image decodes and the skipped-file report.

The paths a loader reads come from files someone else wrote (a manifest, a label file, a folder of
downloads), so each one must stay inside the dataset's root, and each image is decoded to its last byte
before it is used: a damaged file is skipped with its reason, never half-read.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
import os
import struct
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from .._stored import read_regular
from ..errors import CorruptImageError, DatasetFormatError, MissingLabelFileError
from ._images import DEFAULT_CACHE, DecodeCache
from ._splits import DatasetWarning

LOG = logging.getLogger("pytest_kernelbias.data")  # under pytest the plugin shows these as progress lines
PROGRESS_SECONDS = 2.0  # between decoding progress lines; a load shorter than this says nothing
EXAMPLES = 5  # skipped files quoted in a warning; a strict error quotes every one
OUTSIDE_FIX = ("fix the path, move the file under the root, or pass allow_outside_root=True "
               "if you trust this file list")


@dataclasses.dataclass(frozen=True)
class FileOptions:
    """How a file loader reads its images; the loaders' keywords of the same names."""

    size: int = 64
    strict: bool = False
    cache: DecodeCache | None = None
    allow_outside_root: bool = False


def read_csv(path: Path, required: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """Rows of a CSV file as (``"file line N"``, row); errors name the file and the expected header."""
    header = ",".join(required)
    if not path.is_file():
        raise MissingLabelFileError(f"label file {str(path)!r} not found; expected a CSV with header {header!r}")
    reader = csv.DictReader(io.StringIO(read_text_file(path), newline=""))  # Excel-written files start with a BOM
    found = reader.fieldnames or []
    missing = [c for c in required if c not in found]
    if missing:
        raise DatasetFormatError(
            f"{path}: missing column(s) {missing}; expected header {header!r}, found {','.join(found)!r}")
    return [(f"{path.name} line {reader.line_num}", {k: (v or "").strip() for k, v in row.items() if k})
            for row in reader]


def read_celeba_attrs(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """(attribute names, filename -> 40 values '1'/'-1') from ``list_attr_celeba.txt`` (runs of spaces)."""
    if not path.is_file():
        raise MissingLabelFileError(f"{str(path)!r} not found; expected a count line, 40 attribute names, then rows")
    lines = read_text_file(path).splitlines()
    names = lines[1].split() if len(lines) > 1 else []
    rows = {}
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()  # split() with no argument: the file pads columns with runs of spaces
        if not parts:
            continue
        if len(parts) != len(names) + 1 or not set(parts[1:]) <= {"1", "-1"}:
            raise DatasetFormatError(f"{path.name} line {lineno}: expected a filename and {len(names)} values of 1/-1")
        rows[parts[0]] = parts[1:]
    if not lines or not lines[0].strip().isdigit() or int(lines[0]) != len(rows):
        raise DatasetFormatError(f"{path.name}: line 1 must be the row count; found {lines[:1]} for {len(rows)} rows")
    return names, rows


def split_outside(records: Sequence[tuple], root: Path, allow: bool) -> tuple[list[tuple], list[dict]]:
    """(records whose path stays under `root`, skipped entries for the rest) after resolving ``..`` and symlinks.

    `records` are ``(path, row, where)``. Nothing is read from a refused path, not even its size.
    """
    if allow:
        return list(records), []
    base = root.resolve()
    inside, refused = [], []
    for record in records:
        path, where = Path(record[0]), str(record[2])
        at = "" if where == str(path) else f"{where}: "
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop: RuntimeError up to 3.12, OSError from 3.13
            refused.append({"path": str(path), "reason": f"{at}cannot be resolved inside the root {base} ({exc})"})
            continue
        if resolved.is_relative_to(base):
            inside.append(record)
        else:
            refused.append({"path": str(path), "reason": f"{at}resolves to {resolved}, outside the root {base}"})
    return inside, refused


def refuse_duplicates(records: Sequence[tuple], name: str) -> None:
    """Raise when one image file is listed twice: with other labels it is both classes at once, and even with
    the same row it counts twice in its subgroup's metric."""
    first: dict[str, tuple] = {}
    clashes = []
    for path, row, where in records:
        key = os.path.normpath(str(path))
        if key in first:
            same = "the same row" if first[key][0] == row else f"{first[key][0]} and {row}"
            clashes.append(f"{path} at {first[key][1]} and {where} ({same})")
        else:
            first[key] = (row, where)
    if clashes:
        raise DatasetFormatError(f"{name}: {len(clashes)} image(s) listed more than once: {'; '.join(clashes[:5])}"
                                 f"{' ...' if len(clashes) > 5 else ''}. List each image once, with its one label.")


def read_text_file(path: Path) -> str:
    """A label file's text as UTF-8 (a BOM allowed); another encoding is an error naming the file and the fix."""
    data = read_regular(path, follow_links=True)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(
            f"{path}: not UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start}); save it as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}`, and point the loader there") from None


def refuse_outside(refused: Sequence[dict], root: Path, name: str) -> None:
    """Raise for paths that leave the root: a manifest that points elsewhere is an error, never a silent skip."""
    listing = "; ".join(f"{s['path']} ({s['reason']})" for s in refused)
    raise DatasetFormatError(f"{name}: {len(refused)} image path(s) leave the dataset root {root.resolve()} once "
                             f"'..' and symlinks are resolved: {listing}. To fix: {OUTSIDE_FIX}.")


@contextlib.contextmanager
def _full_decodes() -> Iterator[tuple[type[BaseException], ...]]:
    """Pillow's errors for a damaged file, with truncated files made errors again while the block runs.

    Other code (a user's script, another library) may have set ``ImageFile.LOAD_TRUNCATED_IMAGES``, which
    makes Pillow fill a cut or damaged image with grey instead of raising; restored on exit.
    """
    errors: tuple[type[BaseException], ...] = (OSError, ValueError, SyntaxError, EOFError, struct.error)
    try:
        from PIL import Image, ImageFile
    except ImportError:  # decode_image raises the install hint itself
        yield errors
        return
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:  # DecompressionBombError is no OSError: a huge image is a skipped file too
        yield (*errors, Image.DecompressionBombError)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def decode_all(paths: Sequence[Path], size: int, cache: DecodeCache | None,
               name: str = "images") -> tuple[list, list[int], list[dict]]:
    """(images, kept positions, skipped) after fully decoding each path; unreadable files are skipped with why.
    A long decode logs its progress (files done, files per second, time left) every PROGRESS_SECONDS."""
    cache = DEFAULT_CACHE if cache is None else cache
    images: list[Any] = []
    kept, skipped = [], []
    started = shown = time.monotonic()
    with _full_decodes() as errors:
        for i, path in enumerate(paths):
            try:
                images.append(cache.load(path, size))  # decode_image runs load() and convert(): every byte
                kept.append(i)
            except FileNotFoundError:
                skipped.append({"path": str(path), "reason": "file not found"})
            except errors as exc:
                skipped.append({"path": str(path), "reason": f"unreadable image: {type(exc).__name__}: {exc}"})
            if time.monotonic() - shown >= PROGRESS_SECONDS and i + 1 < len(paths):
                shown = time.monotonic()
                LOG.info(decode_line(name, i + 1, len(paths), shown - started))
    if shown > started:  # progress was shown: say it finished
        LOG.info(decode_line(name, len(paths), len(paths), time.monotonic() - started))
    return images, kept, skipped


def decode_line(name: str, done: int, total: int, seconds: float) -> str:
    """One progress line of a decode: files done of all, the rate so far, and the time left at that rate."""
    rate = done / seconds if seconds > 0 else float("inf")
    if done >= total:
        return f"data: {name}: decoded {total} files in {seconds:.0f}s ({rate:.0f} files/s)"
    return (f"data: {name}: decoded {done}/{total} files, {rate:.0f} files/s, about {(total - done) / rate:.0f}s "
            "left")


def _listing(skipped: Sequence[dict]) -> str:
    return "; ".join(f"{s['path']} ({s['reason']})" for s in skipped)


def report_skipped(skipped: Sequence[dict], total: int, strict: bool, name: str) -> None:
    """Raise listing every skipped file (strict), or warn once with the count and a few examples."""
    if not skipped:
        return
    if strict:
        raise CorruptImageError(f"{name}: {len(skipped)} of {total} files are unusable: {_listing(skipped)}. "
                                "Fix or remove them, or pass strict=False to skip them.")
    more = f"; and {len(skipped) - EXAMPLES} more" if len(skipped) > EXAMPLES else ""
    warnings.warn(f"{name}: skipped {len(skipped)} of {total} files (all listed in meta['skipped']), e.g. "
                  f"{_listing(skipped[:EXAMPLES])}{more}", DatasetWarning, stacklevel=4)


def require_images(kept: int, total: int, skipped: Sequence[dict], name: str, looked_for: str) -> None:
    """Raise when nothing is left to audit, naming what was looked for; an empty dataset only fails later."""
    if kept:
        return
    if not total:
        raise DatasetFormatError(f"{name}: no images found; looked for {looked_for}. Check the path and the names.")
    more = f"; and {len(skipped) - EXAMPLES} more" if len(skipped) > EXAMPLES else ""
    raise DatasetFormatError(f"{name}: all {total} files were skipped, so no images are left; looked for "
                             f"{looked_for}. Skipped: {_listing(skipped[:EXAMPLES])}{more}")


__all__ = ["FileOptions", "read_csv", "read_celeba_attrs", "split_outside", "refuse_outside", "decode_all",
           "report_skipped", "require_images"]
