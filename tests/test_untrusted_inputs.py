"""Every input the audit cannot trust ends in a package error that names the fix, before training where it
can be seen before training (issue 23, item 2). Each test meets the case as a user would."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch
from torch import nn

from pytest_kernelbias import (
    AuditConfigError,
    KernelIntervention,
    Perturbation,
    Stride,
    SubgroupDataset,
    SynthFacesCNN,
    from_tensors,
    from_torch_dataset,
    run_audit,
    synthfaces,
)
from pytest_kernelbias.errors import (
    DatasetFormatError,
    InputDataError,
    InputDataWarning,
    InterventionError,
    ModelOutputError,
    PerturbationError,
)


@pytest.fixture(scope="module")
def sets():
    return synthfaces(96, 0, "planted", "train"), synthfaces(96, 0, "planted", "test")


class Recorder:
    """A trainer that counts its calls and returns what `answer(model)` gives (the model itself by default)."""

    def __init__(self, answer=lambda model: model):
        self.calls, self.answer = 0, answer

    def __call__(self, model, data, seed):
        self.calls += 1
        return self.answer(model)


def audit(sets, model=SynthFacesCNN, levels=(3, 5), trainer=None, **kw):
    train, test = sets
    settings = {"data": train, "test_data": test, "seeds": 2, "progress": None, "placebos": (), "workers": 1,
                "spectral_cutoff": None, "require_learning": False, "min_group_size": 1, **kw}
    return run_audit(model, "conv1", list(levels), trainer=trainer or Recorder(), **settings)


def refused_before_training(sets, error, match, **kw):
    trainer = Recorder()
    with pytest.raises(error, match=match):
        audit(sets, trainer=trainer, **kw)
    assert trainer.calls == 0, "the error came after a model trained"


# ---------------------------------------------------------------- perturbations
class NaNOut(Perturbation):
    def apply(self, x):
        return x / 0 * 0


class Scaled(Perturbation):
    def apply(self, x):
        return x * 255


@pytest.mark.parametrize("perturbation, error, match", [
    (NaNOut(), PerturbationError, "returns non-finite pixels"),
    (Scaled(), PerturbationError, r"returns pixels in \[0, 2\d\d\].*check its scale"),
    (lambda x: x, AuditConfigError, "is a plain function; subclass Perturbation"),
    ("lowpass", AuditConfigError, "is a name, not a perturbation; pass the object"),
    ([0.4], AuditConfigError, "is a float, not a Perturbation"),
])
def test_a_perturbation_the_audit_cannot_trust_is_refused_before_training(sets, perturbation, error, match):
    refused_before_training(sets, error, match, perturbation=perturbation)


# ---------------------------------------------------------------- models, factories, trainers
class Tied(nn.Module):
    """One conv registered under two names and applied twice (weight tying)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.again = self.conv1
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(self.again(torch.relu(self.conv1(x))).mean((2, 3)))


def test_a_tied_conv_is_intervened_at_every_place_it_is_used_and_stays_tied():
    factory = KernelIntervention(Tied, "conv1", [3, 5], input_size=(1, 3, 16, 16))
    model = factory.build(5, seed=0)
    assert model.conv1 is model.again and model.conv1.kernel_size == (5, 5)
    assert factory.build(3, seed=0).again.kernel_size == (3, 3)


def test_an_audit_of_a_tied_conv_passes_the_pairing_check(sets):
    trainer = Recorder()
    audit(sets, model=Tied, trainer=trainer)  # the tied name is inside the intervention, not "unchanged"
    assert trainer.calls == 4


@pytest.mark.parametrize("answer, said", [(lambda model: None, "returned None"),
                                          (lambda model: SynthFacesCNN(), "returned another SynthFacesCNN")])
def test_a_trainer_that_returns_another_model_stops_at_its_first_model(sets, answer, said):
    trainer = Recorder(answer)
    with pytest.raises(ModelOutputError, match=f"{said} .* not the model it was given; .*Train the given model"):
        audit(sets, trainer=trainer)
    assert trainer.calls == 1


def test_a_factory_that_returns_one_object_every_call_is_refused(sets):
    one = SynthFacesCNN()
    refused_before_training(sets, ModelOutputError, "returns the same module object on every call",
                            model=lambda: one)


def _random_bias():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2))
    nn.init.constant_(model[4].bias, random.random())  # Python's generator: the audit's seed does not fix it
    return model


def test_a_factory_with_randomness_outside_the_seed_is_refused(sets):
    trainer = Recorder()
    with pytest.raises(ModelOutputError, match="two builds of the same seed gave different weights"):
        run_audit(_random_bias, "0", [3, 5], data=sets[0], test_data=sets[1], seeds=2, progress=None,
                  placebos=(), workers=1, spectral_cutoff=None, require_learning=False, min_group_size=1,
                  trainer=trainer)
    assert trainer.calls == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.bfloat16])
