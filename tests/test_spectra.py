import math

import numpy as np
import pytest
import torch
from torch import nn

from pytest_kernelbias import HighPass, LowPass
from pytest_kernelbias.evaluation._spectra import (
    activation_spectra,
    fourier_basis,
    fourier_heat_map,
    high_frequency_ratio,
    kernel_spectrum,
    radial_power_spectrum,
)


def test_radial_spectrum_of_a_cosine_peaks_at_its_frequency_bin():
    xs = torch.arange(32.0)
    wave = torch.cos(2 * math.pi * 5 * xs / 32).expand(1, 32, 32)
    spec = radial_power_spectrum(wave)[0]
    assert spec.shape == (17,) and int(spec.argmax()) == 5


def test_high_frequency_ratio_separates_low_and_high_passed_noise():
    noise = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    low = high_frequency_ratio(radial_power_spectrum(LowPass(0.4)(noise)).mean((0, 1)), cutoff=0.5)
    high = high_frequency_ratio(radial_power_spectrum(HighPass(0.6)(noise)).mean((0, 1)), cutoff=0.5)
    assert low < 0.01 and high > 0.99


@pytest.mark.parametrize("h,w,i,j", [(8, 8, 1, 2), (8, 8, 4, 0), (8, 6, -3, 3), (7, 9, 2, -4), (8, 8, 0, 0)])
def test_fourier_basis_is_the_unit_norm_cosine(h, w, i, j):
    # Independent construction: the cosine at (i, j), normalized.
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    cos = torch.cos(2 * math.pi * (i * yy / h + j * xx / w))
    torch.testing.assert_close(fourier_basis(h, w, i, j), cos / cos.norm())
    spec = torch.fft.fft2(fourier_basis(h, w, i, j)).abs() > 1e-9
    assert spec.sum() in (1, 2) and spec[i % h, j % w] and spec[-i % h, -j % w]


