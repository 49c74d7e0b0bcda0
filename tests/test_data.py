import hashlib
import types

import pytest
import torch
from torch import nn

from pytest_kernelbias import LowPass, SubgroupDataset, synthfaces
from pytest_kernelbias.data import _subgroups as subgroups
from pytest_kernelbias.errors import EmptySubgroupError, MissingAttributeError
from pytest_kernelbias.evaluation import SubgroupLoaders


def test_missing_subgroup_attribute_names_the_available_ones():
    with pytest.raises(MissingAttributeError, match=r"no subgroup attribute 'race'.*\['gender', 'skin_tone'\]"):
        synthfaces(20, 0).subgroup_indices("race")


def test_expected_subgroup_with_no_images_is_a_clear_error():
    d = synthfaces(50, 0)
    only_light = d.subset(d.subgroup_indices("skin_tone")["skin_tone=light"])
    with pytest.raises(EmptySubgroupError, match="'skin_tone=dark' has no images"):
        SubgroupLoaders(only_light, "skin_tone", LowPass(0.5), expected_groups=["skin_tone=dark", "skin_tone=light"])


def test_loaders_yield_clean_and_perturbed_batches_per_subgroup():
    d = synthfaces(100, 0)
    loaders = SubgroupLoaders(d, ["skin_tone", "gender"], LowPass(0.5), batch_size=16)
    assert len(loaders) == 4
    seen = 0
    for group in loaders:
        for clean, perturbed, y in loaders[group]:
            torch.testing.assert_close(perturbed, LowPass(0.5)(clean))
            seen += len(y)
    assert seen == 100


def test_evaluate_equals_a_per_group_count_of_correct_predictions():
    d = synthfaces(120, 0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
    blur = LowPass(0.3)
    loaders = SubgroupLoaders(d, ["skin_tone", "gender"], blur)
    with torch.no_grad():  # an independent pass: whole set at once, no batching, no group codes
        preds = {"clean": model(d.images).argmax(1), blur.name: model(blur(d.images)).argmax(1)}
    expected = {cond: {g: int((p[idx] == d.labels[idx]).sum()) / len(idx) for g, idx in loaders.groups.items()}
                for cond, p in preds.items()}
    assert loaders.evaluate(model) == expected
    assert list(loaders.evaluate(model)) == loaders.conditions


def _count_hashed_bytes(monkeypatch) -> list[int]:
    # Bytes fed to each sha256 in subgroups: a memo hit hashes the attribute strings but not the pixels.
    hashed: list[int] = []

    def sha256(data=b""):
        h = hashlib.sha256()
        update = h.update

        def counting(chunk):
            hashed.append(len(chunk))
            update(chunk)

        counting(data)
        return types.SimpleNamespace(update=counting, digest=h.digest, hexdigest=h.hexdigest)

    monkeypatch.setattr(subgroups, "hashlib", types.SimpleNamespace(sha256=sha256))
    return hashed


def test_fingerprint_is_memoized_and_equal_datasets_fingerprint_equally(monkeypatch):
    d = synthfaces(64, 3)
    hashed = _count_hashed_bytes(monkeypatch)
    first = d.fingerprint()
    assert sum(hashed) > d.images.nbytes
    hashed.clear()
    assert d.fingerprint() == first
    assert sum(hashed) < d.images.nbytes
    copy = SubgroupDataset(d.images.clone(), d.labels.clone(), {a: list(v) for a, v in d.attributes.items()}, "other")
    assert copy.fingerprint() == first


def test_fingerprint_is_sha256_of_shapes_pixels_labels_and_attributes():
    # Cache keys on disk hold this value, so it must not change with the memo; every part is encoded injectively.
    import json

    d = synthfaces(32, 1)
    h = hashlib.sha256(repr([(tuple(t.shape), str(t.dtype)) for t in (d.images, d.labels)]).encode())
    h.update(d.images.numpy().tobytes() + d.labels.numpy().tobytes())
    h.update(json.dumps([[attr, list(map(str, d.attributes[attr]))] for attr in sorted(d.attributes)]).encode())
    assert d.fingerprint() == h.hexdigest()[:16]


def test_fingerprint_sees_in_place_writes_to_images_labels_and_attributes():
    d = synthfaces(32, 1)
    seen = {d.fingerprint()}
    d.images[0, 0, 0, 0] += 0.5
    seen.add(d.fingerprint())
    d.labels[1:2].add_(1)  # a write through a view bumps the same version counter
    seen.add(d.fingerprint())
    d.attributes["skin_tone"][0] = "other"
    seen.add(d.fingerprint())
    fresh = SubgroupDataset(d.images.clone(), d.labels.clone(), {a: list(v) for a, v in d.attributes.items()})
    assert len(seen) == 4 and d.fingerprint() == fresh.fingerprint()


def test_inference_mode_tensors_are_hashed_afresh_every_call():
    with torch.inference_mode():
        d = synthfaces(16, 2)
        first = d.fingerprint()
        d.images.mul_(0.5)
    assert d.images.is_inference() and d.fingerprint() != first
