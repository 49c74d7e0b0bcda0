"""On-disk face dataset loaders: tiny FairFace / UTKFace / CelebA / CSV sets written as real image files."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pytest_kernelbias.data import _faces as faces
from pytest_kernelbias.data import _images as images
from pytest_kernelbias.data._faces import (
    CorruptImageError,
    DatasetFormatError,
    DatasetWarning,
    DecodeCache,
    MissingLabelFileError,
    SmallSubgroupError,
    balance,
    load_celeba,
    load_csv_manifest,
    load_fairface,
    load_utkface,
    stratified_split,
)
from pytest_kernelbias.data._in_memory import from_tensors, from_torch_dataset
from pytest_kernelbias.errors import AuditConfigError, EmptySubgroupError

SIZE = 16  # px; the 20x24 test images are resized (short side 20 -> 16) and centre-cropped (19 -> 16 rows)

# (race, gender, age) per FairFace train row: Black/F 4, Black/M 3, White/F 3, White/M 4, East Asian/F 2
FAIRFACE_TRAIN = (
    [("Black", "Female", "20-29")] * 4 + [("Black", "Male", "30-39")] * 3 + [("White", "Female", "more than 70")] * 3
    + [("White", "Male", "3-9")] * 4 + [("East Asian", "Female", "0-2")] * 2
)
FAIRFACE_VAL = [
    ("Indian", "Male", "40-49"), ("Latino_Hispanic", "Female", "50-59"), ("Middle Eastern", "Male", "10-19"),
]

CELEBA_NAMES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
    "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones "
    "Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
    "Wearing_Necklace Wearing_Necktie Young"
).split()


def write_image(path: Path, seed: int, size: tuple[int, int] = (20, 24)) -> Path:
    """A random-noise RGB image of `size` (width, height) px; noise so a cut file is detectably truncated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG" if path.suffix == ".png" else "JPEG")
    return path


