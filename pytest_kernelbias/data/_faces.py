"""Loaders for face datasets already on disk (FairFace, UTKFace, CelebA, CSV manifests, torch).

Every loader returns a `SubgroupDataset`: images float (N, 3, size, size) in [0, 1]
(short side resized to `size` px, then centre-cropped), int64 labels in {0, 1}, and
string attributes. Nothing is downloaded and nothing is unpickled.

`label=` picks the binary task label from a row of string attributes:
``"col"`` (the column already holds ``"0"``/``"1"``), ``("col", "Female")`` (1 where
the value equals it, or is in it when a set/list/tuple is given) or a callable
``row -> 0/1``.

Options shared by all loaders (`GroupOptions`): `group_by` (attributes for counts,
balancing and size checks), `min_group_size` with `on_small_group="warn"|"error"`,
`balanced=True` (subsample every group to the smallest) and `seed`.

File loaders also take `strict`, a `DecodeCache` and `allow_outside_root`. Every image is
decoded in full; a file that is badly named, missing or fails to decode is skipped, listed in
``meta["skipped"]`` as ``{"path", "reason"}`` dicts and counted in one `DatasetWarning` quoting a
few examples (`strict=True` raises `CorruptImageError` listing every one instead). An image path
that resolves outside the loader's root (``..``, an absolute path, a symlink leading out) raises
`DatasetFormatError` unless `allow_outside_root=True`. So does a load that finds no images, or
skips them all.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence, Union

import torch
from typing_extensions import TypedDict, Unpack

from ..errors import (
    AuditConfigError,
    CorruptImageError,
    DatasetFormatError,
    MissingLabelFileError,
    SmallSubgroupError,
)
from ._files import (
    FileOptions,
    decode_all,
    read_celeba_attrs,
    read_csv,
    read_text_file,
    refuse_duplicates,
    refuse_outside,
    report_skipped,
    require_images,
    split_outside,
)
from ._images import DEFAULT_CACHE, DecodeCache, decode_image  # decode_image: kept importable from here
from ._splits import DatasetWarning, _with_meta, balance, stratified_split
from ._subgroups import SubgroupDataset, check_group_sizes

Row = Mapping[str, str]
LabelSpec = Union[str, tuple[str, object], Callable[[Row], int]]

FAIRFACE_RACES = ("East Asian", "Indian", "Black", "White", "Middle Eastern", "Latino_Hispanic", "Southeast Asian")
GENDERS = ("Male", "Female")
UTK_RACES = ("White", "Black", "Asian", "Indian", "Others")
UTK_NAME = re.compile(r"^(\d+)_([01])_([0-4])_(\d+)\.jpg(\.chip\.jpg)?$")
CELEBA_SPLITS = {"train": "0", "valid": "1", "test": "2"}


class GroupOptions(TypedDict, total=False):
    """Keyword options every loader accepts; see the module docstring."""

    group_by: Sequence[str]
    min_group_size: int
    on_small_group: Literal["warn", "error"]
    balanced: bool
    seed: int


# ---------------------------------------------------------------- labels and files
def _label_fn(label: LabelSpec) -> Callable[[Row], int]:
    """Turn a label spec into ``row -> int``; see the module docstring for the forms."""
    if callable(label):
        return label
    if isinstance(label, str):  # an unmapped value is returned as is, so the error can show it
        return lambda row: int(row[label]) if row[label] in ("0", "1") else row[label]
    if isinstance(label, tuple) and len(label) == 2 and isinstance(label[0], str):
        column, positive = label
        many = isinstance(positive, (set, frozenset, list, tuple))
        accepted = {str(v) for v in positive} if many else {str(positive)}
        return lambda row: int(row[column] in accepted)
    raise AuditConfigError(
        f"label={label!r}: pass a column name, a (column, positive value(s)) pair or a row -> 0/1 function")


def _labels(rows: Sequence[Row], wheres: Sequence[str], label: LabelSpec) -> list[int]:
    """The 0/1 label of each row; an error names the row, its columns and the bad value."""
    fn, out = _label_fn(label), []
    for row, where in zip(rows, wheres):
        try:
            y = fn(row)
        except KeyError as exc:
            raise DatasetFormatError(
                f"{where}: label={label!r} needs column {exc.args[0]!r}; row has {sorted(row)}") from None
        if y not in (0, 1):
            raise DatasetFormatError(f"{where}: label={label!r} gave {y!r} for row {dict(row)}, expected 0 or 1; "
                                     "pass label=(column, positive value) or a row -> 0/1 function")
        out.append(int(y))
    return out


def _check_value(value: str, allowed: Sequence[str], column: str, where: str) -> None:
    if value not in allowed:
        raise DatasetFormatError(f"{where}: unknown {column} value {value!r}; allowed values are {list(allowed)}")


@dataclasses.dataclass
class _Source:
    """What a loader knows about its data: dataset name, meta, default group_by and known attribute values.

    File loaders add the `root` image paths must stay under and what they `looked_for`, for error messages.
    """

    name: str
    meta: dict
    group_by: Sequence[str]
    vocab: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    root: Path = Path(".")
    looked_for: str = ""


def _from_files(records: list, columns: Sequence[str], label: LabelSpec, source: _Source, files: FileOptions,
                skipped: list[dict], options: GroupOptions) -> SubgroupDataset:
    """Shared tail of every file loader: root check, labels, full decoding with skip/strict, then `_finish`.

    `records` are ``(image path, string row, where)``; `where` locates the row in error messages.
    `skipped` holds the files the loader already rejected (bad names).
    """
    records, refused = split_outside(records, source.root, files.allow_outside_root)
    if refused and not files.strict:  # refused in every mode; strict lists them below with every other bad file
        refuse_outside(refused, source.root, source.name)
    refuse_duplicates(records, source.name)
    skipped = skipped + refused
    total = len(records) + len(skipped)
    labels = _labels([r[1] for r in records], [r[2] for r in records], label)  # fail fast, before decoding
    # strict mode decodes too, even with bad names already known, so its error lists every unusable file at once
    images, kept, bad = decode_all([r[0] for r in records], files.size, files.cache, source.name)
    skipped = skipped + bad
    if files.strict or kept:  # strict raises here; with nothing kept, require_images says so instead of a warning
        report_skipped(skipped, total, files.strict, source.name)
    require_images(len(kept), total, skipped, source.name, source.looked_for)
    source.meta.update(size=files.size, skipped=skipped, n_skipped=len(skipped))
    attributes = {c: [records[i][1][c] for i in kept] for c in columns}
    return _finish(torch.stack(images), [labels[i] for i in kept], attributes, source, options)


# ---------------------------------------------------------------- groups
def _finish(images: torch.Tensor, labels: Sequence[int], attributes: Mapping[str, Sequence[str]], source: _Source,
            options: GroupOptions) -> SubgroupDataset:
    """Build the dataset, check group sizes, optionally balance, and record per-group counts in meta."""
    known = sorted(GroupOptions.__annotations__)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise AuditConfigError(f"unknown option(s) {unknown}; loaders accept {known}")
    group_by = list(options.get("group_by") or source.group_by or attributes)
    data = SubgroupDataset(images=images, labels=torch.as_tensor(list(labels), dtype=torch.int64),
                           attributes={a: [str(v) for v in vs] for a, vs in attributes.items()}, name=source.name,
                           meta={**source.meta, "group_by": group_by})
    counts = _counts(data, group_by, source.vocab)
    _check_sizes(counts, options.get("min_group_size", 0), options.get("on_small_group", "warn"), data.name, group_by)
    if options.get("balanced"):
        data = balance(data, group_by, seed=options.get("seed", 0))
    return _with_meta(data, counts_before_balance=counts, counts=_counts(data, group_by, source.vocab))


def _counts(data: SubgroupDataset, group_by: Sequence[str], vocab: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Images per subgroup key; groups expected from a known vocabulary but absent count 0."""
    expected = {}
    if all(a in vocab for a in group_by):
        for combo in itertools.product(*(vocab[a] for a in group_by)):
            expected["&".join(f"{a}={v}" for a, v in zip(group_by, combo))] = 0
    return dict(sorted({**expected, **(data.counts(group_by) if len(data) else {})}.items()))


