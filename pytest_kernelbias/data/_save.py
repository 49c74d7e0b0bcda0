"""Writing a `SubgroupDataset` as files its own loaders read back: a FairFace tree, a UTKFace folder or a CSV manifest.

Each image is one lossless RGB PNG of the 8-bit values ``round(255 * x)``, so `load_fairface`, `load_utkface` and
`load_csv_manifest` called with ``size=`` equal to the images' side (no resize, no crop) decode the same pixels.
Every check runs before the first file is written: a refused save leaves the folder as it was.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .._stored import read_regular
from ..errors import AuditConfigError, DatasetFormatError, DatasetSaveError
from ._faces import FAIRFACE_RACES, GENDERS, UTK_NAME, UTK_RACES, LabelSpec, _labels, load_fairface, load_utkface
from ._subgroups import SubgroupDataset

LAYOUTS = ("fairface", "utkface", "csv")
CSV_FILE = "labels.csv"
CSV_IMAGES = "images"
CSV_RESERVED = ("image", "label")  # the manifest's own columns; an attribute of either name would be overwritten
FAIRFACE_NEEDED = ("age", "gender", "race")
FAIRFACE_OPTIONAL = ("service_test",)  # written as "" when absent: load_fairface requires the column
UTK_NEEDED = ("age", "gender", "race")
TO_CSV = "use layout='csv', which keeps every attribute and the label as they are"


@dataclasses.dataclass
class _Plan:
    """What a save will write, worked out before anything is: image paths (relative to the folder), the label
    file and its rows (None for UTKFace, whose file names are its labels), what `overwrite` replaces, and the
    path handed back to the caller."""

    images: list[str]
    label_file: Path | None
    header: list[str]
    rows: list[dict[str, str]]
    entries: list[str]  # the top-level names in the folder this save writes, the label file last
    key: str  # which save of the folder this is (its manifest): the label file's name, or "utkface"
    returns: Path


def _default(loader: Callable, name: str) -> object:
    """A loader's default for keyword `name`, read from its signature so each default lives once."""
    return inspect.signature(loader).parameters[name].default


def _index_names(n: int) -> list[str]:
    """Zero-padded image indices of one width, so the file names sort in the saved order."""
    width = max(6, len(str(n)))
    return [f"{i:0{width}d}" for i in range(n)]


# ---------------------------------------------------------------- checks that need no layout
def _check_arguments(layout: str, label: LabelSpec | None, split: str | None) -> None:
    if layout not in LAYOUTS:
        raise AuditConfigError(f"layout={layout!r} is unknown; use one of {list(LAYOUTS)} ('csv' holds any dataset)")
    if split is not None and layout != "fairface":
        raise AuditConfigError(f"split={split!r} names a FairFace label file; layout={layout!r} has none: drop split=")
    if split is not None and split not in ("train", "val"):
        raise AuditConfigError(f"FairFace split={split!r}; use 'train' or 'val' (the splits load_fairface reads)")
    if label is not None and layout == "csv":
        raise AuditConfigError("layout='csv' writes the labels to column 'label', read back with label=None; "
                               "drop label=")


def _check_folder(folder: Path, overwrite: bool) -> None:
    """Refuse a file in the folder's place, and a folder with anything in it unless `overwrite`."""
    if folder.exists() and not folder.is_dir():
        raise AuditConfigError(f"{str(folder)!r} is a file, not a folder; pass a folder path to save into")
    held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if held and not overwrite:
        more = f" and {len(held) - 3} more" if len(held) > 3 else ""
        raise AuditConfigError(f"folder {str(folder)!r} is not empty (holds {held[:3]}{more}); save into an empty "
                               "or new folder, or pass overwrite=True to replace an earlier save of this layout there")


def _check_images(data: SubgroupDataset) -> None:
    """Images the loaders can give back unchanged: at least one, float RGB, square, finite, within [0, 1]."""
    images, name = data.images, data.name
    if not len(images):
        raise DatasetFormatError(f"{name}: no images to save; the loaders refuse a dataset with none")
    if not images.is_floating_point():
        raise DatasetFormatError(f"{name}: images are {images.dtype}; save writes float images in [0, 1] "
                                 "(convert uint8 with images.float() / 255)")
    n, c, h, w = images.shape
    if c != 3:
        raise DatasetFormatError(f"{name}: images have {c} channel(s); the loaders decode RGB, so save writes 3 "
                                 "(grey: images.expand(-1, 3, -1, -1); RGBA: images[:, :3])")
    if h != w:
        raise DatasetFormatError(f"{name}: images are {h}x{w} px; the loaders crop to a square, so only square "
                                 "images come back whole (crop or resize them first)")
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or float(images.max()) > 1:
        raise DatasetFormatError(f"{name}: image values must be finite and within [0, 1] to be stored as 8 bits; "
                                 "clamp them (images.clamp(0, 1)) or fix the non-finite ones")