def truncate(path: Path) -> None:
    """Keep only the first half of the file's bytes, like an interrupted download."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def make_fairface(root: Path) -> Path:
    for split, rows in (("train", FAIRFACE_TRAIN), ("val", FAIRFACE_VAL)):
        with open(root / f"fairface_label_{split}.csv", "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["file", "age", "gender", "race", "service_test"])
            for i, (race, gender, age) in enumerate(rows, start=1):
                write_image(root / split / f"{i}.jpg", seed=i + 100 * (split == "val"))
                out.writerow([f"{split}/{i}.jpg", age, gender, race, "True" if i % 2 else "False"])
    return root


UTK_GOOD = [
    "25_1_1_20170116174525125.jpg", "31_1_1_20170116174525126.jpg.chip.jpg", "8_0_1_20170109150557335.jpg",
    "44_0_0_20170117135538371.jpg.chip.jpg", "60_0_0_20170117135538372.jpg", "19_1_0_20170117135538373.jpg",
    "27_1_2_20170116184028385.jpg", "52_0_3_20170116184028386.jpg.chip.jpg", "33_0_4_20170116184028387.jpg",
]
UTK_MALFORMED = [
    "39_1_20170116174525125.jpg.chip.jpg",  # race field missing
    "24_0_1_20170116220224657 .jpg.chip.jpg",  # stray space before the extension
    "61_1_20170109142408075jpg",  # missing dot (and race)
]


def make_utkface(root: Path) -> Path:
    for i, name in enumerate(UTK_GOOD + UTK_MALFORMED):
        write_image(root / name, seed=i)
    return root


def make_celeba(root: Path) -> tuple[Path, list[list[int]]]:
    """12 images: partition 0,0,0,0,0,0,1,1,1,2,2,2; Male on even rows, Smiling on rows divisible by 3."""
    rows, names = [], []
    for i in range(12):
        values = [-1] * 40
        values[CELEBA_NAMES.index("Male")] = 1 if i % 2 == 0 else -1
        values[CELEBA_NAMES.index("Smiling")] = 1 if i % 3 == 0 else -1
        values[CELEBA_NAMES.index("Young")] = 1 if i < 8 else -1
        name = f"{i + 1:06d}.jpg"
        write_image(root / "img_align_celeba" / name, seed=i)
        rows.append(values)
        names.append(name)
    # the real file right-aligns each value in width 2 after one space, so "1" follows a run of two spaces
    body = "\n".join(f"{n} " + " ".join(f"{v:>2}" for v in vals) for n, vals in zip(names, rows))
    (root / "list_attr_celeba.txt").write_text(f"{len(rows)}\n{' '.join(CELEBA_NAMES)} \n{body}\n")
    splits = [0] * 6 + [1] * 3 + [2] * 3
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {s}\n" for n, s in zip(names, splits)))
    return root, rows


def make_manifest(root: Path, n: int = 12) -> Path:
    path = root / "manifest.csv"
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["image", "diagnosis", "skin_type", "sex"])
        for i in range(n):
            write_image(root / "imgs" / f"{i}.png", seed=i)
            diagnosis = "melanoma" if i % 3 == 0 else "nevus"
            out.writerow([f"imgs/{i}.png", diagnosis, f"type{i % 2 + 1}", "F" if i < 6 else "M"])
    return path


def tensor_set(counts: dict[tuple[str, str], int]) -> faces.SubgroupDataset:
    """An in-memory dataset with `counts[(tone, gender)]` images per group, labels alternating 0/1."""
    pairs = [pair for pair, n in counts.items() for _ in range(n)]
    labels = [i % 2 for i in range(len(pairs))]
    return from_tensors(torch.rand(len(pairs), 3, 4, 4), labels,
                        {"tone": [p[0] for p in pairs], "gender": [p[1] for p in pairs]})


# ---------------------------------------------------------------- FairFace
def test_fairface_counts_per_race_gender_group_exact(tmp_path):
    data = load_fairface(make_fairface(tmp_path), size=SIZE, cache=DecodeCache())
    assert data.counts(["race", "gender"]) == {
        "race=Black&gender=Female": 4, "race=Black&gender=Male": 3, "race=East Asian&gender=Female": 2,
        "race=White&gender=Female": 3, "race=White&gender=Male": 4,
    }


def test_fairface_meta_counts_include_absent_groups_as_zero(tmp_path):
    data = load_fairface(make_fairface(tmp_path), size=SIZE, cache=DecodeCache())
    assert len(data.meta["counts"]) == 7 * 2
    assert data.meta["counts"]["race=Indian&gender=Male"] == 0
    assert data.meta["counts"]["race=Black&gender=Female"] == 4


def test_fairface_intersectional_keys_combine_race_and_gender(tmp_path):
    data = load_fairface(make_fairface(tmp_path), size=SIZE, cache=DecodeCache())
    groups = data.subgroup_indices(("race", "gender"), expected=["race=East Asian&gender=Female"])
    assert groups["race=East Asian&gender=Female"].tolist() == [14, 15]


def test_fairface_label_pair_maps_female_to_one(tmp_path):
    data = load_fairface(make_fairface(tmp_path), label=("gender", "Female"), size=SIZE, cache=DecodeCache())
    assert data.labels.tolist() == [int(g == "Female") for _, g, _ in FAIRFACE_TRAIN]
    assert data.labels.dtype == torch.int64


def test_fairface_label_callable_sees_string_row(tmp_path):
    def over_50(row) -> int:
        return int(row["age"] in ("more than 70", "50-59"))

    data = load_fairface(make_fairface(tmp_path), label=over_50, size=SIZE, cache=DecodeCache())
    assert data.labels.sum().item() == 3
    assert set(data.attributes["age"]) == {"20-29", "30-39", "more than 70", "3-9", "0-2"}


def test_fairface_val_split_reads_val_csv(tmp_path):
    data = load_fairface(make_fairface(tmp_path), split="val", size=SIZE, cache=DecodeCache())
    assert data.name == "fairface-val"
    assert list(data.attributes["race"]) == ["Indian", "Latino_Hispanic", "Middle Eastern"]


def test_fairface_unknown_race_names_value_row_and_allowed_values(tmp_path):
    root = make_fairface(tmp_path)
    csv_path = root / "fairface_label_train.csv"
    csv_path.write_text(csv_path.read_text().replace("Black", "Blak", 1))
    with pytest.raises(DatasetFormatError) as err:
        load_fairface(root, size=SIZE)
    assert "'Blak'" in str(err.value) and "line 2" in str(err.value) and "Latino_Hispanic" in str(err.value)


def test_fairface_missing_column_names_file_and_expected_header(tmp_path):
    root = make_fairface(tmp_path)
    csv_path = root / "fairface_label_train.csv"
    csv_path.write_text(csv_path.read_text().replace("race", "ethnicity", 1))
    with pytest.raises(DatasetFormatError, match=r"fairface_label_train\.csv.*\['race'\].*file,age,gender,race"):
        load_fairface(root, size=SIZE)


def test_fairface_missing_label_file_names_path_and_header(tmp_path):
    with pytest.raises(MissingLabelFileError, match=r"fairface_label_val\.csv.*file,age,gender,race,service_test"):
        load_fairface(tmp_path, split="val")


def test_bad_split_name_is_config_error(tmp_path):
    with pytest.raises(AuditConfigError, match="'train' or 'val'"):
        load_fairface(tmp_path, split="test")


# ---------------------------------------------------------------- decoding
def test_decode_resizes_short_side_then_centre_crops(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :] = (255, 0, 0)
    pixels[:, :6] = (0, 255, 0)  # a green left edge: a centre crop drops it, a left crop would keep it
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    image = images.decode_image(tmp_path / "wide.png", 10)
    assert image.shape == (3, 10, 10) and image.dtype == torch.uint8
    assert (image[0] == 255).all() and (image[1] == 0).all()


def test_decoding_names_stay_importable_from_faces():
    assert faces.decode_image is images.decode_image and faces.DecodeCache is images.DecodeCache
    assert faces.DEFAULT_CACHE is images.DEFAULT_CACHE


def test_loaded_images_are_float_in_unit_range_at_default_size(tmp_path):
    data = load_fairface(make_fairface(tmp_path), split="val", cache=DecodeCache())
    assert data.images.shape == (3, 3, 64, 64) and data.images.dtype == torch.float32
    assert 0 <= data.images.min() and data.images.max() <= 1


# ---------------------------------------------------------------- UTKFace
def test_utkface_names_become_age_gender_race_strings(tmp_path):
    with pytest.warns(DatasetWarning):
        data = load_utkface(make_utkface(tmp_path), size=SIZE, cache=DecodeCache())
    row = {a: data.attributes[a][0] for a in ("age", "gender", "race")}  # sorted: 19_1_0 comes first
    assert row == {"age": "19", "gender": "Female", "race": "White"}
    assert data.counts("race") == {
        "race=Asian": 1, "race=Black": 3, "race=Indian": 1, "race=Others": 1, "race=White": 3,
    }


def test_utkface_malformed_names_are_skipped_and_listed(tmp_path):
    with pytest.warns(DatasetWarning, match="skipped 3 of 12"):
        data = load_utkface(make_utkface(tmp_path), size=SIZE, cache=DecodeCache())
    assert len(data) == len(UTK_GOOD)
    assert data.meta["n_skipped"] == 3
    assert sorted(Path(s["path"]).name for s in data.meta["skipped"]) == sorted(UTK_MALFORMED)
    assert all("[age]_[gender]_[race]" in s["reason"] for s in data.meta["skipped"])


def test_utkface_strict_raises_listing_every_malformed_name(tmp_path):
    with pytest.raises(CorruptImageError) as err:
        load_utkface(make_utkface(tmp_path), size=SIZE, strict=True)
    assert all(name in str(err.value) for name in UTK_MALFORMED)


# ---------------------------------------------------------------- corrupt files
def test_truncated_jpeg_is_skipped_reported_and_rest_loads(tmp_path):
    root = make_fairface(tmp_path)
    truncate(root / "train" / "3.jpg")
    with pytest.warns(DatasetWarning, match=r"skipped 1 of 16 .*3\.jpg"):
        data = load_fairface(root, size=SIZE, cache=DecodeCache())
    assert len(data) == 15
    assert data.counts("race")["race=Black"] == 6
    [skipped] = data.meta["skipped"]
    assert skipped["path"].endswith("3.jpg") and "unreadable image" in skipped["reason"]


def test_truncated_jpeg_strict_raises_naming_the_file(tmp_path):
    root = make_fairface(tmp_path)
    truncate(root / "train" / "3.jpg")
    with pytest.raises(CorruptImageError, match=r"1 of 16 files are unusable: .*3\.jpg"):
        load_fairface(root, size=SIZE, strict=True, cache=DecodeCache())


# ---------------------------------------------------------------- CelebA
def test_celeba_runs_of_spaces_parse_to_readable_values(tmp_path):
    root, rows = make_celeba(tmp_path)
    data = load_celeba(root, split="train", size=SIZE, cache=DecodeCache())
    assert list(data.attributes["Male"]) == ["Male", "not Male"] * 3
    assert list(data.attributes["Young"]) == ["Young"] * 6
    assert data.labels.tolist() == [1, 0, 0, 1, 0, 0]  # Smiling on rows 0 and 3


def test_celeba_partition_selects_split(tmp_path):
    root, _ = make_celeba(tmp_path)
    sizes = {s: len(load_celeba(root, split=s, size=SIZE, cache=DecodeCache())) for s in ("train", "valid", "test")}
    assert sizes == {"train": 6, "valid": 3, "test": 3}


def test_celeba_intersectional_counts_include_absent_group(tmp_path):
    root, _ = make_celeba(tmp_path)
    data = load_celeba(root, split="test", size=SIZE, cache=DecodeCache())  # rows 9, 10, 11: all not Young
    assert data.meta["counts"] == {"Male=Male&Young=Young": 0, "Male=Male&Young=not Young": 1,
                                   "Male=not Male&Young=Young": 0, "Male=not Male&Young=not Young": 2}


def test_celeba_unknown_attribute_lists_available_names(tmp_path):
    root, _ = make_celeba(tmp_path)
    with pytest.raises(DatasetFormatError, match="no attribute 'Skin_Tone'.*Wearing_Necktie"):
        load_celeba(root, attributes=("Skin_Tone",), size=SIZE)


# ---------------------------------------------------------------- CSV manifest
def test_csv_manifest_maps_label_value_and_keeps_attribute_columns(tmp_path):
    path = make_manifest(tmp_path)
    data = load_csv_manifest(path, "image", "diagnosis", ["skin_type", "sex"], label="melanoma", size=SIZE,
                             cache=DecodeCache())
    assert data.labels.tolist() == [int(i % 3 == 0) for i in range(12)]
    assert data.counts(("skin_type", "sex")) == {f"skin_type=type{t}&sex={s}": 3 for t in (1, 2) for s in "FM"}


def test_csv_manifest_missing_column_names_file_and_expected_header(tmp_path):
    path = make_manifest(tmp_path)
    with pytest.raises(DatasetFormatError) as err:
        load_csv_manifest(path, "image", "diagnosis", ["skin_tone"], label="melanoma", size=SIZE)
    text = str(err.value)
    assert "manifest.csv" in text and "['skin_tone']" in text and "'image,diagnosis,skin_tone'" in text


def test_csv_manifest_non_binary_label_column_asks_for_mapping(tmp_path):
    path = make_manifest(tmp_path)
    with pytest.raises(DatasetFormatError, match="manifest.csv line 2.*'melanoma'.*label=\\(column, positive value\\)"):
        load_csv_manifest(path, "image", "diagnosis", ["sex"], size=SIZE, cache=DecodeCache())


# ---------------------------------------------------------------- in-memory sources
def test_from_tensors_keeps_intersectional_counts():
    data = tensor_set({("dark", "f"): 3, ("dark", "m"): 2, ("light", "f"): 4})
    assert data.counts(("tone", "gender")) == {
        "tone=dark&gender=f": 3, "tone=dark&gender=m": 2, "tone=light&gender=f": 4,
    }
    assert data.meta["group_by"] == ["tone", "gender"]


def test_from_tensors_rejects_non_binary_labels():
    with pytest.raises(DatasetFormatError, match="gave '2'"):
        from_tensors(torch.rand(2, 3, 4, 4), [0, 2], {"tone": ["a", "b"]})


class _PairDataset(torch.utils.data.Dataset):
    """Alternates PIL images (20x24) and uint8 tensors (3x24x20) with class labels 0..3."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int):
        pixels = np.full((24, 20, 3), 40 * i, dtype=np.uint8)
        image = Image.fromarray(pixels) if i % 2 else torch.from_numpy(pixels).permute(2, 0, 1)
        return image, i % 4


