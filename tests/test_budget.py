"""A time budget for seeds="auto" (`budget="10m"`): max_seeds is cut to what the first estimate says trains in
it, before any model trains; a budget too small for min_seeds is refused with what min_seeds would take."""

from __future__ import annotations

import pytest

from pytest_kernelbias import AuditConfigError, AuditSpec, TrainConfig, run_audit, synthfaces
from pytest_kernelbias._options import from_sources
from pytest_kernelbias.execution._budget import fit_max_seeds, parse_budget

from .conftest import tiny_cnn


@pytest.mark.parametrize("text, seconds", [("10m", 600.0), ("90s", 90.0), ("1.5h", 5400.0), ("45", 45.0),
                                           (120, 120.0), (" 2 min ", 120.0), (None, None)])
def test_durations_read_as_seconds(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("bad", ["ten minutes", "-5m", "0", "5d", float("inf"), True])
def test_a_duration_that_is_not_one_is_refused_with_the_forms_that_work(bad):
    with pytest.raises(AuditConfigError, match="budget"):
        parse_budget(bad)


def test_the_seeds_that_fit_count_cached_seeds_as_free_and_stay_within_the_design():
    assert fit_max_seeds(600, 50, 0, 3, 16) == 12  # 600 s / 50 s per seed of every level
    assert fit_max_seeds(600, 50, 5, 3, 16) == 16  # 5 seeds already cached, 12 more fit: capped at max_seeds
    assert fit_max_seeds(10_000, 1, 0, 3, 16) == 16
    with pytest.raises(AuditConfigError, match=r"fits 2 seeds per level, fewer than min_seeds=3, which would take "
                                               r"about 2.5 min here"):
        fit_max_seeds(100, 50, 0, 3, 16)


def test_a_budget_is_for_seeds_auto_and_is_checked_with_the_settings():
    with pytest.raises(AuditConfigError, match="budget='10m' sets how many seeds seeds='auto' may train"):
        AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], seeds=4, budget="10m")
    assert AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], budget="10m").recipe.budget == "10m"
    assert "seeds=auto within 10m" in from_sources({"budget": "10m"}, {}).header()
    with pytest.raises(AuditConfigError, match="is not a duration"):
        from_sources({}, {"budget": "soon"})


@pytest.mark.slow
def test_the_budget_cuts_max_seeds_before_training_and_an_undecided_verdict_says_how_long_it_would_take():
    lines: list[str] = []
    sets = dict(data=synthfaces(300, 0, "planted"), test_data=synthfaces(200, 0, "planted", split="test"),
                train_config=TrainConfig(epochs=1, batch_size=32), require_learning=False, spectral_cutoff=None,
                placebos=(), min_group_size=5, workers=1)
    from pytest_kernelbias.audit import prepare_plan as prepare
    from pytest_kernelbias.execution._estimate import first_estimate

    plan, job, _ = prepare(AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], seeds=2, **sets))
    per_seed = first_estimate(job, [v for v in plan.variants if v.seed == 0], 1)
    # About 30 seeds of both levels by this estimate. The audit times its own steps, which a shared machine's
    # load moves (measured: up to 8 times apart under pytest-xdist), so what it chose is checked against the
    # estimate it recorded, and max_seeds is far above what the budget allows either way.
    budget = 30 * per_seed
    result = run_audit(tiny_cnn, "0", [3, 5], budget=budget, max_seeds=48, threshold=1e-4, progress=lines.append,
                       **sets)
    first = next(line for line in lines if "budget" in line)
    assert lines.index(first) < next(i for i, line in enumerate(lines) if "trained" in line)  # before training
    record = result.sequential["budget"]
    assert record["max_seeds"] == fit_max_seeds(budget, record["per_seed"], 0, 3, 48)
    assert result.sequential["max_seeds"] == record["max_seeds"] and f"max_seeds={record['max_seeds']}" in first
    assert result.path.seeds <= record["max_seeds"]
    if result.path.verdict == "undecided" and record["seeds_to_settle"] is not None:
        assert record["seconds_to_settle"] == pytest.approx(record["seeds_to_settle"] * record["per_seed"])
        assert any("undecided within budget" in line for line in lines)


@pytest.mark.slow
def test_a_rerun_with_the_same_cache_runs_the_same_design(tmp_path):
    sets = dict(data=synthfaces(300, 0, "planted"), test_data=synthfaces(200, 0, "planted", split="test"),
                train_config=TrainConfig(epochs=1, batch_size=32), require_learning=False, spectral_cutoff=None,
                placebos=(), min_group_size=5, workers=1, progress=None, cache=tmp_path, max_seeds=40,
                seed_round=2, threshold=1e-4)
    first = run_audit(tiny_cnn, "0", [3, 5], budget="20s", **sets)
    again = run_audit(tiny_cnn, "0", [3, 5], budget="20s", **sets)  # the first audit's seeds are all cached now
    assert again.sequential["budget"] == first.sequential["budget"]  # the kept estimate, not a new timing
    assert again.path.seeds == first.path.seeds and again.effect.ci == first.effect.ci
