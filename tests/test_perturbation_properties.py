"""Hypothesis properties of the perturbation family."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kernelbias import (
    JPEG,
    AuditConfigError,
    BandPass,
    Compose,
    Downsample,
    GaussianBlur,
    GaussianNoise,
    HighPass,
    LowPass,
)
from pytest_kernelbias.errors import PerturbationError
from pytest_kernelbias.perturbations import GaussianLowPass, Identity

cutoffs = st.floats(0.02, 1.0)
sizes = st.integers(4, 20)
seeds = st.integers(0, 2**16)


def _batch(seed, h, w, c=3, dtype=torch.float64):
    return torch.rand(2, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@settings(max_examples=50, deadline=None)
@given(c=cutoffs, h=sizes, w=sizes, seed=seeds)
def test_lowpass_plus_highpass_is_identity(c, h, w, seed):
    x = _batch(seed, h, w)
    torch.testing.assert_close(LowPass(c)(x) + HighPass(c)(x), x, atol=1e-12, rtol=0)


@settings(max_examples=50, deadline=None)
@given(c=cutoffs, lo=st.floats(0, 0.5), h=sizes, w=sizes, seed=seeds)
def test_ideal_filters_are_idempotent(c, lo, h, w, seed):
    x = _batch(seed, h, w)
    for f in (LowPass(c), HighPass(c), BandPass(lo, lo + 0.5)):
        once = f(x)
        torch.testing.assert_close(f(once), once, atol=1e-12, rtol=0)


@settings(max_examples=50, deadline=None)
@given(c1=cutoffs, c2=cutoffs, h=sizes, w=sizes, seed=seeds)
def test_energy_does_not_increase_as_the_cutoff_falls(c1, c2, h, w, seed):
    lo, hi = sorted((c1, c2))
    x = _batch(seed, h, w)
    assert LowPass(lo)(x).square().sum() <= LowPass(hi)(x).square().sum() + 1e-9
    assert HighPass(hi)(x).square().sum() <= HighPass(lo)(x).square().sum() + 1e-9


ALL = [LowPass(0.5), HighPass(0.5), BandPass(0.2, 0.6), GaussianLowPass(0.3), GaussianBlur(1.0), Downsample(2),
       GaussianNoise(0.1, seed=3), JPEG(50), Compose(LowPass(0.6), GaussianNoise(0.05))]


@pytest.mark.parametrize("p", ALL, ids=repr)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_device_are_preserved(p, dtype):
    x = torch.rand(3, 3, 16, 12, dtype=dtype)
    y = p(x)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device


@pytest.mark.parametrize("p", [f for f in ALL if not isinstance(f, JPEG)], ids=repr)
def test_channels_are_filtered_independently(p):
    # JPEG is left out on purpose: its YCbCr transform mixes channels.
    x = torch.rand(2, 3, 16, 16)
    changed = x.clone()
    changed[:, 0] = torch.rand(2, 16, 16)
    p.reset()
    a = p(x)
    p.reset()
    b = p(changed)
    torch.testing.assert_close(a[:, 1:], b[:, 1:])


def test_seeded_noise_is_deterministic_and_restarts_on_reset():
    x = torch.zeros(4, 3, 8, 8)
    p = GaussianNoise(0.2, seed=7)
    first, second = p(x), p(x)
    assert not torch.equal(first, second)  # the stream moves on within one evaluation
    p.reset()
    assert torch.equal(p(x), first)
    assert torch.equal(GaussianNoise(0.2, seed=7)(x), first)
    assert first.std().item() == pytest.approx(0.2, rel=0.15)


def _blur_tolerance(sigma: float, f: float, radius: int) -> float:
    """Bound on |sampled truncated kernel response - exp(-2 pi^2 sigma^2 f^2)|.

    Poisson summation: the sampled kernel's response is the Gaussian's summed
    over aliases f + m, normalized by the same sum at f = 0; both sums deviate
    by at most the alias terms. Truncation at `radius` moves the response by at
    most twice the discarded mass.
    """
    alias = sum(math.exp(-2 * math.pi ** 2 * sigma ** 2 * (m - abs(f)) ** 2)
                + math.exp(-2 * math.pi ** 2 * sigma ** 2 * (m + abs(f)) ** 2) for m in range(1, 20))
    alias_dc = 2 * sum(math.exp(-2 * math.pi ** 2 * sigma ** 2 * m ** 2) for m in range(1, 20))
    t = np.arange(-50 * radius, 50 * radius + 1)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    tail = g[np.abs(t) > radius].sum() / g.sum()
    return alias + alias_dc + 2 * tail + 1e-9


@settings(max_examples=60, deadline=None)
@given(sigma=st.floats(0.3, 3.0), m=st.integers(0, 32))
def test_gaussian_blur_transfer_matches_the_analytic_gaussian(sigma, m):
    n = 64
    f = m / n  # cycles per pixel, up to Nyquist
    xs = torch.arange(n, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * f * xs).expand(1, 1, n, n).contiguous()
    # Circular borders make the cosine an exact eigenfunction of the blur.
    out = GaussianBlur(sigma, padding_mode="circular")(wave)
    measured = (out * wave).sum() / (wave * wave).sum()
    analytic = math.exp(-2 * math.pi ** 2 * sigma ** 2 * f ** 2)
    radius = int(4 * sigma + 0.5)  # scipy.ndimage's truncation, which GaussianBlur follows
    assert abs(measured.item() - analytic) <= _blur_tolerance(sigma, f, radius)


@pytest.mark.parametrize("make,match", [
    (lambda: BandPass(0.5, 0.5), "lo < hi"),
    (lambda: BandPass(0.6, 0.2), "lo < hi"),
    (lambda: BandPass(-0.1, 0.5), r"lo is a fraction of Nyquist and must lie in \[0, 1\]"),
    (lambda: GaussianBlur(-1), "sigma must be a finite number >= 0"),
    (lambda: GaussianBlur(float("inf")), r"sigma must be a finite number >= 0 and <= 100000 \(pixels\)"),
    (lambda: GaussianBlur(2e5), r"sigma must be a finite number >= 0 and <= 100000 \(pixels\)"),
    (lambda: GaussianBlur(1, padding_mode="mirror"), "one of reflect, symmetric, replicate, circular, zeros"),
    (lambda: GaussianLowPass(float("nan")), "sigma must be a finite number >= 0"),
    (lambda: GaussianNoise(-0.1), "std must be a finite number >= 0"),
    (lambda: GaussianNoise(0.1, seed=-1), "seed must be an int from 0 to 18446744073709551615"),
    (lambda: GaussianNoise(0.1, seed=1.5), "seed must be an int from 0"),
    (lambda: JPEG(0), "quality must be an int from 1 to 100"),
    (lambda: JPEG(101), "quality must be an int from 1 to 100"),
    (lambda: JPEG(50.0), "quality must be an int from 1 to 100"),
    (lambda: HighPass(0), r"fraction of Nyquist"),
    (lambda: Downsample(0.5), "factor must be a number >= 1"),
    (lambda: Downsample(float("inf")), "factor must be a number >= 1 and finite"),
    (lambda: Compose(), "one or more Perturbation objects"),
])
def test_bad_parameters_are_clear_errors_at_construction(make, match):
    # PerturbationError, and still the AuditConfigError these checks raised before.
    with pytest.raises(PerturbationError, match=match) as info:
        make()
    assert isinstance(info.value, AuditConfigError)


def test_numpy_scalars_are_accepted_as_settings():
    # np.float32 and np.int64 are not float/int subclasses, yet they are what sweeps built with numpy hold.
    assert LowPass(np.float32(0.5)).cutoff == 0.5 and JPEG(np.int64(50)).quality == 50
    assert GaussianNoise(0.1, seed=np.uint64(7)).seed == 7 and Downsample(np.float64(2)).factor == 2


EVERY = [*ALL, Identity(), GaussianLowPass(0), GaussianBlur(1.9), GaussianBlur(5.0, padding_mode="circular"),
         GaussianBlur(2.0, padding_mode="replicate"), GaussianBlur(3.0, padding_mode="symmetric"),
         GaussianBlur(1.0, padding_mode="zeros"), Downsample(1), Downsample(1000), JPEG(1)]
SMALL = [(1, 1, 1, 1), (1, 3, 1, 1), (2, 1, 2, 2), (1, 3, 2, 2), (1, 3, 3, 5), (1, 3, 7, 1), (1, 1, 8, 8)]


@pytest.mark.parametrize("shape", SMALL, ids=str)
@pytest.mark.parametrize("p", EVERY, ids=repr)
def test_every_perturbation_works_on_tiny_images_and_any_batch_or_channel_count(p, shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    y = p(x)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()


@pytest.mark.parametrize("p", EVERY, ids=repr)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32_and_rounded_once(p, dtype):
    # torch has no CPU FFT or antialiased bicubic resize in half precision; the result is the float32 one, rounded.
    x = torch.rand(2, 3, 9, 8).to(dtype)
    p.reset()
    got = p(x)
    p.reset()
    assert got.dtype == dtype and torch.equal(got, p(x.float()).to(dtype))


@pytest.mark.parametrize("p", EVERY, ids=repr)
def test_an_empty_batch_is_returned_unchanged(p):
    for shape in [(0, 3, 8, 8), (2, 0, 8, 8)]:
        x = torch.rand(shape)
        assert p(x).shape == x.shape


def test_images_without_pixels_are_a_clear_error():
    with pytest.raises(PerturbationError, match="at least 1x1 pixels"):
        LowPass(0.5)(torch.rand(1, 3, 0, 4))


def test_jpeg_refuses_other_channel_counts_naming_what_it_needs():
    with pytest.raises(PerturbationError, match="1 or 3 channels .* got 4"):
        JPEG(50)(torch.rand(1, 4, 8, 8))


def test_gaussian_low_pass_with_a_tiny_sigma_keeps_only_the_mean():
    # (sigma * Nyquist)**2 underflowed to 0 for sigma ~1e-160, and the DC gain became 0/0 = NaN.
    x = torch.rand(2, 3, 8, 6, dtype=torch.float64)
    mean = x.mean(dim=(-2, -1), keepdim=True).expand_as(x)
    torch.testing.assert_close(GaussianLowPass(1e-200)(x), mean, atol=1e-12, rtol=0)


def test_sweep_declares_one_perturbation_per_severity_with_readable_names():
    sweep = LowPass.sweep([0.9, 0.7, 0.5], clip=True)
    assert [repr(p) for p in sweep] == ["LowPass(0.9, clip=True)", "LowPass(0.7, clip=True)", "LowPass(0.5, clip=True)"]
    assert [p.severity for p in sweep] == [0.9, 0.7, 0.5]
    assert [repr(p) for p in BandPass.sweep([(0, 0.3), (0.3, 0.6)])] == ["BandPass(0, 0.3)", "BandPass(0.3, 0.6)"]
    assert repr(Compose(LowPass(0.5), GaussianNoise(0.1))) == "Compose(LowPass(0.5), GaussianNoise(0.1))"


def test_jpeg_error_grows_as_quality_falls():
    from pytest_kernelbias import synthfaces

    x = synthfaces(16, 0).images
    errors = [(JPEG(q)(x) - x).square().mean().item() for q in (95, 50, 10)]
    assert errors[0] < errors[1] < errors[2]
