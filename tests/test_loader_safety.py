"""Loaders stay inside their root, decode every image in full, and never return an empty dataset (issue 13)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from pytest_kernelbias.data._faces import (
    CorruptImageError,
    DatasetFormatError,
    DatasetWarning,
    DecodeCache,
    load_celeba,
    load_csv_manifest,
    load_fairface,
    load_utkface,
)

from .test_faces import (  # noqa: F401
    SIZE,
    UTK_GOOD,
    UTK_MALFORMED,
    make_celeba,
    make_fairface,
    make_manifest,
    make_utkface,
    write_image,
)


def manifest_with(root: Path, paths: list[str]) -> Path:
    """A manifest in `root` listing `paths` as written (label alternating 0/1, one attribute)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["image", "y", "site"])
        out.writerows([p, i % 2, "a"] for i, p in enumerate(paths))
    return root / "manifest.csv"


def test_csv_manifest_refuses_dotdot_and_absolute_paths_naming_them_and_the_fix(tmp_path):
    outside = write_image(tmp_path / "outside" / "x.jpg", seed=1)  # real files: before the check they loaded
    write_image(tmp_path / "data" / "ok.jpg", seed=2)
    path = manifest_with(tmp_path / "data", ["ok.jpg", "../outside/x.jpg", str(outside)])
    with pytest.raises(DatasetFormatError) as err:
        load_csv_manifest(path, "image", "y", ["site"], size=SIZE, cache=DecodeCache())
    text = str(err.value)
    assert "2 image path(s) leave the dataset root" in text and "allow_outside_root=True" in text
    assert "../outside/x.jpg" in text and "manifest.csv line 3" in text and "manifest.csv line 4" in text


def test_symlink_leading_out_of_the_root_is_refused(tmp_path):
    target = write_image(tmp_path / "elsewhere" / "face.jpg", seed=3)
    write_image(tmp_path / "utk" / UTK_GOOD[0], seed=4)
    (tmp_path / "utk" / UTK_GOOD[1]).symlink_to(target)  # well named, so only the root check can catch it
    with pytest.raises(DatasetFormatError, match=f"{UTK_GOOD[1]}.*resolves to .*elsewhere.*allow_outside_root"):
        load_utkface(tmp_path / "utk", size=SIZE, cache=DecodeCache())


def test_fairface_and_celeba_refuse_paths_out_of_their_image_folders(tmp_path):
    (tmp_path / "ff").mkdir()
    root = make_fairface(tmp_path / "ff")
    label_file = root / "fairface_label_val.csv"
    label_file.write_text(label_file.read_text().replace("val/2.jpg", "../ff_secret.jpg"))
    write_image(tmp_path / "ff_secret.jpg", seed=5)
    with pytest.raises(DatasetFormatError, match=r"fairface_label_val\.csv line 3: resolves to .*ff_secret\.jpg"):
        load_fairface(root, split="val", size=SIZE, cache=DecodeCache())
    root, _ = make_celeba(tmp_path / "celeba")
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        (root / name).write_text((root / name).read_text().replace("000001.jpg", "../000001.jpg"))
    (root / "000001.jpg").write_bytes((root / "img_align_celeba" / "000002.jpg").read_bytes())
    with pytest.raises(DatasetFormatError, match=r"list_eval_partition\.txt line 1: resolves to .*outside the root"):
        load_celeba(root, size=SIZE, cache=DecodeCache())


def test_allow_outside_root_opts_in_and_symlinked_image_folder_is_the_root(tmp_path):
    write_image(tmp_path / "outside" / "x.jpg", seed=1)
    write_image(tmp_path / "data" / "ok.jpg", seed=2)
    path = manifest_with(tmp_path / "data", ["ok.jpg", "../outside/x.jpg"])
    data = load_csv_manifest(path, "image", "y", ["site"], size=SIZE, cache=DecodeCache(), allow_outside_root=True)
    assert data.labels.tolist() == [0, 1] and data.meta["n_skipped"] == 0
    # CelebA's images often live on another disk behind a symlinked img_align_celeba/: that folder is the root
    root, _ = make_celeba(tmp_path / "celeba")
    (root / "img_align_celeba").rename(tmp_path / "big_disk")
    (root / "img_align_celeba").symlink_to(tmp_path / "big_disk")
    assert len(load_celeba(root, size=SIZE, cache=DecodeCache())) == 6