def test_from_torch_dataset_accepts_pil_and_tensors_and_maps_labels():
    data = from_torch_dataset(_PairDataset(), lambda i, sample: {"site": "a" if i < 3 else "b"},
                              label=("label", {"1", "3"}), size=8)
    assert data.images.shape == (6, 3, 8, 8)
    assert data.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert torch.allclose(data.images[5], torch.full((3, 8, 8), 200 / 255))
    assert data.counts("site") == {"site=a": 3, "site=b": 3}


def test_from_torch_dataset_vector_target_label_comes_from_subgroup_fn():
    dataset = [(torch.rand(3, 4, 4), torch.tensor([i % 2, 1, 0])) for i in range(4)]  # CelebA-style attribute target
    data = from_torch_dataset(dataset, lambda i, s: {"smiling": int(s[1][0]), "site": "a"}, label="smiling")
    assert data.labels.tolist() == [0, 1, 0, 1]
    assert set(data.attributes) == {"smiling", "site"}


# ---------------------------------------------------------------- splitting and balancing
def test_stratified_split_keeps_every_subgroup_in_both_halves():
    data = tensor_set({("dark", "f"): 5, ("dark", "m"): 2, ("light", "f"): 7, ("light", "m"): 3})
    train, test = stratified_split(data, ("tone", "gender"), test_fraction=0.3, seed=1)
    assert set(train.counts(("tone", "gender"))) == set(test.counts(("tone", "gender"))) == set(
        data.counts(("tone", "gender")))
    assert len(train) + len(test) == len(data)
    assert (train.name, test.name) == ("tensors-train", "tensors-test")