def test_a_model_in_another_float_dtype_is_refused_with_the_conversion(sets, dtype):
    refused_before_training(sets, ModelOutputError, rf"\['{dtype}'\] weights; .*model.float\(\)",
                            model=lambda: SynthFacesCNN().to(dtype))


class AssertsWidth(nn.Module):
    """A forward that asserts its feature map size, as many hand-written heads do."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4 * 32 * 32, 2)

    def forward(self, x):
        y = self.conv1(x)
        assert y.shape[-1] == 32
        return self.head(y.flatten(1))


def test_a_forward_that_asserts_under_a_stride_level_names_the_stride(sets):
    trainer = Recorder()
    with pytest.raises(InterventionError, match=r"changed stride fails .*AssertionError.*AdaptiveAvgPool2d"):
        run_audit(AssertsWidth, "conv1", [Stride(1), Stride(2)], data=sets[0], test_data=sets[1], seeds=2,
                  progress=None, workers=1, trainer=trainer)
    assert trainer.calls == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_by_the_package(sets):
    refused_before_training(sets, AuditConfigError, "torch sees no CUDA GPU here.*use device='cpu'", device="cuda")


# ---------------------------------------------------------------- bounded settings
def test_a_kernel_far_beyond_the_input_is_refused_before_any_allocation(sets):
    refused_before_training(sets, InterventionError, "kernel_size=1000000 spans 1000000 pixels",
                            levels=(3, 10**6))


def test_a_huge_kernel_is_refused_by_size_even_where_the_input_is_unknown():
    with pytest.raises(InterventionError, match=r"gives \d.* weights in this one layer"):
        KernelIntervention(lambda: nn.Sequential(nn.Conv2d(64, 64, 3), nn.Flatten()), "0", [3, 4097]).build(4097, 0)


@pytest.mark.parametrize("setting", [{"seeds": 2**40}, {"seeds": "auto", "max_seeds": 2**40}])
def test_a_seed_count_beyond_any_audit_is_refused_before_the_plan(sets, setting):
    refused_before_training(sets, AuditConfigError, "is more than 1000 per level", **setting)


# ---------------------------------------------------------------- images and splits
def test_a_test_set_equal_to_the_training_set_is_refused(sets):
    refused_before_training(sets, InputDataError, "every test image is a training image", test_data=sets[0])


def test_a_test_set_that_shares_some_training_images_warns_with_the_count(sets):
    train, test = sets
    mixed = SubgroupDataset(torch.cat([test.images[:90], train.images[:6]]), test.labels,
                            dict(test.attributes), name="mixed")
    with pytest.warns(InputDataWarning, match=r"6 of the 96 test images also occur in the training set"):
        audit(sets, test_data=mixed)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.bfloat16])
def test_images_in_another_float_dtype_are_converted_with_a_warning(sets, dtype):
    train, test = sets
    low = [SubgroupDataset(d.images.to(dtype), d.labels, dict(d.attributes), name=d.name) for d in sets]
    with pytest.warns(InputDataWarning, match=f"has {dtype} pixels; they are converted to float32"):
        result = audit(sets, data=low[0], test_data=low[1])
    assert result.settings["trained"] == 4


def test_channels_last_images_are_refused_with_the_permute(sets):
    nhwc = [SubgroupDataset(d.images.permute(0, 2, 3, 1).contiguous(), d.labels, dict(d.attributes)) for d in sets]
    refused_before_training(sets, InputDataError, r"channels-last .*images.permute\(0, 3, 1, 2\)",
                            data=nhwc[0], test_data=nhwc[1])


# ---------------------------------------------------------------- in-memory loaders
def test_from_tensors_refuses_text_labels_and_fractional_labels_instead_of_truncating(sets):
    train = sets[0]
    with pytest.raises(DatasetFormatError, match="label 'a' at index 0 is not a class index"):
        from_tensors(train.images[:4], ["a", "b", "a", "b"], {"g": list("xyxy")})
    with pytest.raises(DatasetFormatError, match="label 1.7 at index 1 is not a whole number"):
        from_tensors(train.images[:4], torch.tensor([1.0, 1.7, 0.0, 0.0]), {"g": list("xyxy")})
    whole = from_tensors(train.images[:4], torch.tensor([1.0, 0.0, 0.0, 1.0]), {"g": list("xyxy")})
    assert whole.labels.tolist() == [1, 0, 0, 1]


class Items(torch.utils.data.Dataset):
    """A map-style dataset of 8 items whose item form and failures are set per test."""

    def __init__(self, item, length=8):
        self.item, self.length = item, length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if i >= 8:
            raise IndexError("list index out of range")
        return self.item(i)


def _chw(i):
    return torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(i))


def test_from_torch_dataset_reads_hwc_arrays_as_the_same_images_as_chw_tensors():
    tensors = from_torch_dataset(Items(lambda i: (_chw(i), i % 2)), lambda i, s: {"g": i % 2})
    arrays = from_torch_dataset(Items(lambda i: (_chw(i).permute(1, 2, 0).numpy(), i % 2)), lambda i, s: {"g": i % 2})
    assert torch.equal(tensors.images, arrays.images) and torch.equal(tensors.labels, arrays.labels)


def test_from_torch_dataset_reads_dict_samples_by_their_keys():
    plain = from_torch_dataset(Items(lambda i: (_chw(i), i % 2)), lambda i, s: {"g": i % 2})
    dicts = from_torch_dataset(Items(lambda i: {"img": _chw(i), "y": i % 2}), lambda i, s: {"g": i % 2},
                               keys=("img", "y"))
    assert torch.equal(plain.images, dicts.images) and torch.equal(plain.labels, dicts.labels)
    with pytest.raises(DatasetFormatError, match=r"item 0 is a dict with keys \['img', 'y'\].*keys="):
        from_torch_dataset(Items(lambda i: {"img": _chw(i), "y": i % 2}), lambda i, s: {"g": i % 2})


def test_from_torch_dataset_names_the_item_that_fails_and_a_length_that_lies():
    def broken(i):
        if i == 5:
            raise ValueError("cannot decode photo_5.jpg")
        return _chw(i), i % 2
    with pytest.raises(DatasetFormatError, match="item 5 of 8 raises ValueError: cannot decode photo_5.jpg"):
        from_torch_dataset(Items(broken), lambda i, s: {"g": i % 2})
    with pytest.raises(DatasetFormatError, match="item 8 raises IndexError .* although len"):
        from_torch_dataset(Items(lambda i: (_chw(i), i % 2), length=10), lambda i, s: {"g": i % 2})


def test_from_torch_dataset_refuses_an_image_it_cannot_read_with_the_forms_it_takes():
    with pytest.raises(DatasetFormatError, match=r"item 0: the image is a ndarray of shape \(8, 8\)"):
        from_torch_dataset(Items(lambda i: (np.zeros((8, 8)), i % 2)), lambda i, s: {"g": i % 2})


# ---------------------------------------------------------------- a full disk
_FULL_DISK = """
import resource, signal, sys, warnings
from pytest_kernelbias import VariantCache, SynthFacesCNN
from pytest_kernelbias.errors import CacheWriteError, CacheWarning
import numpy as np
cache = VariantCache(sys.argv[1])
cache.store("a" * 64, SynthFacesCNN(), {"label": "first"})  # written before the disk fills
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # a disk with 4 KiB left, for this process only
try:
    cache.store("b" * 64, SynthFacesCNN(), {"label": "second"})
