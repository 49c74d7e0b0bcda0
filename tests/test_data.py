import pytest
import torch

from pytest_kernelbias import EmptySubgroupError, LowPass, MissingAttributeError, SubgroupLoaders, synthfaces


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