class _MeanBrightness(nn.Module):
    """A fixed classifier: class 1 when the mean pixel is above 0.5."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], dim=1)


def test_fourier_heat_map_cells_match_a_direct_computation():
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(20, 3, 8, 8, generator=gen)
    labels = (images.mean((1, 2, 3)) > 0.5).long()
    groups = {"a": torch.arange(0, 10), "b": torch.arange(10, 20)}
    maps = fourier_heat_map(_MeanBrightness(), images, labels, eps=3.0, groups=groups, step=2, seed=5)
    assert set(maps) == {"a", "b"} and maps["a"].shape == (4, 4)
    # Cell (2, 2) is frequency (0, 0) - the DC basis shifts the mean: recompute it by hand.
    signs = (torch.randint(0, 2, (20, 3, 1, 1), generator=torch.Generator().manual_seed(5)) * 2 - 1).double()
    u = torch.full((8, 8), 1 / 8.0, dtype=torch.float64)
    pred = _MeanBrightness()((images.double() + signs * 3.0 * u).clamp(0, 1)).argmax(1)
    expected = (pred != labels).double()
    assert maps["a"][2, 2].item() == pytest.approx(expected[:10].mean().item())
    assert maps["b"][2, 2].item() == pytest.approx(expected[10:].mean().item())


def test_zero_eps_heat_map_is_the_clean_error_everywhere():
    images = torch.rand(12, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    labels = torch.zeros(12, dtype=torch.long)
    clean_error = (_MeanBrightness()(images).argmax(1) != labels).double().mean()
    (m,) = fourier_heat_map(_MeanBrightness(), images, labels, eps=0.0).values()
    assert torch.allclose(m, clean_error.expand_as(m))


def test_kernel_spectrum_of_a_larger_smooth_kernel_has_less_high_frequency_power():
    small, big = nn.Conv2d(1, 1, 1, bias=False), nn.Conv2d(1, 1, 9, bias=False)
    with torch.no_grad():
        small.weight.fill_(1.0)
        g = torch.exp(-((torch.arange(9.0) - 4) ** 2) / 8)
        big.weight.copy_((g[:, None] * g[None, :]).view(1, 1, 9, 9))
    assert high_frequency_ratio(kernel_spectrum(big)) < 0.05 < high_frequency_ratio(kernel_spectrum(small))


def test_activation_spectra_are_per_subgroup():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    images = torch.rand(10, 3, 16, 16)
    images[5:] = LowPass(0.3)(images[5:])
    spectra = activation_spectra(model, "0", images, {"sharp": torch.arange(5), "smooth": torch.arange(5, 10)})
    assert high_frequency_ratio(spectra["smooth"]) < high_frequency_ratio(spectra["sharp"])


def _numpy_share(maps: np.ndarray, cutoff: float) -> float:
    """Energy share of the non-DC Fourier coefficients whose rounded distance from DC is >= cutoff x Nyquist."""
    h, w = maps.shape[-2:]
    x = maps - maps.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1))) ** 2
    yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    r = np.minimum(np.rint(np.hypot(yy, xx)), min(h, w) // 2)  # the last bin holds the corners
    high = (r >= cutoff * (min(h, w) // 2)) & (r > 0)
    return float(power[..., high].sum() / power[..., r > 0].sum())


@pytest.mark.parametrize("shape", [(32, 32), (31, 31), (12, 20), (9, 14), (14, 9), (1, 1), (2, 3)])
@pytest.mark.parametrize("remove_mean", [True, False])
def test_radial_spectrum_is_the_full_spectrum_mean_power_per_bin(shape, remove_mean):
    # numpy's full (not half) spectrum, centred, binned coefficient by coefficient.
    h, w = shape
    maps = np.random.default_rng(3).standard_normal((5, h, w))
    x = maps - maps.mean(axis=(-2, -1), keepdims=True) if remove_mean else maps
    power = np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1))) ** 2
    n_bins = min(h, w) // 2 + 1
    expected = np.zeros((5, n_bins))
    for i in range(h):
        for j in range(w):
            r = min(int(np.rint(math.hypot(i - h // 2, j - w // 2))), n_bins - 1)
            expected[:, r] += power[:, i, j] / sum(min(int(np.rint(math.hypot(a - h // 2, b - w // 2))),
                                                       n_bins - 1) == r for a in range(h) for b in range(w))
    got = radial_power_spectrum(torch.from_numpy(maps), remove_mean).numpy()
    # float64 sums of at most h*w terms: rounding stays near h*w*eps relative to the largest bin.
    assert np.allclose(got, expected, rtol=0, atol=h * w * 1e-15 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("shape", [(32, 32), (16, 16), (12, 20), (9, 14)])
@pytest.mark.parametrize("cutoff", [0.25, 0.5, 0.75])
def test_high_frequency_ratio_is_the_energy_share_numpy_computes(shape, cutoff):
    maps = np.random.default_rng(0).standard_normal((64, *shape))
    spectrum = radial_power_spectrum(torch.from_numpy(maps)).mean(0)
    ratio = float(high_frequency_ratio(spectrum, cutoff, shape))
    # Same coefficients, same sums in float64: equal up to rounding of ~1e-15 per term.
    assert ratio == pytest.approx(_numpy_share(maps, cutoff), abs=1e-12)


def test_white_noise_share_at_half_nyquist_is_the_share_of_coefficients():
    # White noise puts equal expected energy in every coefficient: the share is the coefficient share.
    h = w = 32
    yy, xx = np.meshgrid(np.arange(h) - 16, np.arange(w) - 16, indexing="ij")
    r = np.minimum(np.rint(np.hypot(yy, xx)), 16)
    expected = float(((r >= 8) & (r > 0)).sum() / (r > 0).sum())
    maps = torch.from_numpy(np.random.default_rng(1).standard_normal((4000, h, w)))
    share = float(high_frequency_ratio(radial_power_spectrum(maps).mean(0), 0.5))
    # Each coefficient's power is exponential; about 4000 x 512 independent ones give the share a standard error
    # near sqrt(0.17 / 2e6) = 3e-4, so 0.005 is over 15 standard errors.
    assert share == pytest.approx(expected, abs=0.005) and expected > 0.8


class _MustNotRun(nn.Module):
    def forward(self, x):
        raise AssertionError("the spectra ran the network past the measured layer")


def test_activation_spectra_stop_at_the_layer_and_match_float64_within_float32_rounding():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 5, padding=2)
    model = nn.Sequential(conv, _MustNotRun())
    images = torch.rand(40, 3, 24, 24)
    groups = {"a": torch.arange(20), "b": torch.arange(20, 40)}
    spectra = activation_spectra(model, "0", images, groups, batch_size=16)
    with torch.no_grad():
        maps = conv(images).double().numpy()
    for g, idx in groups.items():
        for cutoff in (0.25, 0.5):
            # float32 transforms of 24x24 maps: each coefficient's power is off by a few float32 epsilons
            # (~1e-7 relative), and the share, a ratio of sums of such powers, by no more than that order.
            assert float(high_frequency_ratio(spectra[g], cutoff, (24, 24))) == pytest.approx(
                _numpy_share(maps[idx.numpy()], cutoff), abs=1e-5)