def _check_labels(data: SubgroupDataset) -> None:
    labels = set(data.labels.tolist())
    if not labels <= {0, 1}:
        raise DatasetFormatError(f"{data.name}: labels {sorted(labels)} are not all 0/1; the loaders read binary "
                                 "labels (map them first, e.g. (labels == positive).long())")


def _check_columns(data: SubgroupDataset, needed: Sequence[str], optional: Sequence[str], layout: str) -> None:
    """The attributes must be exactly the layout's columns: one without a column would be lost on the way."""
    missing = [a for a in needed if a not in data.attributes]
    if missing:
        raise DatasetFormatError(f"{data.name}: layout={layout!r} needs attribute(s) {missing} (it has "
                                 f"{sorted(data.attributes)}); add them, or {TO_CSV}")
    extra = [a for a in data.attributes if a not in (*needed, *optional)]
    if extra:
        raise DatasetFormatError(f"{data.name}: layout={layout!r} has no place for attribute(s) {extra}; it holds "
                                 f"only {[*needed, *optional]}. Drop them, or {TO_CSV}")


def _check_values(data: SubgroupDataset, attribute: str, allowed: Sequence[str], layout: str) -> None:
    bad = sorted({str(v) for v in data.attributes[attribute]} - set(allowed))
    if bad:
        raise DatasetFormatError(f"{data.name}: layout={layout!r} cannot hold {attribute} value(s) {bad[:5]}; the "
                                 f"loader accepts only {list(allowed)}. Map them to those names, or {TO_CSV}")


def _check_text(data: SubgroupDataset, attributes: Sequence[str]) -> None:
    """CSV cells come back stripped: a value with spaces at either end would come back changed."""
    for a in attributes:
        padded = sorted({str(v) for v in data.attributes[a] if str(v) != str(v).strip()})
        if padded:
            raise DatasetFormatError(f"{data.name}: attribute {a!r} value(s) {padded[:5]} start or end with "
                                     "whitespace, which the CSV reader strips; strip them before saving")


def _check_label(data: SubgroupDataset, rows: list[dict[str, str]], spec: LabelSpec, layout: str) -> None:
    """FairFace and UTKFace files hold no label: the loader's `label=` must give the dataset's labels back."""
    fix = (f"layout={layout!r} stores no label, so the loader derives it from {sorted(rows[0])} with label=; "
           f"pass save(label=...) the spec that gives these labels, or {TO_CSV}")
    try:
        got = _labels(rows, [f"{data.name} item {i}" for i in range(len(rows))], spec)
    except DatasetFormatError as exc:
        raise DatasetFormatError(f"{exc}. ({fix})") from None
    want = data.labels.tolist()
    wrong = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    if wrong:
        i = wrong[0]
        raise DatasetFormatError(f"{data.name}: label={spec!r} gives {len(wrong)} of {len(want)} labels other than "
                                 f"the dataset's (item {i}: {rows[i]} gives {got[i]}, the dataset has {want[i]}); "
                                 f"{fix}")


# ---------------------------------------------------------------- one plan per layout
def _plan_fairface(data: SubgroupDataset, folder: Path, label: LabelSpec | None, split: str | None) -> _Plan:
    """``fairface_label_{split}.csv`` listing ``{split}/{i}.png`` (1-based, as FairFace numbers its files)."""
    split = split or str(_default(load_fairface, "split"))
    _check_columns(data, FAIRFACE_NEEDED, FAIRFACE_OPTIONAL, "fairface")
    _check_values(data, "race", FAIRFACE_RACES, "fairface")
    _check_values(data, "gender", GENDERS, "fairface")
    columns = [*FAIRFACE_NEEDED, *FAIRFACE_OPTIONAL]
    _check_text(data, [c for c in columns if c in data.attributes])
    n = len(data)
    blank = [""] * n
    values = {c: [str(v) for v in data.attributes.get(c, blank)] for c in columns}
    rows = [{c: values[c][i] for c in columns} for i in range(n)]
    _check_label(data, rows, label if label is not None else _default(load_fairface, "label"), "fairface")
    images = [f"{split}/{i + 1}.png" for i in range(n)]
    label_file = folder / f"fairface_label_{split}.csv"
    rows = [{"file": path, **row} for path, row in zip(images, rows)]
    return _Plan(images, label_file, ["file", *columns], rows, [split, label_file.name], label_file.name, label_file)