def _check_sizes(counts: Mapping[str, int], minimum: int, on_small: str, name: str, group_by: Sequence[str]) -> None:
    """Warn or raise when any subgroup has fewer than `minimum` images."""
    check_group_sizes(counts, minimum, on_small, f"{name}: subgroups",
                      f"Add images to them, group by fewer attributes than {list(group_by)}, or lower min_group_size.",
                      DatasetWarning, stacklevel=5)


# ---------------------------------------------------------------- public loaders
def load_fairface(root: str | Path, split: Literal["train", "val"] = "train",
                  label: LabelSpec = ("gender", "Female"), size: int = 64, strict: bool = False,
                  cache: DecodeCache | None = None, *, allow_outside_root: bool = False,
                  **options: Unpack[GroupOptions]) -> SubgroupDataset:
    """FairFace from `root` holding ``fairface_label_{split}.csv`` and the image folders it names.

    Attributes: ``age`` (bin like ``"20-29"``), ``gender``, ``race``, ``service_test``; default group_by race, gender.
    Each ``file`` must resolve inside `root` (after ``..`` and symlinks), else `DatasetFormatError`;
    `allow_outside_root=True` reads such paths anyway.
    """
    if split not in ("train", "val"):
        raise AuditConfigError(f"FairFace split={split!r}; use 'train' or 'val'")
    root = Path(root)
    columns = ("age", "gender", "race", "service_test")
    records = []
    label_file = root / f"fairface_label_{split}.csv"
    for where, row in read_csv(label_file, ("file", *columns)):
        _check_value(row["race"], FAIRFACE_RACES, "race", where)
        _check_value(row["gender"], GENDERS, "gender", where)
        records.append((root / row["file"], {c: row[c] for c in columns}, where))
    source = _Source(f"fairface-{split}", {"source": str(root), "split": split, "label": repr(label)},
                     ("race", "gender"), {"race": FAIRFACE_RACES, "gender": GENDERS}, root,
                     f"rows below the header of {label_file}, image paths relative to folder {root}")
    files = FileOptions(size, strict, cache, allow_outside_root)
    return _from_files(records, columns, label, source, files, [], options)