def test_stratified_split_is_disjoint_and_seeded():
    data = tensor_set({("dark", "f"): 6, ("light", "m"): 6})
    a_train, a_test = stratified_split(data, "tone", 0.5, seed=3)
    b_train, b_test = stratified_split(data, "tone", 0.5, seed=3)
    assert a_test.fingerprint() == b_test.fingerprint()
    train_rows = {tuple(x.flatten().tolist()) for x in a_train.images}
    assert not any(tuple(x.flatten().tolist()) in train_rows for x in a_test.images)


def test_balance_equalizes_subgroup_counts():
    data = tensor_set({("dark", "f"): 5, ("dark", "m"): 2, ("light", "f"): 7})
    balanced = balance(data, ("tone", "gender"), seed=0)
    assert balanced.counts(("tone", "gender")) == {"tone=dark&gender=f": 2, "tone=dark&gender=m": 2,
                                                   "tone=light&gender=f": 2}
    assert balanced.meta["counts"] == balanced.counts(("tone", "gender"))


def test_balanced_flag_on_loader_records_counts_before_and_after(tmp_path):
    data = load_fairface(make_fairface(tmp_path), size=SIZE, balanced=True, group_by=("race",), cache=DecodeCache())
    assert data.counts("race") == {"race=Black": 2, "race=East Asian": 2, "race=White": 2}
    assert data.meta["counts_before_balance"]["race=White"] == 7


