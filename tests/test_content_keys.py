"""Stored state is keyed by content (issue 23, item 1): changing any one thing that shapes a number changes the
key it is stored under, whatever the name. Properties over every built-in perturbation's parameters, every
TrainConfig field and every data tensor."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_kernelbias import (
    JPEG,
    AuditSpec,
    BandPass,
    Compose,
    Downsample,
    GaussianBlur,
    GaussianNoise,
    HighPass,
    LowPass,
    SubgroupDataset,
    TrainConfig,
    synthfaces,
)
from pytest_kernelbias.audit import prepare_plan as prepare
from pytest_kernelbias.fingerprints import perturbation_fingerprint as fingerprint_on
from pytest_kernelbias.fingerprints import perturbation_probe
from pytest_kernelbias.perturbations import GaussianLowPass

from .conftest import tiny_cnn

PROBE = perturbation_probe(torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)))


def perturbation_fingerprint(p) -> dict:
    return fingerprint_on(p, PROBE)


fractions = st.floats(0.05, 0.95, allow_nan=False)
positive = st.floats(0.1, 4.0, allow_nan=False)
flags = st.booleans()
# One constructor per built-in perturbation, drawing every parameter it takes.
BUILT_IN = {
    "LowPass": st.builds(LowPass, fractions, flags),
    "HighPass": st.builds(HighPass, fractions, flags),
    "BandPass": st.tuples(fractions, fractions, flags).filter(lambda t: t[0] < t[1]).map(lambda t: BandPass(*t)),
    "GaussianLowPass": st.builds(GaussianLowPass, positive, flags),
    "GaussianBlur": st.builds(GaussianBlur, positive, flags, st.sampled_from(["reflect", "replicate", "zeros"])),
    "Downsample": st.builds(Downsample, st.floats(1.5, 4.0), flags),
    "GaussianNoise": st.builds(GaussianNoise, st.floats(0.01, 0.3), st.integers(0, 2**31), flags),
    "JPEG": st.builds(JPEG, st.integers(1, 100), flags),
}


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_two_built_in_perturbations_share_a_key_exactly_when_their_parameters_are_equal(kind, data):
    a, b = data.draw(BUILT_IN[kind]), data.draw(BUILT_IN[kind])
    same = vars(a) == vars(b)
    assert (perturbation_fingerprint(a) == perturbation_fingerprint(b)) == same


@pytest.mark.parametrize("kind", ["LowPass", "HighPass", "GaussianLowPass", "GaussianBlur", "GaussianNoise"])
def test_the_next_float_of_a_parameter_is_another_key(kind):
    first = {"LowPass": LowPass(0.4), "HighPass": HighPass(0.4), "GaussianLowPass": GaussianLowPass(1.0),
             "GaussianBlur": GaussianBlur(1.0), "GaussianNoise": GaussianNoise(0.05)}[kind]
    attr = {"LowPass": "cutoff", "HighPass": "cutoff", "GaussianLowPass": "sigma", "GaussianBlur": "sigma",
            "GaussianNoise": "std"}[kind]
    nudged = type(first)(math.nextafter(getattr(first, attr), math.inf))
    assert perturbation_fingerprint(first) != perturbation_fingerprint(nudged)  # no rounding through :g


def test_composed_perturbations_are_keyed_by_their_parts_and_order():
    composed = (Compose(LowPass(0.4), JPEG(50)), Compose(JPEG(50), LowPass(0.4)), Compose(LowPass(0.4), JPEG(51)),
                Compose(LowPass(0.41), JPEG(50)))
    keys = {str(perturbation_fingerprint(p)) for p in composed}
    assert len(keys) == 4


# ---------------------------------------------------------------- the plan's keys
TRAIN, TEST = synthfaces(48, 0, "planted", "train"), synthfaces(48, 0, "planted", "test")


def plan_keys(train=TRAIN, test=TEST, config=TrainConfig(epochs=1, batch_size=16), **kw):
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], data=train, test_data=test, train_config=config, seeds=2,
                                 progress=None, workers=1, min_group_size=1, **kw)
    plan = prepare(spec)[0]
    return [v.key for v in plan.variants], [v.eval_key for v in plan.variants]


BASE = plan_keys()
# A second value of every TrainConfig field; seed_batching decides only how seeds are scheduled (same weights).
OTHER = {"epochs": 2, "batch_size": 17, "lr": math.nextafter(3e-3, 1.0), "weight_decay": 0.0, "optimizer": "sgd",
         "amp": False, "channels_last": False, "compile": True, "warmup": 0.1, "label_smoothing": 0.1}


def test_every_train_config_field_that_shapes_weights_is_in_the_key():
    assert {f.name for f in dataclasses.fields(TrainConfig)} == set(OTHER) | {"seed_batching"}
    for name, value in OTHER.items():
        config = dataclasses.replace(TrainConfig(epochs=1, batch_size=16), **{name: value})
        weights, _ = plan_keys(config=config)
        assert not set(weights) & set(BASE[0]), f"changing {name} kept a weights key"


def _with(data: SubgroupDataset, images=None, labels=None, attributes=None) -> SubgroupDataset:
    return SubgroupDataset(data.images if images is None else images, data.labels if labels is None else labels,
                           dict(data.attributes) if attributes is None else attributes, name=data.name)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 47), channel=st.integers(0, 2), row=st.integers(0, 31), col=st.integers(0, 31),
       which=st.sampled_from(["train", "test"]))
def test_one_pixel_changed_in_either_set_changes_the_keys_it_shapes(index, channel, row, col, which):
    data = TRAIN if which == "train" else TEST
    images = data.images.clone()
    images[index, channel, row, col] = 0.5 if float(images[index, channel, row, col]) != 0.5 else 0.25
    weights, evals = plan_keys(**{which: _with(data, images=images)})
    if which == "train":
        assert not set(weights) & set(BASE[0])  # other training data: other models
    else:
        assert weights == BASE[0] and not set(evals) & set(BASE[1])  # same models, other predictions


@settings(max_examples=4, deadline=None)
@given(index=st.integers(0, 47))
def test_one_label_or_one_attribute_value_changed_changes_the_key(index):
    labels = TRAIN.labels.clone()
    labels[index] = 1 - labels[index]
    assert not set(plan_keys(train=_with(TRAIN, labels=labels))[0]) & set(BASE[0])
    attributes = {a: list(v) for a, v in TEST.attributes.items()}
    attributes["gender"][index] = "f" if attributes["gender"][index] != "f" else "m"
    assert not set(plan_keys(test=_with(TEST, attributes=attributes))[1]) & set(BASE[1])


def test_a_perturbation_parameter_changes_the_evaluation_key_under_the_same_name():
    _, first = plan_keys(perturbation={"blur": GaussianBlur(1.0)})
    _, second = plan_keys(perturbation={"blur": GaussianBlur(2.0)})
    _, renamed = plan_keys(perturbation={"smooth": GaussianBlur(1.0)})
    assert not set(first) & set(second)
    assert set(first) != set(renamed)  # the name labels the stored conditions, so it is in the key too


def test_a_kernel_level_and_the_intervened_layer_are_in_the_weights_key_and_one_model_has_one_key():
    weights, _ = plan_keys()
    assert len(set(weights)) == len(weights)  # every (level, seed) its own key
    other_layer = AuditSpec.from_kwargs(tiny_cnn, "3", [3, 5], data=TRAIN, test_data=TEST, seeds=2, progress=None,
                                        workers=1, min_group_size=1, train_config=TrainConfig(epochs=1, batch_size=16))
    other = prepare(other_layer)[0].variants  # in the same order: each seed's levels 3, 5
    # kernel_size=5 on layer 3 is another model than on layer 0: other keys
    assert [v.key != key for v, key in zip(other, weights) if v.level == 5] == [True, True]
    # kernel_size=3 is both layers as built: the same untrained model, data, order and recipe, so one key,
    # and an audit of either layer finds the other's trained weights instead of training them again
    assert [v.key == key for v, key in zip(other, weights) if v.level == 3] == [True, True]


def test_keys_do_not_depend_on_the_torch_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert plan_keys() == BASE
    finally:
        torch.set_num_threads(before)


def test_an_audit_trains_only_the_models_another_audit_has_not_and_reports_what_a_fresh_cache_reports(tmp_path):
    from pytest_kernelbias import each, run_audit

    # Spectra on: a stored evaluation carries the level label of the audit that measured it, and must be read
    # under this audit's own labels.
    kw = dict(data=synthfaces(256, 0, "planted"), test_data=synthfaces(128, 0, "planted", split="test"), seeds=2,
              workers=1, train_config=TrainConfig(epochs=1, batch_size=32), require_learning=False, progress=None,
              min_group_size=1)
    single = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path / "shared", **kw)
    shared = run_audit(tiny_cnn, each("all"), [3, 5], cache=tmp_path / "shared", **kw)
    fresh = run_audit(tiny_cnn, each("all"), [3, 5], cache=tmp_path / "fresh", **kw)
    # Layer 0 at 3 is the map's "as built", layer 0 at 5 its first arm: 2 models a seed already trained.
    assert single.run.trained == 4 and (shared.run.trained, shared.run.from_cache) == (2, 4)
    assert fresh.run.trained == 6
    assert shared.layer_map() == fresh.layer_map()
    assert [r.as_dict() for r in shared.outcomes.rows] == [r.as_dict() for r in fresh.outcomes.rows]
    assert shared.spectral_effects.keys() == fresh.spectral_effects.keys()


def lazy_cnn() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.LazyLinear(2))


def test_a_model_with_a_lazy_layer_is_keyed_by_its_intervened_layers_init_too():
    # The untrained variant's state is digested after a probe forward gives the lazy layer its shape: without it
    # the plan could not read the state, and audits differing only in how the new kernel starts would share keys.
    keys = {}
    for init in ("fresh", "transfer"):
        spec = AuditSpec.from_kwargs(lazy_cnn, "0", [3, 5], data=TRAIN, test_data=TEST, seeds=2, progress=None,
                                     workers=1, min_group_size=1, init=init,
                                     train_config=TrainConfig(epochs=1, batch_size=16))
        keys[init] = [v.key for v in prepare(spec)[0].variants]  # (seed 0: 3, 5), (seed 1: 3, 5)
    assert keys["fresh"][0::2] == keys["transfer"][0::2]  # kernel_size=3 is the layer as built: one model
    assert not set(keys["fresh"][1::2]) & set(keys["transfer"][1::2])  # the 5x5 kernel starts otherwise