def _plan_utkface(data: SubgroupDataset, folder: Path, label: LabelSpec | None) -> _Plan:
    """One flat folder of ``{age}_{gender code}_{race code}_{index}.jpg``: UTKFace's name is its only label file.

    The files hold PNG bytes under the ``.jpg`` name the loader's pattern requires (Pillow reads by content).
    """
    _check_columns(data, UTK_NEEDED, (), "utkface")
    _check_values(data, "gender", GENDERS, "utkface")
    _check_values(data, "race", UTK_RACES, "utkface")
    ages = [str(v) for v in data.attributes["age"]]
    bad = sorted({a for a in ages if not (a.isascii() and a.isdigit())})
    if bad:
        raise DatasetFormatError(f"{data.name}: layout='utkface' stores age as whole years in the file name; "
                                 f"age value(s) {bad[:5]} are not digits. Map them to years, or {TO_CSV}")
    genders = [str(v) for v in data.attributes["gender"]]
    races = [str(v) for v in data.attributes["race"]]
    rows = [{"age": a, "gender": g, "race": r} for a, g, r in zip(ages, genders, races)]
    _check_label(data, rows, label if label is not None else _default(load_utkface, "label"), "utkface")
    images = [f"{a}_{GENDERS.index(g)}_{UTK_RACES.index(r)}_{i}.jpg"
              for a, g, r, i in zip(ages, genders, races, _index_names(len(data)))]
    return _Plan(images, None, [], [], list(images), "utkface", folder)


def _plan_csv(data: SubgroupDataset, folder: Path) -> _Plan:
    """``labels.csv`` with columns image, label and one per attribute; images in ``images/``."""
    names = list(data.attributes)
    clash = [a for a in names if a in CSV_RESERVED or not a]
    if clash:
        raise DatasetFormatError(f"{data.name}: attribute name(s) {clash} clash with the manifest's columns "
                                 f"{list(CSV_RESERVED)} (or are empty); rename them before saving")
    _check_text(data, names)
    images = [f"{CSV_IMAGES}/{i}.png" for i in _index_names(len(data))]
    values = {a: [str(v) for v in data.attributes[a]] for a in names}
    rows = [{"image": path, "label": str(int(y)), **{a: values[a][i] for a in names}}
            for i, (path, y) in enumerate(zip(images, data.labels.tolist()))]
    label_file = folder / CSV_FILE
    return _Plan(images, label_file, [*CSV_RESERVED, *names], rows, [CSV_IMAGES, CSV_FILE], CSV_FILE, label_file)


