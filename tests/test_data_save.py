"""`SubgroupDataset.save`: each layout read back by the package's own loader gives the same dataset, and every
refusal happens before a file is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pytest_kernelbias.data import (
    SubgroupDataset,
    from_tensors,
    load_csv_manifest,
    load_fairface,
    load_utkface,
    synthfaces,
)
from pytest_kernelbias.errors import AuditConfigError, DatasetFormatError, DatasetWarning

SIDE = 6  # px; the loaders are called with size=SIDE, so they neither resize nor crop


def grid_images(n: int, seed: int = 0) -> torch.Tensor:
    """Float32 (n, 3, SIDE, SIDE) images on the 1/255 grid, made the way the loaders make theirs."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, SIDE, SIDE), generator=g, dtype=torch.uint8).float() / 255


def faces(n: int = 8, seed: int = 0, **extra: list[str]) -> SubgroupDataset:
    """FairFace-style attributes; the label is gender == Female, the loaders' default label."""
    genders = ["Female", "Male", "Male", "Female"] * (n // 4)
    attributes = {"age": ["20-29", "3-9", "more than 70", "0-2"] * (n // 4), "gender": genders,
                  "race": ["Black", "White", "Indian", "Latino_Hispanic"] * (n // 4), **extra}
    return from_tensors(grid_images(n, seed), [int(g == "Female") for g in genders], attributes)


def utk_faces(n: int = 8) -> SubgroupDataset:
    genders = ["Female", "Male"] * (n // 2)
    attributes = {"age": [str(a) for a in (25, 8, 61, 3, 40, 100, 19, 7)][:n], "gender": genders,
                  "race": ["White", "Black", "Asian", "Indian", "Others", "Asian", "White", "Black"][:n]}
    return from_tensors(grid_images(n, seed=1), [int(g == "Female") for g in genders], attributes)


def assert_same(loaded: SubgroupDataset, source: SubgroupDataset) -> None:
    assert torch.equal(loaded.images, source.images)  # exact: the pixels are on the 1/255 grid
    assert loaded.labels.tolist() == source.labels.tolist()
    assert {a: list(v) for a, v in loaded.attributes.items()} == {a: list(v) for a, v in source.attributes.items()}
    assert loaded.fingerprint() == source.fingerprint()


# ---------------------------------------------------------------- round trips
def test_csv_round_trip_gives_back_the_same_dataset(tmp_path):
    data = faces(extra_attribute=["a", "b, quoted \"c\"", "", "d"] * 2)
    path = data.save(tmp_path / "out")
    assert path == tmp_path / "out" / "labels.csv"
    assert_same(load_csv_manifest(path, "image", "label", list(data.attributes), size=SIDE), data)


def test_fairface_round_trip_with_the_default_label(tmp_path):
    data = faces(service_test=["True", "False"] * 4)
    path = data.save(tmp_path / "ff", layout="fairface")
    assert path == tmp_path / "ff" / "fairface_label_train.csv"
    assert sorted(p.name for p in (tmp_path / "ff" / "train").iterdir())[:2] == ["1.png", "2.png"]
    assert_same(load_fairface(path.parent, size=SIDE), data)


def test_fairface_without_service_test_comes_back_with_it_blank(tmp_path):
    data = faces()
    loaded = load_fairface(data.save(tmp_path / "ff", layout="fairface", split="val").parent, split="val", size=SIDE)
    assert list(loaded.attributes.pop("service_test")) == [""] * len(data)
    assert torch.equal(loaded.images, data.images) and torch.equal(loaded.labels, data.labels)
    assert {a: list(v) for a, v in loaded.attributes.items()} == {a: list(v) for a, v in data.attributes.items()}


def test_a_label_spec_given_to_save_is_the_one_that_loads_it_back(tmp_path):
    races = ["Black", "White", "Indian", "Latino_Hispanic"] * 2
    base = faces()
    data = from_tensors(base.images, [int(r in ("Black", "Indian")) for r in races], base.attributes)
    spec = ("race", ("Black", "Indian"))
    path = data.save(tmp_path / "ff", layout="fairface", label=spec)
    loaded = load_fairface(path.parent, label=spec, size=SIDE)
    assert torch.equal(loaded.images, data.images) and loaded.labels.tolist() == data.labels.tolist()


def test_fairface_train_and_val_share_one_folder(tmp_path):
    train, val = faces(seed=0), faces(n=4, seed=1)
    train.save(tmp_path / "ff", layout="fairface")
    val.save(tmp_path / "ff", layout="fairface", split="val", overwrite=True)  # replaces val only
    assert torch.equal(load_fairface(tmp_path / "ff", size=SIDE).images, train.images)
    assert torch.equal(load_fairface(tmp_path / "ff", split="val", size=SIDE).images, val.images)


def test_utkface_round_trip_in_file_name_order(tmp_path):
    data = utk_faces()
    folder = data.save(tmp_path / "utk", layout="utkface")
    assert folder == tmp_path / "utk"
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))  # the save's manifest is hidden
    assert "25_1_0_000000.jpg" in names and "8_0_1_000001.jpg" in names
    # load_utkface lists files by name; a name's last field is the image's index in the saved dataset
    order = torch.tensor([int(name.split("_")[3].removesuffix(".jpg")) for name in names])
    assert_same(load_utkface(folder, size=SIDE), data.subset(order))


def test_off_grid_pixels_come_back_within_half_a_step(tmp_path):
    data = synthfaces(4)  # continuous pixel values, not on the 1/255 grid
    loaded = load_csv_manifest(data.save(tmp_path / "s"), "image", "label", list(data.attributes),
                               size=data.images.shape[-1])
    error = (loaded.images - data.images).abs()
    assert 0 < float(error.max()) <= 0.5 / 255 + 1e-6
    assert torch.equal(loaded.images, (data.images * 255).round() / 255)
    assert loaded.labels.tolist() == data.labels.tolist()


def test_overwrite_replaces_an_earlier_save_and_keeps_other_files(tmp_path):
    folder = tmp_path / "utk"
    utk_faces().save(folder, layout="utkface")
    (folder / "notes.txt").write_text("mine")
    data = from_tensors(grid_images(4, seed=9), [1, 0, 1, 0],
                        {"age": ["30", "31", "32", "33"], "gender": ["Female", "Male"] * 2, "race": ["Others"] * 4})
    data.save(folder, layout="utkface", overwrite=True)
    assert len([p for p in folder.iterdir() if p.suffix == ".jpg"]) == 4
    assert (folder / "notes.txt").read_text() == "mine"
    with pytest.warns(DatasetWarning, match="notes.txt"):  # the loader skips the file that is not an image
        assert torch.equal(load_utkface(folder, size=SIDE).images, data.images)


# ---------------------------------------------------------------- refusals: the fix named, nothing written
def _refused(folder: Path, error: type[Exception], match: str, data: SubgroupDataset, **kwargs) -> None:
    before = sorted(folder.rglob("*")) if folder.exists() else None
    with pytest.raises(error, match=match):
        data.save(folder, **kwargs)
    assert (sorted(folder.rglob("*")) if folder.exists() else None) == before


def test_a_non_empty_folder_is_refused_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    _refused(tmp_path / "out", AuditConfigError, "not empty.*overwrite=True", faces())
    assert (tmp_path / "out" / "keep.txt").read_text() == "x"


def test_an_unknown_layout_is_refused(tmp_path):
    _refused(tmp_path / "out", AuditConfigError, r"layout='imagenet' is unknown; use one of \['fairface'",
             faces(), layout="imagenet")


@pytest.mark.parametrize("layout, data, match", [
    ("fairface", synthfaces(4), r"needs attribute\(s\) \['age', 'race'\].*use layout='csv'"),
    ("fairface", faces(skin=["dark"] * 8), r"no place for attribute\(s\) \['skin'\].*use layout='csv'"),
    ("utkface", from_tensors(grid_images(3), [1, 0, 1], {"age": ["20-29", "\u0663", "4"],  # an Arabic-Indic 3
                                                         "gender": ["Female", "Male", "Female"],
                                                         "race": ["White", "Black", "Asian"]}),
     r"age value\(s\) \['20-29', '\u0663'\] are not digits.*use layout='csv'"),
    ("utkface", from_tensors(grid_images(2), [1, 0], {"age": ["1", "2"], "gender": ["1", "0"],
                                                      "race": ["White", "Black"]}),
     r"cannot hold gender value\(s\) \['0', '1'\].*\['Male', 'Female'\].*use layout='csv'"),
    ("fairface", from_tensors(grid_images(2), [1, 0], {"age": ["1", "2"], "gender": ["Female", "Male"],
                                                       "race": ["Asian", "White"]}),
     r"cannot hold race value\(s\) \['Asian'\].*use layout='csv'"),
], ids=["missing", "extra", "utk-age", "utk-gender-codes", "fairface-race"])
def test_attributes_a_layout_cannot_hold_are_refused(tmp_path, layout, data, match):
    _refused(tmp_path / "out", DatasetFormatError, match, data, layout=layout)


def test_a_label_the_loader_cannot_derive_is_refused(tmp_path):
    base = faces()
    flipped = from_tensors(base.images, 1 - base.labels, base.attributes)  # label = Male, not the default Female
    _refused(tmp_path / "out", DatasetFormatError, r"gives 8 of 8 labels.*save\(label=\.\.\.\).*use layout='csv'",
             flipped, layout="fairface")


@pytest.mark.parametrize("images, match", [
    (torch.zeros(2, 3, 4, 5), "4x5 px.*square"),
    (torch.zeros(2, 1, 4, 4), r"1 channel\(s\).*expand"),
    (torch.full((2, 3, 4, 4), 1.5), r"within \[0, 1\].*clamp"),
], ids=["non-square", "grey", "out-of-range"])
def test_images_the_loaders_cannot_give_back_are_refused(tmp_path, images, match):
    data = SubgroupDataset(images=images, labels=torch.tensor([0, 1]), attributes={"g": ["a", "b"]})
    _refused(tmp_path / "out", DatasetFormatError, match, data)


# ---------------------------------------------------------------- staged saves: whole, or the folder as it was
def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_name_the_file_system_cannot_hold_is_refused_before_anything_is_written(tmp_path):
    data = utk_faces(2)
    first = tmp_path / "utk"
    data.save(first, layout="utkface")
    before = _tree(first)
    long_age = from_tensors(grid_images(2, seed=3), [1, 0], {"age": ["3" * 300, "30"], "gender": ["Female", "Male"],
                                                             "race": ["Others", "Others"]})
    with pytest.raises(DatasetFormatError, match=r"is 3\d\d bytes, more than the \d+ this file system holds.*"
                                                 r"layout='csv'"):
        long_age.save(first, layout="utkface", overwrite=True)
    assert _tree(first) == before  # the earlier save is whole


def test_a_write_that_fails_midway_leaves_the_earlier_save_whole(tmp_path, monkeypatch):
    from pytest_kernelbias.data import _save
    from pytest_kernelbias.errors import DatasetSaveError

    folder = tmp_path / "s"
    faces(seed=0).save(folder)
    before = _tree(folder)
    calls = {"n": 0}
    real = _save._write_png

    def disk_fills(image, path):  # the fourth image hits a full disk, as a real ENOSPC would
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        real(image, path)

    monkeypatch.setattr(_save, "_write_png", disk_fills)
    with pytest.raises(DatasetSaveError, match="No space left on device.*left as it was"):
        faces(seed=1).save(folder, overwrite=True)
    assert _tree(folder) == before
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no staging folder left beside it


def test_overwrite_never_removes_what_no_save_wrote(tmp_path):
    folder = tmp_path / "s"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "holiday.png").write_bytes(b"mine")
    with pytest.raises(AuditConfigError, match=r"holds \['images'\], which no save of this layout wrote"):
        faces().save(folder, overwrite=True)
    assert (folder / "images" / "holiday.png").read_bytes() == b"mine"
    faces().save(tmp_path / "t")
    faces(seed=2).save(tmp_path / "t", overwrite=True)  # its own earlier save is replaced
    assert torch.equal(load_csv_manifest(tmp_path / "t" / "labels.csv", "image", "label", ["race"],
                                         size=SIDE).images, faces(seed=2).images)
