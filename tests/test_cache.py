import json
import os
import threading
import warnings

import pytest
import torch

from pytest_kernelbias import TrainConfig, VariantCache, run_audit, synthfaces
from pytest_kernelbias.execution._store import CacheWarning, variant_key
from pytest_kernelbias.training import train

from .conftest import tiny_cnn

TRAIN = dict(data=synthfaces(300, 0, "planted"), test_data=synthfaces(200, 0, "planted", split="test"),
             train_config=TrainConfig(epochs=1, batch_size=32), progress=None, seeds=2, spectral_cutoff=None,
             # One epoch on 300 images tests the plumbing, not the task: these models stay near chance.
             require_learning=False)


def _weights(cache: VariantCache):
    return sorted(cache.root.glob("*/*/weights.safetensors"))


def test_second_audit_loads_every_variant_and_gives_identical_numbers(tmp_path):
    cold = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, **TRAIN)
    warm = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, **TRAIN)
    assert cold.settings["trained"] == 4 and warm.settings["from_cache"] == 4 and warm.settings["trained"] == 0
    assert [r.as_dict() for r in warm.outcomes.rows] == [r.as_dict() for r in cold.outcomes.rows]
    assert warm.effect.estimate == cold.effect.estimate


def test_key_changes_with_anything_that_changes_the_weights(tmp_path):
    run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, **TRAIN)
    other = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path,
                      **{**TRAIN, "train_config": TrainConfig(epochs=1, lr=1e-3)})
    assert other.settings["trained"] == 4
    assert variant_key({"a": 1}) != variant_key({"a": 2})


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_damaged_entries_are_retrained_with_a_warning_and_the_same_numbers(tmp_path, damage):
    cold = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, **TRAIN)
    cache = VariantCache(tmp_path)
    target = _weights(cache)[0]
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[-5] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        meta = target.parent / "meta.json"
        doc = json.loads(meta.read_text())
        doc["package"] = "0.0.0-other"
        meta.write_text(json.dumps(doc))
    with pytest.warns(CacheWarning, match="unusable.*retraining"):
        again = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, **TRAIN)
    assert again.settings["trained"] == 1 and again.settings["from_cache"] == 3
    assert again.effect.estimate == cold.effect.estimate


def test_unwritable_cache_folder_falls_back_to_a_temporary_one(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(CacheWarning, match="not writable"):
        cache = VariantCache(blocker / "cache")
    assert cache.root.exists() and cache.root != blocker / "cache"


def test_failed_write_leaves_no_partial_entry(tmp_path, monkeypatch):
    cache = VariantCache(tmp_path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pytest_kernelbias.execution._store.save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        cache.store("ab" * 32, tiny_cnn(), {})
    assert list(tmp_path.rglob("*.safetensors")) == []
    assert not any(p.name.startswith(".tmp") for p in tmp_path.rglob("*"))


def test_concurrent_requests_for_one_variant_train_it_once(tmp_path):
    key = "cd" * 32
    calls = []

    def fit(model):
        calls.append(1)
        return model

    results = []

    def worker():
        cache = VariantCache(tmp_path)  # separate instances, as separate workers would have
        torch.manual_seed(0)
        results.append(cache.get_or_train(key, tiny_cnn, fit, {}))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(calls) == 1 and sorted(hit for _, hit in results) == [False, True, True]


@pytest.mark.slow
def test_process_pool_gives_the_same_numbers_as_a_serial_run(tmp_path):
    torch.set_num_threads(1)  # workers run one thread each; same reduction order, same weights
    serial = run_audit(tiny_cnn, "0", [3, 5], **TRAIN)
    pooled = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, workers=2, **TRAIN)
    assert pooled.settings["trained"] == 4 and pooled.settings["from_cache"] == 0
    assert [r.as_dict() for r in pooled.outcomes.rows] == [r.as_dict() for r in serial.outcomes.rows]


@pytest.mark.slow
def test_a_pool_audit_starts_its_workers_while_it_prepares(tmp_path):
    # Before: the workers spawned when the first model was handed out, so every worker's import of torch and
    # first training step came after the audit's checks instead of beside them.
    from pytest_kernelbias.execution._pool import _SHARED, close_pool
    from pytest_kernelbias.prepare import prepare
    from pytest_kernelbias.spec import AuditSpec

    close_pool()
    prepared = prepare(AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], cache=tmp_path, workers=2,
                                             executor="pool", **TRAIN))
    assert prepared.executor.name == "pool"
    pool, started = _SHARED["pool"], _SHARED["started"]
    assert len(pool._processes) == 2  # both spawned before any model was planned
    pids = {f.result(timeout=120) for f in [pool.submit(os.getpid) for _ in range(8)]}
    assert started.value == 2 and pids <= set(pool._processes)  # each ran _init once, and serves tasks


