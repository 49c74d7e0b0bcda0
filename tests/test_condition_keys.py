"""Stored predictions are keyed by what each perturbation is, never by the name an audit gives it."""
import copy

import numpy as np
import pytest
import torch

from pytest_kernelbias import JPEG, Compose, GaussianBlur, GaussianNoise, LowPass, Perturbation, run_audit
from pytest_kernelbias.fingerprints import perturbation_fingerprint as fingerprint_on
from pytest_kernelbias.fingerprints import perturbation_probe
from tests.test_pipeline import TRAIN, tiny_cnn


@pytest.mark.parametrize("a, b", [
    (GaussianBlur(1.0), GaussianBlur(2.0)), (JPEG(90), JPEG(10)), (LowPass(0.4), LowPass(0.40000001)),
    (LowPass(0.4), LowPass(0.4, clip=True)), (GaussianNoise(0.05, seed=0), GaussianNoise(0.05, seed=1)),
    (Compose(LowPass(0.5), GaussianNoise(0.1)), Compose(GaussianNoise(0.1), LowPass(0.5))),
])
def test_perturbations_that_perturb_differently_have_different_fingerprints(a, b):
    assert perturbation_fingerprint(a) != perturbation_fingerprint(b)
    assert perturbation_fingerprint(a) == perturbation_fingerprint(copy.deepcopy(a))  # content, not identity


class Darken(Perturbation):
    def __init__(self, factor: float):
        self.factor = factor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def test_a_custom_perturbation_is_keyed_by_its_parameters_and_class_not_its_address():
    assert perturbation_fingerprint(Darken(0.5)) == perturbation_fingerprint(Darken(0.5))
    assert perturbation_fingerprint(Darken(0.5)) != perturbation_fingerprint(Darken(0.25))
    assert " at 0x" not in str(perturbation_fingerprint(Darken(0.5)))  # no memory address in the key
    assert repr(Darken(0.5)) == "Darken(factor=0.5)"  # its label too: a baseline can match it next run


def test_a_reused_name_with_other_parameters_reads_fresh_predictions(tmp_path):
    """The reported bug: {"blur": GaussianBlur(1.0)} then {"blur": GaussianBlur(2.0)} on one cache gave the first
    audit's numbers. Now the second equals a fresh cache's audit, to the last bit."""
    kw = dict(seeds=2, rule="estimate", spectral_cutoff=None, placebos=(), **TRAIN)
    first = run_audit(tiny_cnn, "0", [3, 5], perturbation={"blur": GaussianBlur(1.0)}, cache=tmp_path / "a", **kw)
    second = run_audit(tiny_cnn, "0", [3, 5], perturbation={"blur": GaussianBlur(2.0)}, cache=tmp_path / "a", **kw)
    fresh = run_audit(tiny_cnn, "0", [3, 5], perturbation={"blur": GaussianBlur(2.0)}, cache=tmp_path / "b", **kw)
    assert second.settings["trained"] == 0  # the weights are reused: only the predictions are new
    assert second.effect.differences == fresh.effect.differences
    assert not np.allclose(first.outcomes.as_records()[0]["perturbed"], -1)  # a real number was read
    perturbed = [[r["perturbed"] for r in result.outcomes.as_records()] for result in (second, fresh)]
    assert perturbed[0] == perturbed[1]


def _set(attributes: dict, images=None):
    from pytest_kernelbias import SubgroupDataset

    n = len(next(iter(attributes.values())))
    images = torch.zeros(n, 1, 2, 2) if images is None else images
    return SubgroupDataset(images, torch.zeros(len(images), dtype=torch.int64), attributes)


def test_the_data_fingerprint_encodes_attributes_and_shapes_injectively():
    assert _set({"ab": ["c", "c"]}).fingerprint() != _set({"a": ["bc", "bc"]}).fingerprint()
    assert _set({"a": ["x\x1fy", "z"]}).fingerprint() != _set({"a": ["x", "y\x1fz"]}).fingerprint()
    flat = torch.arange(16.0) / 16
    assert _set({"a": ["x"] * 2}, flat.reshape(2, 2, 2, 2)).fingerprint() != \
        _set({"a": ["x"] * 4}, flat.reshape(4, 1, 2, 2)).fingerprint()


def test_a_subgroup_value_holding_a_key_separator_is_refused_with_the_fix():
    from pytest_kernelbias.errors import InputDataError

    data = _set({"race": ["a&gender=f", "b"], "gender": ["m", "f"]})
    with pytest.raises(InputDataError, match=r"value 'a&gender=f' of attribute 'race' holds '&' or '='.*rename it"):
        data.group_keys(["race", "gender"])
    with pytest.raises(InputDataError, match="attribute name 'a=b'"):
        _set({"a=b": ["x", "y"]}).group_keys("a=b")


def test_a_contrast_of_a_group_with_itself_is_refused():
    from pytest_kernelbias import AuditConfigError
    from pytest_kernelbias.stats import Estimand

    with pytest.raises(AuditConfigError, match="with itself is 0 for every model"):
        Estimand.of("contrast", ("skin_tone=dark", "skin_tone=dark"))


def test_two_kernel_audit_markers_on_one_test_are_a_usage_error(pytester):
    pytester.makepyfile('''
import pytest

pytestmark = pytest.mark.kernel_audit(seeds=3)

@pytest.mark.kernel_audit(threshold=0.1)
def test_settings(kernel_audit_settings):
    pass
''')
    result = pytester.runpytest("--kernel-audit")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*has 2 @pytest.mark.kernel_audit markers*give one*"])


PROBE = perturbation_probe(torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)))


def perturbation_fingerprint(p: Perturbation) -> dict:
    return fingerprint_on(p, PROBE)
