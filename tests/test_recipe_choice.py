"""The recipe an audit trains with, settled before training: the preset the model's normalization layers pick
(train_config="auto", the default), the user's own, and the lr probe's pick, cached and in every weights key."""

from __future__ import annotations

from torch import nn

from pytest_kernelbias import AuditSpec, TrainConfig, synthfaces
from pytest_kernelbias.plan import make_plan
from pytest_kernelbias.prepare import prepare

SETS = dict(data=synthfaces(200, 0, "planted"), test_data=synthfaces(100, 0, "planted", split="test"), seeds=2,
            min_group_size=5, progress=None)


def layer_norm_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(1, 8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 2))


def batch_norm_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 2))


def _resolved(model, **kw):
    prepared = prepare(AuditSpec.from_kwargs(model, "0", [3, 5], **{**SETS, **kw}))
    return prepared, make_plan(prepared), prepared.job


def test_the_default_recipe_is_the_preset_for_the_models_normalization():
    from pytest_kernelbias.training._presets import PRESETS

    spec, plan, job = _resolved(layer_norm_cnn)
    assert spec.recipe_source == "preset layernorm" and job.train_config == PRESETS["layernorm"]
    assert plan.variants[0].weights_spec["train"] == PRESETS["layernorm"].recipe()  # the key holds the recipe
    spec, _, job = _resolved(batch_norm_cnn)
    assert spec.recipe_source == "preset batchnorm" and job.train_config == TrainConfig()


def test_a_given_recipe_is_kept_as_given():
    given = TrainConfig(epochs=2, lr=1e-3)
    spec, _, job = _resolved(layer_norm_cnn, train_config=given)
    assert spec.recipe_source == "given" and job.train_config == given


def test_the_lr_probe_picks_from_its_grid_is_cached_and_its_pick_is_in_every_key(tmp_path):
    config = TrainConfig(epochs=1, batch_size=32)
    spec, plan, job = _resolved(batch_norm_cnn, train_config=config, lr_probe=True, cache=tmp_path)
    probe = spec.lr_probe
    assert probe["lr"] in probe["lrs"] and job.train_config.lr == probe["lr"] and not probe["from_cache"]
    again, plan_again, _ = _resolved(batch_norm_cnn, train_config=config, lr_probe=True, cache=tmp_path)
    assert again.lr_probe["from_cache"] and again.lr_probe["lr"] == probe["lr"]
    assert [v.key for v in plan_again.variants] == [v.key for v in plan.variants]
    if probe["lr"] != config.lr:  # the pick shapes the weights: another key than the asked lr's
        _, asked, _ = _resolved(batch_norm_cnn, train_config=config, cache=tmp_path)
        assert {v.key for v in asked.variants}.isdisjoint(v.key for v in plan.variants)


def test_the_lr_probe_pools_every_level_so_the_reference_does_not_choose_the_recipe(tmp_path):
    import numpy as np

    from pytest_kernelbias import KernelIntervention
    from pytest_kernelbias.execution._threads import audit_threads
    from pytest_kernelbias.training._lr_probe import lr_probe

    config = TrainConfig(epochs=1, batch_size=32)
    spec, plan, _ = _resolved(batch_norm_cnn, train_config=config, lr_probe=True)
    swapped, plan_swapped, _ = _resolved(batch_norm_cnn, train_config=config, lr_probe=True, reference=5)
    probe = spec.lr_probe
    assert probe["pooled_over"] == ["kernel_size=3", "kernel_size=5"]
    assert swapped.lr_probe["lr"] == probe["lr"]
    assert {v.key for v in plan_swapped.variants} == {v.key for v in plan.variants}  # the same models
    # Computed another way: each level's own probe, the losses averaged, on the audit's one thread as the audit
    # probes (a thread count changes how the losses' sums round).
    intervention = KernelIntervention(batch_norm_cnn, "0", [3, 5])
    with audit_threads():
        own = [lr_probe(lambda k=k: intervention.build(k, 0), SETS["data"], config, seed=0).losses for k in (3, 5)]
    assert probe["losses"] == list(np.mean(own, axis=0))
    assert probe["losses_by_level"] == {"kernel_size=3": list(own[0]), "kernel_size=5": list(own[1])}