def warning_trainer(model, data, seed):
    """A user's trainer that warns; module level, so pool workers can import it."""
    warnings.warn(f"warning_trainer: seed {seed} trained with a custom recipe", UserWarning)
    return train(model, data, seed, TRAIN["train_config"])


@pytest.mark.slow
def test_warnings_raised_in_pool_workers_reach_the_audits_process(tmp_path):
    # Before: they went to the workers' stderr, unseen by pytest's warning summary and by -W error.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pooled = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, workers=2, trainer=warning_trainer, **TRAIN)
    assert pooled.settings["trained"] == 4
    seen = sorted(str(w.message) for w in caught if "warning_trainer" in str(w.message))
    # Paired seeds: both levels of a seed train with the same order seed, so 2 distinct messages, 4 warnings.
    assert len(seen) == 4 and len(set(seen)) == 2
    assert all(w.category is UserWarning for w in caught if "warning_trainer" in str(w.message))


def test_pool_refuses_a_factory_workers_cannot_import_and_local_trains_it_in_process():
    from pytest_kernelbias import AuditConfigError

    with pytest.raises(AuditConfigError, match="`model` .* cannot be sent to worker processes"):
        run_audit(lambda: tiny_cnn(), "0", [3, 5], workers=2, executor="pool", **TRAIN)
    lines = []
    local = run_audit(lambda: tiny_cnn(), "0", [3, 5], workers=2, **{**TRAIN, "progress": lines.append})
    assert local.settings["trained"] == 4
    assert sum("training in this process on one thread, not in 2 workers" in line for line in lines) == 1


@pytest.mark.slow
def test_warm_audit_reuses_stored_evaluations_and_a_damaged_one_is_recomputed(tmp_path):
    cold = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, **TRAIN)
    evals = sorted(tmp_path.glob("*/*/eval-*.json"))
    assert len(evals) == 4
    arrays = evals[0].with_suffix(".safetensors")
    arrays.write_bytes(arrays.read_bytes()[:50])
    with pytest.warns(CacheWarning, match="cached evaluation .* is unusable"):
        warm = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, **TRAIN)
    assert warm.settings["from_cache"] == 4
    assert [r.as_dict() for r in warm.outcomes.rows] == [r.as_dict() for r in cold.outcomes.rows]
    assert warm.placebos["subgroup-shuffle"].estimate == cold.placebos["subgroup-shuffle"].estimate


@pytest.mark.slow
def test_a_worker_killed_mid_training_leaves_no_entry_and_the_next_run_trains_only_what_is_missing(
        tmp_path, monkeypatch):
    from pytest_kernelbias.errors import WorkerDiedError

    from .conftest import trainer_killed_once

    flag = tmp_path / "kill-next"
    flag.write_text("")
    monkeypatch.setenv("KB_KILL_FLAG", str(flag))  # spawned workers inherit the environment
    cache_dir = tmp_path / "cache"
    with pytest.raises(WorkerDiedError, match="run again to train only the missing ones"):
        run_audit(tiny_cnn, "0", [3, 5], cache=cache_dir, workers=2, trainer=trainer_killed_once, **TRAIN)
    cache = VariantCache(cache_dir)
    survivors = _weights(cache)
    assert len(survivors) < 4 and not flag.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # every entry left behind is whole: none is reported damaged
        rerun = run_audit(tiny_cnn, "0", [3, 5], cache=cache_dir, workers=2, trainer=trainer_killed_once, **TRAIN)
    assert rerun.settings["trained"] == 4 - len(survivors) and rerun.settings["from_cache"] == len(survivors)
    assert not list(cache_dir.glob("*/.tmp-*"))  # no half-written entry anywhere