# ---------------------------------------------------------------- minimum group size
def test_min_group_size_warns_naming_group_and_count():
    with pytest.warns(DatasetWarning, match="'tone=dark&gender=m' has 2"):
        data = from_tensors(torch.rand(5, 3, 4, 4), [0, 1, 0, 1, 0],
                            {"tone": ["dark"] * 5, "gender": ["f", "f", "f", "m", "m"]}, min_group_size=3)
    assert len(data) == 5


def test_min_group_size_error_raises_with_fix(tmp_path):
    with pytest.raises(SmallSubgroupError, match="race=East Asian&gender=Female' has 2.*lower min_group_size") as err:
        load_fairface(make_fairface(tmp_path), size=SIZE, min_group_size=3, on_small_group="error",
                      group_by=("race", "gender"), cache=DecodeCache())
    assert isinstance(err.value, EmptySubgroupError)
    assert "race=Indian&gender=Male' has 0" in str(err.value)


def test_unknown_loader_option_is_rejected():
    with pytest.raises(AuditConfigError, match="min_groupsize"):
        from_tensors(torch.rand(2, 3, 4, 4), [0, 1], {"tone": ["a", "b"]}, min_groupsize=3)


# ---------------------------------------------------------------- decode cache
def _count_decodes(monkeypatch) -> list[bytes]:
    calls: list[bytes] = []
    real = images.decode_bytes

    def counting(data, size):
        calls.append(data)
        return real(data, size)

    # DecodeCache.load looks decode_bytes up in the images module, so that is the name to patch.
    monkeypatch.setattr(images, "decode_bytes", counting)
    return calls