except CacheWriteError as exc:
    print("ERROR", exc)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cache.store_evaluation("a" * 64, "e" * 16, {"clean": np.zeros(100_000, dtype=np.int64)}, {})
print("WARNED", [str(w.message) for w in caught if issubclass(w.category, CacheWarning)])
print("KEPT", cache.has("a" * 64), cache.has("b" * 64))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE fails writes the way a full disk does on Linux")
def test_a_full_disk_names_the_fix_keeps_what_was_written_and_an_evaluation_memo_only_warns(tmp_path):
    import subprocess

    out = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path / "cache")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "could not store the trained variant second" in out.stdout and "--kernel-audit-cache" in out.stdout
    assert "could not store an evaluation" in out.stdout
    assert "KEPT True False" in out.stdout
    assert not list((tmp_path / "cache").rglob(".tmp-*")), "a failed write left a partial entry"


# ---------------------------------------------------------------- the spec checks itself (no data needed)
@pytest.mark.parametrize("levels, reference, match", [
    ([3], None, "at least one other level"), ([3, 3], None, "repeats a level"),
    ([3, 9], 5, "reference=5 is not one of levels=\\[3, 9\\]"), ([3, 0], None, "kernel"),
])
def test_levels_are_checked_when_the_spec_is_built(levels, reference, match):
    from pytest_kernelbias import AuditSpec

    with pytest.raises((AuditConfigError, InterventionError), match=match):
        AuditSpec.from_kwargs(SynthFacesCNN, "conv1", levels, reference=reference)


def test_run_audit_and_pytest_share_one_device_default():
    from pytest_kernelbias.spec import RecipeSpec

    assert RecipeSpec().device == ("cuda" if torch.cuda.is_available() else "cpu")
