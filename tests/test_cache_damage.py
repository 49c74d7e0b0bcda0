"""Stored state is all-or-nothing: damage means a warning and a retrain or re-evaluation (issue 13, item 2).

Each test fills a cache with one real (tiny) audit, damages it the way a user,
a crash or a script could, and checks that the next audit warns, never
crashes, and reports exactly the numbers of the undamaged run.
"""

from __future__ import annotations

import gc
import json
import os
import stat
import warnings

import pytest

from pytest_kernelbias import VariantCache, run_audit
from pytest_kernelbias.errors import CacheWarning
from pytest_kernelbias.execution import _store
from pytest_kernelbias.execution._records import seal, unseal

from .conftest import tiny_cnn
from .test_cache import TRAIN


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """A filled cache folder (copied per test) and the numbers of the run that filled it."""
    root = tmp_path_factory.mktemp("cold")
    result = run_audit(tiny_cnn, "0", [3, 5], cache=root, **TRAIN)
    return root, result


@pytest.fixture
def cache_dir(cold, tmp_path):
    import shutil

    shutil.copytree(cold[0], tmp_path / "cache")
    return tmp_path / "cache"


def numbers(result):
    return [r.as_dict() for r in result.outcomes.rows], result.effect.estimate, \
        {k: v.estimate for k, v in result.placebos.items()}


def rerun(cache_dir, match):
    # workers=1 keeps these quick; a pool worker's warnings reach this process too (test_cache.py).
    with pytest.warns(CacheWarning, match=match):
        return run_audit(tiny_cnn, "0", [3, 5], cache=cache_dir, **{**TRAIN, "workers": 1})


def evaluations(cache_dir):
    return sorted(cache_dir.glob("*/*/eval-*.json"))


def test_extras_that_try_to_override_the_checked_predictions_are_refused(cold, cache_dir):
    path = evaluations(cache_dir)[0]
    record = json.loads(path.read_text())
    flipped = {c: [1] * 200 for c in record["conditions"]}  # every test image "predicted" as class 1
    record["extra"]["preds"] = flipped
    path.write_text(json.dumps(record))
    warm = rerun(cache_dir, "cached evaluation .* does not match its checksum")
    assert numbers(warm) == numbers(cold[1])


def test_an_edited_number_in_an_evaluation_record_is_seen(cold, cache_dir):
    path = evaluations(cache_dir)[0]
    path.write_text(path.read_text().replace('"conditions"', '"conditions" ', 1).replace("[", "[\n", 1))
    assert unseal(path)  # whitespace is not content: the seal still holds
    record = json.loads(path.read_text())
    record["sha256"] = "0" * 64
    path.write_text(json.dumps(record))
    warm = rerun(cache_dir, "does not match its checksum")
    assert numbers(warm) == numbers(cold[1])


@pytest.mark.parametrize("field, value", [("extra", [1, 2]), ("extra", {"preds": {}}), ("conditions", "clean")])
def test_a_sealed_record_of_the_wrong_shape_is_re_evaluated(cold, cache_dir, field, value):
    path = evaluations(cache_dir)[0]
    record = unseal(path)
    record[field] = value
    path.write_text(seal(record))  # a correct seal: only the shape check can catch it
    warm = rerun(cache_dir, "cached evaluation .* unusable")
    assert numbers(warm) == numbers(cold[1])


def test_an_entry_folder_replaced_by_a_symlink_is_retrained_and_the_target_left_alone(cold, cache_dir, tmp_path):
    entry = sorted(cache_dir.glob("*/*/meta.json"))[0].parent
    outside = tmp_path / "outside"
    entry.rename(outside)
    entry.symlink_to(outside, target_is_directory=True)
    warm = rerun(cache_dir, "symbolic link")
    assert warm.settings["trained"] == 1 and numbers(warm) == numbers(cold[1])
    assert entry.is_dir() and not entry.is_symlink() and (outside / "meta.json").exists()
    again = run_audit(tiny_cnn, "0", [3, 5], cache=cache_dir, **TRAIN)  # and later runs are whole again
    assert again.settings["from_cache"] == 4


@pytest.mark.parametrize("content", ["[1, 2, 3]", '"text"', "{", ""])
def test_a_meta_json_of_the_wrong_type_is_retrained(cold, cache_dir, content):
    sorted(cache_dir.glob("*/*/meta.json"))[0].write_text(content)
    warm = rerun(cache_dir, "unusable.*retraining")
    assert warm.settings["trained"] == 1 and numbers(warm) == numbers(cold[1])


@pytest.mark.parametrize("missing", ["weights.safetensors", "meta.json"])
def test_a_missing_half_of_an_entry_is_retrained(cold, cache_dir, missing):
    sorted(cache_dir.glob(f"*/*/{missing}"))[0].unlink()
    warm = rerun(cache_dir, "unusable.*retraining")
    assert warm.settings["trained"] == 1 and numbers(warm) == numbers(cold[1])


def test_a_missing_half_of_an_evaluation_is_re_evaluated(cold, cache_dir):
    evaluations(cache_dir)[0].with_suffix(".safetensors").unlink()
    warm = rerun(cache_dir, "cached evaluation .* unusable")
    assert warm.settings["trained"] == 0 and numbers(warm) == numbers(cold[1])


def test_a_locks_path_that_is_a_file_is_replaced_with_a_warning(cold, cache_dir):
    import shutil

    shutil.rmtree(cache_dir / "locks", ignore_errors=True)
    (cache_dir / "locks").write_text("not a folder")
    shutil.rmtree(sorted(cache_dir.glob("*/*/meta.json"))[0].parent)  # so a variant trains, under a lock
    warm = rerun(cache_dir, "locks was not a folder")
    assert (cache_dir / "locks").is_dir() and numbers(warm) == numbers(cold[1])


def test_a_read_only_cache_is_still_read_and_its_temporary_folder_removed(cold, cache_dir, monkeypatch):
    modes = {p: p.stat().st_mode for p in [cache_dir, *cache_dir.rglob("*")] if p.is_dir()}
    for p in modes:
        p.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.access(cache_dir, os.W_OK):  # running as root: permissions do not bind, so say the folder is read-only
        real = _store._writable
        monkeypatch.setattr(_store, "_writable", lambda root: root != cache_dir and real(root))
    try:
        with pytest.warns(CacheWarning, match="not writable; its entries are read"):
            cache = VariantCache(cache_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CacheWarning)  # every entry is read: nothing is called damaged
            warm = run_audit(tiny_cnn, "0", [3, 5], cache=cache, **TRAIN)
        assert warm.settings["from_cache"] == 4 and warm.settings["trained"] == 0
        assert numbers(warm) == numbers(cold[1])
        fallback = cache.root
        assert fallback != cache_dir and fallback.exists()
        del cache, warm
        gc.collect()
        assert not fallback.exists()
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def test_a_read_only_cache_trains_what_it_lacks_into_the_temporary_folder(cold, cache_dir, monkeypatch):
    sorted(cache_dir.glob("*/*/meta.json"))[0].parent.rename(cache_dir / "set-aside")
    real = _store._writable
    monkeypatch.setattr(_store, "_writable", lambda root: root != cache_dir and real(root))
    with pytest.warns(CacheWarning, match="not writable"):
        cache = VariantCache(cache_dir)
    warm = run_audit(tiny_cnn, "0", [3, 5], cache=cache, **TRAIN)
    assert warm.settings["from_cache"] == 3 and warm.settings["trained"] == 1
    assert numbers(warm) == numbers(cold[1])
    assert len(list(cache.root.glob("*/*/meta.json"))) == 1
