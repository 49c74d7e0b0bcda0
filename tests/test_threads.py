"""The same audit gives the same numbers on any thread or worker count (issue 14)."""

from __future__ import annotations

import json

import pytest
import torch

from pytest_kernelbias import TrainConfig, run_audit, synthfaces
from pytest_kernelbias.execution._threads import default_workers, usable_cores
from pytest_kernelbias.training._seed_batched import choose_strategy, clear_strategy_memo

from .conftest import tiny_cnn

XDIST_AUDIT = """
import json
from pytest_kernelbias import TrainConfig, run_audit, synthfaces

def test_audit(tmp_path):
    data = synthfaces(512, 0, "planted"), synthfaces(256, 0, "planted", "test")
    result = run_audit("mobilenetv3_small_050", "conv_stem", [3, 5], data=data[0], test_data=data[1], seeds=2,
                       placebos=(), spectral_cutoff=None, train_config=TrainConfig(epochs=2, batch_size=32),
                       require_learning=False, progress=None, cache=tmp_path)
    with open("xdist-run.json", "w") as out:
        json.dump([[r.as_dict() for r in result.outcomes.rows], result.effect.estimate, result.settings["workers"]],
                  out)

def test_busy_neighbour():
    sum(i * i for i in range(3_000_000))  # keeps the other xdist worker busy meanwhile
"""


@pytest.mark.slow
def test_a_thread_sensitive_timm_model_gives_identical_numbers_on_1_or_2_threads_and_2_workers(tmp_path, pytester):
    # mobilenetv3's depthwise and pointwise convs sum in a thread-dependent order: before the one-thread
    # policy this audit's effect moved from +0.0446 (1 thread) to +0.0079 (2 threads).
    data = synthfaces(512, 0, "planted"), synthfaces(256, 0, "planted", "test")
    settings = dict(data=data[0], test_data=data[1], seeds=2, placebos=(), spectral_cutoff=None,
                    train_config=TrainConfig(epochs=2, batch_size=32), require_learning=False, progress=None)
    runs = {}
    for threads, workers in ((1, 1), (2, 1), (2, 2)):
        torch.set_num_threads(threads)
        result = run_audit("mobilenetv3_small_050", "conv_stem", [3, 5], workers=workers,
                           cache=tmp_path / f"t{threads}w{workers}", **settings)
        assert torch.get_num_threads() == threads  # the caller's setting is given back
        assert result.settings["trained"] == 4
        runs[(threads, workers)] = ([r.as_dict() for r in result.outcomes.rows], result.effect.estimate)
    assert runs[(1, 1)] == runs[(2, 1)] == runs[(2, 2)]
    # Under pytest -n 2 the audit runs in an xdist worker with the default workers (cores shared out).
    pytester.makepyfile(XDIST_AUDIT)
    pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    rows, estimate, workers = json.loads((pytester.path / "xdist-run.json").read_text())
    assert workers == max(1, usable_cores() // 2)
    assert [rows, estimate] == json.loads(json.dumps(runs[(1, 1)]))  # bit-identical, floats by repr


def test_workers_default_to_the_usable_cores_shared_among_xdist_workers(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert default_workers() == usable_cores()
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert default_workers() == max(1, usable_cores() // 2)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(10 * usable_cores()))
    assert default_workers() == 1


def test_the_weights_key_records_the_thread_policy_and_cpu_capability(tmp_path):
    data = synthfaces(128, 0, "planted"), synthfaces(64, 0, "planted", "test")
    run_audit(tiny_cnn, "0", [3, 5], data=data[0], test_data=data[1], seeds=2, workers=1, cache=tmp_path,
              train_config=TrainConfig(epochs=1), require_learning=False, progress=None, min_group_size=1)
    metas = [json.loads(p.read_text()) for p in tmp_path.glob("*/*/meta.json")]
    assert len(metas) == 4
    numeric = metas[0]["spec"]["numeric"]
    assert numeric == {"threads": 1, "deterministic": torch.are_deterministic_algorithms_enabled(),
                       "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def test_the_seed_batching_decision_is_kept_in_the_cache_folder(tmp_path):
    data = synthfaces(64, 0, "planted")
    memo = tmp_path / "decisions" / "seed-batching.json"
    config = TrainConfig(epochs=1, batch_size=16)
    clear_strategy_memo()
    first = choose_strategy(tiny_cnn, data, config, "cpu", 2, probe_steps=1, memo=memo)
    assert first.sequential_img_per_s is not None and memo.exists()
    clear_strategy_memo()  # a later process: only the file remembers
    again = choose_strategy(tiny_cnn, data, config, "cpu", 2, probe_steps=1, memo=memo)
    assert again.strategy == first.strategy and "decided earlier, kept in" in again.reason
    assert again.vmap_img_per_s == first.vmap_img_per_s
    memo.write_text("[not, json")  # damage only costs a new measurement
    clear_strategy_memo()
    assert "decided earlier" not in choose_strategy(tiny_cnn, data, config, "cpu", 2, probe_steps=1,
                                                    memo=memo).reason