# ---------------------------------------------------------------- full decodes, skip reports, empty results
def damage(path: Path) -> Path:
    """Overwrite 64 bytes in the middle of a JPEG's compressed data with 0xFF; the header and size stay intact."""
    data = bytearray(path.read_bytes())
    middle = (data.find(b"\xff\xda") + len(data)) // 2  # halfway through the scan that follows the SOS marker
    data[middle:middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with Image.open(path) as im:  # a lazy open reads only the header, so it still succeeds...
        assert im.size == (20, 24)
        with pytest.raises(OSError, match="broken data stream"):
            im.load()  # ...but a full decode fails: the file really is damaged
    return path


def test_damaged_jpeg_is_skipped_even_when_truncated_images_are_allowed(tmp_path, monkeypatch):
    from PIL import ImageFile

    root = make_fairface(tmp_path)
    damage(root / "train" / "5.jpg")
    # another library or the user's script may turn this on; Pillow then decodes damaged data as grey, silently
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.warns(DatasetWarning, match=r"skipped 1 of 16 .*5\.jpg \(unreadable image: OSError: broken data"):
        data = load_fairface(root, size=SIZE, cache=DecodeCache())
    assert len(data) == 15 and data.meta["skipped"][0]["path"].endswith("5.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored afterwards


def test_strict_lists_bad_names_undecodable_and_outside_files_together(tmp_path):
    root = make_utkface(tmp_path / "utk")
    damage(root / UTK_GOOD[2])
    (root / UTK_GOOD[3]).unlink()
    (root / UTK_GOOD[3]).symlink_to(write_image(tmp_path / "elsewhere.jpg", seed=9))
    with pytest.raises(CorruptImageError) as err:
        load_utkface(root, size=SIZE, strict=True, cache=DecodeCache())
    text = str(err.value)
    assert "5 of 12 files are unusable" in text and all(name in text for name in UTK_MALFORMED)
    assert f"{UTK_GOOD[2]} (unreadable image: OSError" in text and f"{UTK_GOOD[3]} (resolves to" in text


def test_warning_quotes_a_few_examples_and_strict_lists_every_file(tmp_path):
    root = tmp_path / "utk"
    bad = [f"face_{i:02d}.jpg" for i in range(25)]
    for i, name in enumerate([*UTK_GOOD[:2], *bad]):
        write_image(root / name, seed=i)
    with pytest.warns(DatasetWarning) as record:
        data = load_utkface(root, size=SIZE, cache=DecodeCache())
    text = str(record[0].message)
    assert "skipped 25 of 27" in text and "face_04.jpg (name is not" in text and "and 20 more" in text
    assert "face_05.jpg" not in text and data.meta["n_skipped"] == 25
    with pytest.raises(CorruptImageError) as err:
        load_utkface(root, size=SIZE, strict=True, cache=DecodeCache())
    assert all(name in str(err.value) for name in bad) and "more" not in str(err.value)


def test_empty_folder_and_header_only_csv_name_what_was_looked_for(tmp_path):
    (tmp_path / "utk").mkdir()
    with pytest.raises(DatasetFormatError, match=r"no images found; .*\[age\]_\[gender\]_\[race\]_\[datetime\]\.jpg"
                                                  r" .*in folder .*utk"):
        load_utkface(tmp_path / "utk", size=SIZE)
    path = manifest_with(tmp_path / "data", [])
    with pytest.raises(DatasetFormatError, match=r"no images found; .*manifest\.csv.*column 'image'.*folder .*data"):
        load_csv_manifest(path, "image", "y", ["site"], size=SIZE)


def test_every_file_skipped_is_an_error_not_an_empty_dataset(tmp_path):
    root = make_fairface(tmp_path)
    for i in range(1, 4):
        damage(root / "val" / f"{i}.jpg")
    with pytest.raises(DatasetFormatError, match=r"all 3 files were skipped.*fairface_label_val\.csv.*1\.jpg"):
        load_fairface(root, split="val", size=SIZE, cache=DecodeCache())