def test_decode_cache_second_load_does_not_decode_again(tmp_path, monkeypatch):
    root, cache, calls = make_fairface(tmp_path), DecodeCache(), _count_decodes(monkeypatch)
    first = load_fairface(root, size=SIZE, cache=cache)
    second = load_fairface(root, size=SIZE, cache=cache)
    assert len(calls) == cache.decodes == 16 and cache.hits == 16
    assert torch.equal(first.images, second.images)


def test_decode_cache_decodes_edited_file_and_new_size_again(tmp_path, monkeypatch):
    root, cache, calls = make_fairface(tmp_path), DecodeCache(), _count_decodes(monkeypatch)
    load_fairface(root, split="val", size=SIZE, cache=cache)
    write_image(root / "val" / "1.jpg", seed=999)
    load_fairface(root, split="val", size=SIZE, cache=cache)
    load_fairface(root, split="val", size=SIZE // 2, cache=cache)
    assert len(calls) == 3 + 1 + 3


def test_a_file_rewritten_with_its_size_and_time_kept_reads_back_its_new_pixels(tmp_path):
    """The decode cache is keyed by content: an edit that keeps the byte count and restores the modification
    time (as a copy tool or checkout may) is still seen."""
    root, cache = make_fairface(tmp_path), DecodeCache()
    path = root / "val" / "1.jpg"

    def bmp(seed: int) -> bytes:  # uncompressed: the same byte count for every image of one size
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(buf, "BMP")
        return buf.getvalue()

    path.write_bytes(bmp(1))
    before = load_fairface(root, split="val", size=SIZE, cache=cache)
    st = path.stat()
    path.write_bytes(bmp(2))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    after = load_fairface(root, split="val", size=SIZE, cache=cache)
    fresh = load_fairface(root, split="val", size=SIZE, cache=DecodeCache())
    assert torch.equal(after.images, fresh.images)
    assert not torch.equal(after.images[0], before.images[0])


def test_an_image_path_that_is_a_fifo_is_a_skipped_file_not_a_hang(tmp_path):
    root = make_fairface(tmp_path)
    path = root / "val" / "1.jpg"
    path.unlink()
    os.mkfifo(path)
    with pytest.warns(Warning, match="FIFO"):
        data = load_fairface(root, split="val", size=SIZE, cache=DecodeCache())
    assert len(data) == 2


# ---------------------------------------------------------------- staying inside the root
