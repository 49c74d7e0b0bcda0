"""Reports, baselines and cache files get the mode the user's umask gives any new file, not the private
0600/0700 of mkstemp, mkdtemp and safetensors (issue 15)."""

import os
import stat

import numpy as np
import pytest
import torch

from pytest_kernelbias.execution._records import current_umask
from pytest_kernelbias.execution._store import VariantCache
from pytest_kernelbias.reporting._baseline import save_baseline
from pytest_kernelbias.reporting._files import write_atomic
from pytest_kernelbias.reporting._json import write_json

RECORD = {"test": "t.py::test", "data": "d", "effects": [{"contrast": "k=5 vs k=3", "perturbation": "p", "effect": 0.1,
                                                          "ci_low": 0.0, "ci_high": 0.2, "p_value": 0.5, "n": 2}]}


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_umask_is_read_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_reports_and_baselines_honour_the_umask(tmp_path, umask):
    files = [write_atomic(tmp_path / "plain.txt", "text", "file"),
             write_json(tmp_path / "report.json", [RECORD], {}),
             save_baseline(tmp_path, "main", [RECORD])]
    for path in files:
        assert _mode(path) == 0o666 & ~umask, path
    assert _mode(tmp_path / ".kernel-audit" / "baselines") == 0o777 & ~umask
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


def test_cache_entries_and_temporary_caches_honour_the_umask(tmp_path, umask):
    cache = VariantCache(tmp_path / "cache")
    key = "ab" * 32
    entry = cache.store_state(key, {"w": torch.ones(2)}, {"level": "k=3"})
    cache.store_evaluation(key, "e1", {"clean": np.zeros(3, dtype=np.int64)}, {"note": "x"})
    files = list(entry.iterdir())
    assert {p.suffix for p in files} == {".safetensors", ".json"} and len(files) == 4
    for path in files:
        assert _mode(path) == 0o666 & ~umask, path.name
    assert _mode(entry) == 0o777 & ~umask
    assert cache.load_state(key)["w"].tolist() == [1.0, 1.0]  # still a valid entry
    temporary = VariantCache.temporary_cache()
    assert _mode(temporary.root) == 0o777 & ~umask
