import torch

from pytest_kernelbias import synthfaces
from pytest_kernelbias.data import PLANTED
from pytest_kernelbias.perturbations import radial_distance


def test_same_seed_same_images_labels_and_attributes():
    a, b = synthfaces(64, seed=3, config="planted"), synthfaces(64, seed=3, config="planted")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.attributes == b.attributes
    assert a.fingerprint() == b.fingerprint()


def test_other_seed_or_split_gives_other_images():
    a = synthfaces(64, seed=3)
    assert not torch.equal(a.images, synthfaces(64, seed=4).images)
    assert not torch.equal(a.images, synthfaces(64, seed=3, split="test").images)


def test_images_are_float_in_unit_range_with_two_attributes_and_binary_label():
    d = synthfaces(200, seed=0)
    assert d.images.shape == (200, 3, 32, 32) and d.images.dtype == torch.float32
    assert 0 <= d.images.min() and d.images.max() <= 1
    assert set(d.labels.tolist()) == {0, 1}
    assert set(d.attributes) == {"skin_tone", "gender"}
    assert set(d.counts(["skin_tone", "gender"])) == {"skin_tone=dark&gender=f", "skin_tone=dark&gender=m",
                                                      "skin_tone=light&gender=f", "skin_tone=light&gender=m"}


def _high_frequency_energy(images: torch.Tensor) -> float:
    # Share of non-DC spectral power beyond half of Nyquist, where the 3-px stripes live.
    spec = torch.fft.fftshift(torch.fft.fft2(images - images.mean(dim=(-2, -1), keepdim=True)), dim=(-2, -1)).abs() ** 2
    far = radial_distance(32, 32) >= 0.5 * 16
    return float(spec[..., far].sum() / spec.sum())


def test_planted_stripes_live_in_high_frequencies_of_one_subgroup_only():
    planted = synthfaces(400, seed=0, config=PLANTED)
    flat = synthfaces(400, seed=0, config=PLANTED.with_(stripe_amplitude=0.0))  # same draws, no stripes
    groups = planted.subgroup_indices("skin_tone")
    light, dark = groups["skin_tone=light"], groups["skin_tone=dark"]
    assert torch.equal(planted.images[light], flat.images[light])
    stripes = planted.images[dark] - flat.images[dark]
    # Period-3 stripes sit at 2/3 of Nyquist; the face window spreads them, but
    # most of their power stays beyond half of Nyquist.
    assert _high_frequency_energy(stripes) > 0.8


def test_null_subgroups_come_from_one_distribution():
    d = synthfaces(2000, seed=0, config="null")
    groups = d.subgroup_indices("skin_tone")
    means = [d.images[idx].mean().item() for idx in groups.values()]
    # Mean brightness per image has sd < 0.1; with ~1000 images per group the
    # group means differ by far less than 0.02 unless the pixels depend on the group.
    assert abs(means[0] - means[1]) < 0.02
    hf = [_high_frequency_energy(d.images[idx]) for idx in groups.values()]
    assert abs(hf[0] - hf[1]) < 0.2 * max(hf)


def test_a_set_is_drawn_once_per_configuration_and_each_caller_owns_its_tensors():
    from pytest_kernelbias.data import _synthfaces

    config = PLANTED.with_(name="drawn-once", pixel_noise=0.03)  # a configuration no other test asks for
    first = synthfaces(64, 5, config, "test")
    before = _synthfaces._drawn.cache_info().hits
    second = synthfaces(64, 5, config, "test")
    assert _synthfaces._drawn.cache_info().hits == before + 1  # served from the memo, not drawn again
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert first.fingerprint() == second.fingerprint() == _synthfaces._draw(64, 5, config, "test").fingerprint()
    second.images.mul_(0)
    second.labels.fill_(0)
    second.attributes["skin_tone"][0] = "written"
    third = synthfaces(64, 5, config, "test")
    assert third.fingerprint() == first.fingerprint()  # the write stayed in its caller's copy