def load_utkface(root: str | Path, label: LabelSpec = ("gender", "Female"), size: int = 64, strict: bool = False,
                 cache: DecodeCache | None = None, *, allow_outside_root: bool = False,
                 **options: Unpack[GroupOptions]) -> SubgroupDataset:
    """UTKFace: every file under `root` named ``[age]_[gender]_[race]_[datetime].jpg`` (or ``.jpg.chip.jpg``).

    Attributes: ``age`` (years, as a string), ``gender`` (Male/Female), ``race`` (White/Black/Asian/Indian/Others).
    Badly named files are skipped and listed in ``meta["skipped"]`` (raised with `strict=True`). A file that is a
    symlink leading out of `root` raises `DatasetFormatError` unless `allow_outside_root=True`.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingLabelFileError(f"UTKFace folder {str(root)!r} not found; expected files like 25_1_3_20170119.jpg")
    records, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        match = UTK_NAME.match(path.name)
        if match is None:
            skipped.append({"path": str(path), "reason": "name is not [age]_[gender]_[race]_[datetime].jpg"})
            continue
        age, gender, race = match.group(1, 2, 3)
        records.append((path, {"age": age, "gender": GENDERS[int(gender)], "race": UTK_RACES[int(race)]}, str(path)))
    source = _Source("utkface", {"source": str(root), "label": repr(label)}, ("race", "gender"),
                     {"race": UTK_RACES, "gender": GENDERS}, root,
                     f"files named [age]_[gender]_[race]_[datetime].jpg (or .jpg.chip.jpg) in folder {root} "
                     "and its subfolders")
    files = FileOptions(size, strict, cache, allow_outside_root)
    return _from_files(records, ("age", "gender", "race"), label, source, files, skipped, options)


def load_celeba(root: str | Path, split: Literal["train", "valid", "test"] = "train", label: LabelSpec = "Smiling",
                attributes: Sequence[str] = ("Male", "Young"), size: int = 64, strict: bool = False,
                cache: DecodeCache | None = None, *, allow_outside_root: bool = False,
                **options: Unpack[GroupOptions]) -> SubgroupDataset:
    """CelebA from `root` with ``list_attr_celeba.txt``, ``list_eval_partition.txt`` and ``img_align_celeba/``.

    Values are readable: attribute ``Male`` is ``"Male"`` or ``"not Male"``. A bare label name ``"Smiling"``
    means 1 where Smiling is 1; label functions see all 40 attributes. Each filename must resolve inside
    ``img_align_celeba/`` (which may itself be a symlink), else `DatasetFormatError`; `allow_outside_root=True`
    reads such names anyway.
    """
    if split not in CELEBA_SPLITS:
        raise AuditConfigError(f"CelebA split={split!r}; use one of {list(CELEBA_SPLITS)}")
    root = Path(root)
    names, values = read_celeba_attrs(root / "list_attr_celeba.txt")
    for wanted in [*attributes, *([label] if isinstance(label, str) else [])]:
        if wanted not in names:
            raise DatasetFormatError(f"list_attr_celeba.txt has no attribute {wanted!r}; it has {names}")
    partition = root / "list_eval_partition.txt"
    if not partition.is_file():
        raise MissingLabelFileError(f"{str(partition)!r} not found; expected rows 'filename split' with split 0/1/2")
    records, folder = [], root / "img_align_celeba"
    for lineno, line in enumerate(read_text_file(partition).splitlines(), start=1):
        parts = line.split()
        if len(parts) != 2 or parts[1] != CELEBA_SPLITS[split]:
            continue
        if parts[0] not in values:
            raise DatasetFormatError(f"{partition.name} line {lineno}: {parts[0]!r} is not in list_attr_celeba.txt")
        row = {n: n if v == "1" else f"not {n}" for n, v in zip(names, values[parts[0]])}
        records.append((folder / parts[0], row, f"{partition.name} line {lineno}"))
    label = (label, label) if isinstance(label, str) else label
    source = _Source(f"celeba-{split}", {"source": str(root), "split": split, "label": repr(label)},
                     tuple(attributes), {a: (a, f"not {a}") for a in names}, folder,
                     f"rows of split {CELEBA_SPLITS[split]} ({split}) in {partition}, images in folder {folder}")
    files = FileOptions(size, strict, cache, allow_outside_root)
    return _from_files(records, attributes, label, source, files, [], options)


def load_csv_manifest(csv_path: str | Path, image_column: str, label_column: str, attribute_columns: Sequence[str],
                      root: str | Path | None = None, label: object | Callable[[Row], int] | None = None,
                      size: int = 64, strict: bool = False, cache: DecodeCache | None = None, *,
                      allow_outside_root: bool = False, **options: Unpack[GroupOptions]) -> SubgroupDataset:
    """Any CSV listing an image path (relative to `root`, default the CSV's folder), a label and attributes.

    `label` None: `label_column` holds 0/1; a value or set of values: 1 where `label_column` matches;
    a callable: ``row -> 0/1`` over all columns. Each image path must resolve inside `root` (no ``..`` out,
    no absolute path or symlink elsewhere), else `DatasetFormatError`; `allow_outside_root=True` reads it anyway.
    """
    csv_path = Path(csv_path)
    root = Path(root) if root is not None else csv_path.parent
    spec: LabelSpec = label if callable(label) else label_column if label is None else (label_column, label)
    required = list(dict.fromkeys([image_column, label_column, *attribute_columns]))
    records = [(root / row[image_column], row, where) for where, row in read_csv(csv_path, required)]
    source = _Source(csv_path.stem, {"source": str(csv_path), "label": repr(spec)}, tuple(attribute_columns), {},
                     root, f"rows below the header of {csv_path}, image paths in column {image_column!r} "
                     f"relative to folder {root}")
    files = FileOptions(size, strict, cache, allow_outside_root)
    return _from_files(records, attribute_columns, spec, source, files, [], options)


__all__ = [
    "DecodeCache", "DEFAULT_CACHE", "decode_image", "DatasetFormatError", "MissingLabelFileError",
    "CorruptImageError", "SmallSubgroupError", "DatasetWarning", "GroupOptions", "LabelSpec",
    "load_fairface", "load_utkface", "load_celeba", "load_csv_manifest",
    "balance", "stratified_split",
]
