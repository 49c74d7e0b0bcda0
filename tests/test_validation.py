"""Bad input stops with the package's own error before the first model trains (issue 13, item 1).

Every audit here trains through a recording trainer: an error raised before
training leaves its list empty, which is the point of each test.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from pytest_kernelbias import (
    AuditConfigError,
    AuditSpec,
    Dilation,
    KernelBiasError,
    KernelSize,
    SynthFacesCNN,
    run_audit,
    synthfaces,
)
from pytest_kernelbias.audit import prepare_plan as prepare
from pytest_kernelbias.errors import (
    InputDataError,
    InputDataWarning,
    InterventionError,
    ModelOutputError,
    SmallSubgroupError,
)


@pytest.fixture(scope="module")
def sets():
    return synthfaces(96, 0, "planted", "train"), synthfaces(96, 0, "planted", "test")


class Recorder:
    """A trainer that records being called; these audits must stop before it is."""

    def __init__(self):
        self.calls = 0

    def __call__(self, model, data, seed):
        self.calls += 1
        return model


def audit(data, test, model=SynthFacesCNN, layer="conv1", levels=(3, 5), **kw):
    trainer = Recorder()
    settings = {"data": data, "test_data": test, "seeds": 2, "trainer": trainer, "progress": None, "placebos": (),
                "spectral_cutoff": None, "require_learning": False, "min_group_size": 1, **kw}
    try:
        return run_audit(model, layer, list(levels), **settings)
    finally:
        assert trainer.calls == 0, "the error came after a model trained"


def with_images(data, images):
    return replace(data, images=images)


def test_float_images_in_0_255_are_refused(sets):
    train, test = sets
    with pytest.raises(InputDataError, match=r"divide 0\.\.255 pixels by 255"):
        audit(with_images(train, train.images * 255), test)


def test_normalized_images_are_refused_and_told_to_move_normalization_into_the_model(sets):
    train, test = sets
    with pytest.raises(InputDataError, match="normalization inside"):
        audit(train, with_images(test, (test.images - 0.5) / 0.25))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("role", ["training", "test"])
def test_non_finite_pixels_in_either_set_are_refused(sets, bad, role):
    train, test = sets
    target = train if role == "training" else test
    images = target.images.clone()
    images[7, 1, 3, 4] = bad
    damaged = with_images(target, images)
    with pytest.raises(InputDataError, match=rf"the {role} set .* non-finite .*index \[7\]"):
        audit(damaged, test) if role == "training" else audit(train, damaged)


def test_uint8_images_are_scaled_to_0_1_with_a_warning(sets):
    train, test = sets
    as_bytes = with_images(train, (train.images * 255).round().to(torch.uint8))
    spec = AuditSpec.from_kwargs(SynthFacesCNN, "conv1", [3, 5], data=as_bytes, test_data=test, seeds=2,
                                 progress=None)
    with pytest.warns(InputDataWarning, match="uint8 pixels; they are divided by 255"):
        _plan, job, _loaders = prepare(spec)
    assert job.data.images.dtype == torch.float32
    # Rounding to bytes moves a pixel by at most half a step of 1/255.
    assert float((job.data.images - train.images).abs().max()) <= 0.5 / 255 + 1e-7


def test_other_integer_pixels_are_refused(sets):
    train, test = sets
    with pytest.raises(InputDataError, match=r"torch.int32 pixels; pass float images in \[0, 1\]"):
        audit(with_images(train, (train.images * 255).to(torch.int32)), test)


def test_train_and_test_image_sizes_must_match(sets):
    train, test = sets
    smaller = with_images(test, test.images[:, :, :16, :16].contiguous())
    with pytest.raises(InputDataError, match=r"training images are \(3, 32, 32\).*test images are \(3, 16, 16\)"):
        audit(train, smaller)


@pytest.mark.parametrize("label", [-1, -5])
def test_negative_labels_are_refused(sets, label):
    train, test = sets
    labels = train.labels.clone()
    labels[3] = label
    with pytest.raises(InputDataError, match=rf"negative label.*{label} at index 3"):
        audit(replace(train, labels=labels), test)


def test_a_label_the_model_cannot_output_is_refused(sets):
    train, test = sets
    labels = test.labels.clone()
    labels[0] = 4  # SynthFacesCNN() has 2 outputs
    with pytest.raises(ModelOutputError, match="labels go up to 4 but the model outputs 2 logits"):
        audit(train, replace(test, labels=labels), model=lambda: SynthFacesCNN())


def test_float_labels_are_refused(sets):
    train, test = sets
    with pytest.raises(InputDataError, match="torch.float32 labels; pass int64 class indices"):
        audit(replace(train, labels=train.labels.float()), test)


class TupleOut(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.net, self.kind = SynthFacesCNN(), kind

    def forward(self, x):
        logits = self.net(x)
        if self.kind == "tuple" or (self.kind == "tuple-in-train" and self.training):
            return logits, logits
        if self.kind == "dict":
            return {"logits": logits}
        if self.kind == "one-logit":
            return logits[:, :1]
        return logits


@pytest.mark.parametrize("kind, message", [
    ("tuple", "returns tuple in train mode"), ("tuple-in-train", "returns tuple in train mode"),
    ("dict", "returns dict in train mode"), ("one-logit", r"shape \(4, 1\).*C >= 2"),
])
def test_a_forward_that_does_not_return_one_logits_tensor_is_refused(sets, kind, message):
    train, test = sets
    with pytest.raises(ModelOutputError, match=message):
        audit(train, test, model=lambda: TupleOut(kind), layer="net.conv1")


def test_a_forward_that_fails_on_the_images_is_refused(sets):
    train, test = sets
    with pytest.raises(KernelBiasError, match="fails"):
        audit(train, test, model=lambda: SynthFacesCNN(in_channels=1))


def test_a_factory_that_returns_none_is_refused(sets):
    train, test = sets
    with pytest.raises(ModelOutputError, match="returned NoneType, not an nn.Module"):
        audit(train, test, model=lambda: None)


@pytest.mark.parametrize("layer", [None, 3, [], [1, 2], ""])
def test_a_layer_of_the_wrong_type_is_refused(sets, layer):
    train, test = sets
    with pytest.raises(AuditConfigError, match="layer"):
        audit(train, test, layer=layer)


def test_one_subgroup_is_refused(sets):
    train, test = sets
    one = {"skin_tone": ["x"] * len(test)}
    with pytest.raises(InputDataError, match="give 1 subgroup.*two or more"):
        audit(replace(train, attributes=one), replace(test, attributes=one))


@pytest.mark.parametrize("setting", [dict(attributes=[]), dict(perturbation=[]), dict(perturbation={})])
def test_empty_attributes_or_perturbations_are_refused(sets, setting):
    train, test = sets
    with pytest.raises(AuditConfigError):
        audit(train, test, **setting)


def test_a_kernel_larger_than_the_padded_input_is_refused(sets):
    train, test = sets
    # conv1 of SynthFacesCNN sees the 32 x 32 image with padding 1: 34 pixels at most.
    with pytest.raises(InterventionError, match=r"spans 41 pixels.*padded by 1 to 34.*at most 34"):
        audit(train, test, levels=(3, 41))
    with pytest.raises(InterventionError, match=r"spans 37 pixels \(dilation 2\)"):
        audit(train, test, levels=(3, KernelSize(19) & Dilation(2)))


def test_the_largest_kernel_that_fits_is_accepted(sets):
    train, test = sets
    spec = AuditSpec.from_kwargs(SynthFacesCNN, "conv1", [3, 33], data=train, test_data=test, seeds=2,
                                 progress=None, min_group_size=1)
    plan, _job, _loaders = prepare(spec)
    assert len(plan.variants) == 4


def test_small_test_subgroups_warn_by_default_and_can_be_an_error(sets):
    train, test = sets
    attributes = {"skin_tone": ["dark"] + ["light"] * (len(test) - 1)}
    lonely = replace(test, attributes=attributes)
    spec = AuditSpec.from_kwargs(SynthFacesCNN, "conv1", [3, 5], data=train, test_data=lonely, seeds=2,
                                 progress=None, min_group_size=30)
    with pytest.warns(InputDataWarning, match=r"'skin_tone=dark' has 1\b.*0.5/sqrt\(n\)"):
        prepare(spec)
    with pytest.raises(SmallSubgroupError, match="min_group_size=30"):
        audit(train, lonely, min_group_size=30, on_small_group="error")


def test_test_labels_absent_from_training_warn(sets):
    train, test = sets
    labels = test.labels.clone()
    labels[:2] = 2
    spec = AuditSpec.from_kwargs(lambda: SynthFacesCNN(num_classes=3), "conv1", [3, 5], data=train,
                                 test_data=replace(test, labels=labels), seeds=2, progress=None, min_group_size=1)
    with pytest.warns(InputDataWarning, match=r"test label\(s\) \[2\] never occur in the training set"):
        prepare(spec)


@pytest.mark.parametrize("setting", [dict(min_group_size=0), dict(min_group_size=2.5),
                                     dict(on_small_group="ignore")])
def test_small_group_settings_are_checked(sets, setting):
    train, test = sets
    with pytest.raises(AuditConfigError):
        audit(train, test, **setting)