@pytest.mark.slow
def test_seed_batched_audit_stores_every_seed_and_matches_sequential_training(tmp_path):
    # Weights agree to float rounding (tests/test_seed_batching.py bounds them); with these fixed seeds and
    # data no test prediction sits that close to its decision boundary, so the outcomes are identical.
    cfg = dict(epochs=1, batch_size=32, channels_last=False)
    sequential = run_audit(tiny_cnn, "0", [3, 5],
                           **{**TRAIN, "train_config": TrainConfig(**cfg, seed_batching="sequential")})
    lines = []
    batched = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path,
                        **{**TRAIN, "train_config": TrainConfig(**cfg, seed_batching="vmap"), "progress": lines.append})
    assert batched.settings["trained"] == 4 and any("(seed-batched)" in line for line in lines)
    metas = [json.loads(p.read_text()) for p in tmp_path.glob("*/*/meta.json")]
    assert len(metas) == 4 and all(m["seed_batched"] for m in metas)
    assert [r.as_dict() for r in batched.outcomes.rows] == [r.as_dict() for r in sequential.outcomes.rows]
    # How seeds were scheduled is not part of the key: a sequential audit loads the batched variants.
    loaded = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path,
                       **{**TRAIN, "train_config": TrainConfig(**cfg, seed_batching="sequential")})
    assert loaded.settings["from_cache"] == 4
    again = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, retrain=True,
                      **{**TRAIN, "train_config": TrainConfig(**cfg, seed_batching="vmap")})
    assert again.settings["trained"] == 4 and again.settings["from_cache"] == 0


@pytest.mark.slow
def test_auto_seed_batching_measures_both_strategies_and_says_which_it_chose(tmp_path):
    lines = []
    run_audit(tiny_cnn, "0", [3, 5], executor="seed-batched", cache=tmp_path, **{**TRAIN, "progress": lines.append})
    chosen = [line for line in lines if "seeds train" in line]
    assert len(chosen) == 2 and all("vmap/sequential = " in line for line in chosen)
    assert (tmp_path / "decisions" / "seed-batching.json").exists()


def test_local_skips_the_seed_batching_probe_on_cpu_and_says_so():
    lines = []
    run_audit(tiny_cnn, "0", [3, 5], workers=1, **{**TRAIN, "progress": lines.append})
    assert not any("seeds train" in line for line in lines)
    assert sum("seed batching skipped on CPU" in line for line in lines) == 1


@pytest.mark.slow
def test_a_pool_measures_stored_models_another_audit_trained_in_its_workers(tmp_path):
    from pytest_kernelbias import each
    from pytest_kernelbias.audit import _train_and_evaluate, evaluation_job
    from pytest_kernelbias.execution._pool import unmeasured
    from pytest_kernelbias.plan import make_plan
    from pytest_kernelbias.prepare import prepare
    from pytest_kernelbias.spec import AuditSpec

    torch.set_num_threads(1)  # workers run one thread each: the serial map below gives the same bits
    # With spectra, a map measures other layers than the single-layer audit: its evaluations are its own.
    kw = {**TRAIN, "spectral_cutoff": 0.5}
    run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, workers=2, **kw)
    prepared = prepare(AuditSpec.from_kwargs(tiny_cnn, each("all"), [3, 5], cache=tmp_path, workers=2,
                                             executor="pool", **kw))
    plan = make_plan(prepared)
    # Layer 0 at 3 is the map's "as built", layer 0 at 5 its first arm: both stored. The arm measures layer 0's
    # spectra as the single audit did (its evaluation is stored too); "as built" measures every arm's layer.
    assert [v.label for v in unmeasured(plan.variants, prepared.store, frozenset())] == [
        "audit as built seed 1/2", "audit as built seed 2/2"]
    ahead = prepared.executor.train_ahead(plan.variants, prepared.job, prepared.store, False, None,
                                          evaluation=evaluation_job(prepared))
    assert len(ahead.trained) == 2 and unmeasured(plan.variants, prepared.store, frozenset()) == []
    assert ahead.measured == {v.key for v in plan.variants if v.label.startswith("audit as built")}
    evaluations, _ = _train_and_evaluate(prepared, plan)  # reads what the workers stored
    assert sum(ev.from_cache for ev in evaluations.items) == 4 + 2  # the 2 just trained are stored too by now
    assert not any(ev.measured for ev in evaluations.items)  # nothing measured in this process
    # On another cache, the counts as the report gives them: the models measured in the workers are evaluated
    # by this audit though loaded; the arm's stored evaluation is read.
    run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path / "b", workers=2, **kw)
    lines: list[str] = []
    mapped = run_audit(tiny_cnn, each("all"), [3, 5], cache=tmp_path / "b", workers=2,
                       **{**kw, "progress": lines.append})
    assert (mapped.run.trained, mapped.run.from_cache, mapped.run.evaluated) == (2, 4, 2 + 2)
    # The workers' lines count the 2 trainings only; the 6 models' own lines follow, as the audit reads them.
    counts = [line.split("(")[-1].split(" models")[0] for line in lines if "in worker in" in line]
    assert counts == ["1/2", "2/2"], lines
    serial = run_audit(tiny_cnn, each("all"), [3, 5], workers=1, **kw)
    assert mapped.layer_map() == serial.layer_map()