# ---------------------------------------------------------------- writing
def _remove(path: Path) -> None:
    """Delete a file, a link (never what it points to) or a folder tree that an earlier save wrote."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _write_png(image: torch.Tensor, path: Path) -> None:
    """One float (3, H, W) image in [0, 1] as an 8-bit RGB PNG of round(255 * x)."""
    # float64 before scaling: x = k/255 in float32 or float16 lands back on k, never one step off
    pixels = (image.detach().cpu().double() * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, format="PNG")  # format: UTKFace names end in .jpg


def _write_label_file(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    _write_whole(path, text.getvalue())


def _write_whole(path: Path, text: str) -> None:
    # Written beside and renamed last, so a reader never finds half a file: a label file naming images not yet
    # written, or a manifest cut short.
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, path)


def save_dataset(data: SubgroupDataset, folder: str | Path, layout: str = "csv", *, label: LabelSpec | None = None,
                 split: str | None = None, overwrite: bool = False) -> Path:
    """Write `data` under `folder` in `layout`; see `SubgroupDataset.save`, which calls this.

    Everything is written to a sibling staging folder first and swapped in whole, so a full disk or a name the
    file system refuses leaves the folder as it was; `overwrite` replaces only what an earlier save of this
    layout recorded writing (its manifest), never a file or folder a save did not write.
    """
    folder = Path(folder)
    _check_arguments(layout, label, split)
    _check_folder(folder, overwrite)
    _check_images(data)
    _check_labels(data)
    if layout == "fairface":
        plan = _plan_fairface(data, folder, label, split)
    elif layout == "utkface":
        plan = _plan_utkface(data, folder, label)
    else:
        plan = _plan_csv(data, folder)
    _check_names(folder, plan)
    earlier = _earlier(folder, plan)
    # every check above and in the plan has passed: only from here on is anything written
    staging = _stage(data, folder, plan)
    try:
        _swap(folder, plan, earlier, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return plan.returns


def _manifest(folder: Path, plan: _Plan) -> Path:
    return folder / f".kernelbias-save-{plan.key}.json"


def _earlier(folder: Path, plan: _Plan) -> list[str]:
    """What the earlier save of this layout wrote (to be replaced); refuses to replace anything else."""
    recorded: list[str] = []
    try:
        value = json.loads(read_regular(_manifest(folder, plan)))
        recorded = [v for v in value if isinstance(v, str) and "/" not in v and v not in ("", ".", "..")]
    except (OSError, ValueError, TypeError):
        pass  # none, or not one a save wrote: nothing is known to be ours
    foreign = [name for name in plan.entries if (folder / name).exists() and name not in recorded]
    if plan.key == "utkface" and folder.is_dir():  # a flat folder: every UTKFace name in it is loaded with ours
        foreign += [p.name for p in folder.iterdir() if UTK_NAME.match(p.name) and p.name not in recorded]
    if foreign:
        names = sorted(set(foreign))
        raise AuditConfigError(f"folder {str(folder)!r} holds {names[:3]}{' ...' if len(names) > 3 else ''}, which no "
                               f"save of this layout wrote, and saving here would replace or mix with it; move it, "
                               f"or save into an empty folder")
    return [name for name in recorded if (folder / name).exists() or (folder / name).is_symlink()]


def _check_names(folder: Path, plan: _Plan) -> None:
    """Refuse names the file system cannot hold (a 300-digit UTKFace age) before anything is written."""
    probe = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    try:
        name_max = os.pathconf(probe, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    for relative in [*plan.images, *plan.entries]:
        for part in Path(relative).parts:
            if len(os.fsencode(part)) > name_max:
                raise DatasetFormatError(f"save to {folder}: file name {part[:40]!r}... is {len(os.fsencode(part))} "
                                         f"bytes, more than the {name_max} this file system holds; shorten the "
                                         f"values in it (e.g. the age), or {TO_CSV}")


def _stage(data: SubgroupDataset, folder: Path, plan: _Plan) -> Path:
    """Write every file into a new sibling folder; on failure remove it and leave `folder` as it was."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.saving-", dir=folder.parent))
    except OSError as exc:
        raise DatasetSaveError(f"cannot save into {folder}: {exc}; nothing was written") from None
    try:
        for image, relative in zip(data.images, plan.images):
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_png(image, path)
        if plan.label_file is not None:
            _write_label_file(staging / plan.label_file.name, plan.header, plan.rows)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DatasetSaveError(f"saving into {folder} failed while writing ({exc}); {folder} is left as it was, "
                               f"an earlier save in it included") from None
    return staging


def _swap(folder: Path, plan: _Plan, earlier: list[str], staging: Path) -> None:
    """Move the earlier save aside, the staged one in (label file last), record it; undo all on failure."""
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.replaced-", dir=folder.parent))
    moved: list[str] = []
    placed: list[str] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in earlier:
            os.replace(folder / name, aside / name)
            moved.append(name)
        for name in plan.entries:
            os.replace(staging / name, folder / name)
            placed.append(name)
        _write_manifest(_manifest(folder, plan), plan.entries)
    except OSError as exc:
        for name in placed:
            _remove(folder / name)
        for name in moved:
            os.replace(aside / name, folder / name)
        raise DatasetSaveError(f"saving into {folder} failed ({exc}); the earlier contents are back") from None
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def _write_manifest(path: Path, entries: list[str]) -> None:
    _write_whole(path, json.dumps(entries))


__all__ = ["LAYOUTS", "save_dataset"]
