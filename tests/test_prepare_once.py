"""An audit is prepared once: a seeds="auto" audit's later looks plan, train, evaluate and analyze, and nothing
else runs again (the checks' throwaway builds, the recipe's reference build, the fingerprints, the first
estimate). Counted by the model factory's calls: three looks make exactly the calls of one fixed audit on the
same seeds (before, 52 against 24 here; each variant's key now adds one build of it, in both)."""

from __future__ import annotations

from torch import nn

from pytest_kernelbias import LowPass, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.plan import make_plan
from pytest_kernelbias.prepare import prepare
from pytest_kernelbias.spec import AuditSpec

CALLS: list[int] = []


def counted_cnn() -> nn.Module:
    CALLS.append(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))


SETS = dict(data=synthfaces(200, 0, "planted"), test_data=synthfaces(100, 0, "planted", split="test"),
            perturbation=LowPass(0.4), train_config=TrainConfig(epochs=1, batch_size=32), device="cpu",
            require_learning=False, workers=1, spectral_cutoff=None, placebos=(), min_group_size=5)


def test_three_looks_build_the_model_as_often_as_one_fixed_audit_on_the_same_seeds():
    CALLS.clear()
    # A threshold this small leaves the family undecided at every look, up to max_seeds (fixed seeds: the same
    # path every run).
    auto = run_audit(counted_cnn, "0", [3, 5], seeds="auto", min_seeds=3, max_seeds=5, threshold=0.005, **SETS)
    looks, calls_auto = len(auto.sequential["looks"]), len(CALLS)
    CALLS.clear()
    fixed = run_audit(counted_cnn, "0", [3, 5], seeds=auto.path.seeds, threshold=0.005, **SETS)
    assert looks == 3 and auto.path.seeds == 5 and auto.run.trained == fixed.run.trained == 10
    assert calls_auto == len(CALLS)
    # The looks' models are the fixed audit's: the same seeds, the same weights, the same outcomes.
    assert auto.outcomes.rows == fixed.outcomes.rows


def test_a_prepared_audit_plans_any_seed_count_with_the_keys_a_fresh_preparation_gives():
    spec = AuditSpec.from_kwargs(counted_cnn, "0", [3, 5], seeds="auto", min_seeds=3, max_seeds=5, **SETS)
    prepared = prepare(spec)
    CALLS.clear()
    plans = {n: make_plan(prepared, n) for n in (3, 4, 5)}
    # A variant's key holds its untrained model's digests: each (level, seed) is built once for it, however many
    # looks plan it, and everything else the keys hold was fingerprinted once, when the audit was prepared.
    assert len(CALLS) == 2 * 5
    make_plan(prepared, 5)
    assert len(CALLS) == 2 * 5
    for n, plan in plans.items():
        assert {v.seed for v in plan.variants} == set(range(n)) and len(plan.variants) == 2 * n
        assert [v.key for v in plan.variants] == [v.key for v in make_plan(prepare(spec), n).variants]
    # A later look extends an earlier one: the first seeds keep their keys, so the store serves them.
    assert {v.key for v in plans[3].variants} < {v.key for v in plans[5].variants}


def test_preparing_runs_on_the_audits_one_thread_and_restores_the_callers(monkeypatch):
    import torch

    from pytest_kernelbias import prepare as prepare_module
    from pytest_kernelbias.execution._threads import AUDIT_THREADS

    seen: list[int] = []
    real = prepare_module.key_bases

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())  # the fingerprints' forward passes round by the thread count
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "key_bases", spy)
    spec = AuditSpec.from_kwargs(counted_cnn, "0", [3, 5], seeds=2, **SETS)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        prepare(spec)
        assert seen == [AUDIT_THREADS] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
