import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from torch import nn

from pytest_kernelbias import AuditConfigError, GaussianBlur, LowPass


def numpy_lowpass(x: np.ndarray, cutoff: float) -> np.ndarray:
    """Independent reference: shift each channel's spectrum, zero bins by an explicit loop, invert."""
    out = np.empty_like(x, dtype=np.float64)
    n, c, h, w = x.shape
    radius = cutoff * min(h, w) / 2
    keep = np.zeros((h, w), dtype=bool)
    for i in range(h):
        for j in range(w):
            keep[i, j] = np.hypot(i - h // 2, j - w // 2) < radius
    for a in range(n):
        for b in range(c):
            spec = np.fft.fftshift(np.fft.fft2(x[a, b]))
            out[a, b] = np.fft.ifft2(np.fft.ifftshift(spec * keep)).real
    return out


@settings(max_examples=40, deadline=None)
@given(h=st.integers(4, 24), w=st.integers(4, 24), cutoff=st.floats(0.05, 1.0), seed=st.integers(0, 2**16))
def test_lowpass_matches_independent_numpy_implementation(h, w, cutoff, seed):
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    got = LowPass(cutoff)(x).numpy()
    np.testing.assert_allclose(got, numpy_lowpass(x.numpy(), cutoff), atol=1e-10)


def test_lowpass_keeps_dtype_shape_device_and_does_not_clip():
    x = torch.rand(3, 3, 16, 16, dtype=torch.float32)
    y = LowPass(0.3)(x)
    assert y.dtype == x.dtype and y.shape == x.shape and y.device == x.device
    z = LowPass(0.3, clip=True)(x)
    assert z.min() >= 0 and z.max() <= 1
    assert torch.equal(z, y.clamp(0, 1))


def test_lowpass_full_cutoff_keeps_everything_inside_the_nyquist_circle():
    # A 2-px checkerboard sits at the corners of the spectrum (distance sqrt(2)*Nyquist): removed even at 1.0.
    x = torch.zeros(1, 1, 8, 8)
    x[..., ::2, ::2] = 1
    x[..., 1::2, 1::2] = 1
    y = LowPass(1.0)(x)
    torch.testing.assert_close(y, torch.full_like(x, 0.5))


def test_lowpass_removes_fine_stripes_and_keeps_coarse_ones():
    # 30 px holds whole periods of both, so neither leaks into other bins.
    xs = torch.arange(30.0)
    fine = torch.sin(2 * torch.pi * xs / 3).expand(1, 1, 30, 30)  # bin 10: 2/3 of Nyquist
    coarse = torch.sin(2 * torch.pi * xs / 15).expand(1, 1, 30, 30)  # bin 2: 2/15 of Nyquist
    lp = LowPass(0.4)
    assert lp(fine).abs().max() < 1e-5
    torch.testing.assert_close(lp(coarse), coarse, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan"), "0.5", None])
def test_cutoff_outside_unit_interval_is_a_clear_error(bad):
    with pytest.raises(AuditConfigError, match=r"fraction of Nyquist and must lie in \(0, 1\]"):
        LowPass(bad)


def test_lowpass_rejects_non_batched_input():
    with pytest.raises(TypeError, match=r"\(N, C, H, W\)"):
        LowPass(0.5)(torch.rand(3, 8, 8))


def test_repr_names_parameters():
    assert repr(LowPass(0.4)) == "LowPass(0.4)" and repr(LowPass(0.5, clip=True)) == "LowPass(0.5, clip=True)"


# --- GaussianBlur against scipy.ndimage.gaussian_filter ------------------------------------------------------

# Written out here rather than imported, so the test does not trust the module's own table.
SCIPY_MODE = {"reflect": "mirror", "symmetric": "reflect", "replicate": "nearest", "circular": "wrap",
              "zeros": "constant"}


def scipy_blur(x: np.ndarray, sigma: float, mode: str) -> np.ndarray:
    """Independent reference: scipy's filter on each channel's (H, W) plane, float64 accumulation inside."""
    return np.stack([np.stack([ndimage.gaussian_filter(plane, sigma, mode=SCIPY_MODE[mode], truncate=4.0)
                               for plane in image]) for image in x])


def blur_tolerance(sigma: float, h: int, w: int, dtype: torch.dtype, peak: float) -> float:
    """Bound on |GaussianBlur - scipy| from rounding alone, for inputs with |x| <= peak.

    Each axis pass is a dot product of at most n = min(2r + 1, size) non-zero, non-negative weights
    (r = int(4 sigma + 0.5)) that sum to 1: summing in the input dtype errs by at most n u peak
    (u = eps / 2, the unit roundoff), and rounding the weights to that dtype adds one more u peak.
    The second pass carries the first pass's error unchanged (its weights sum to 1). scipy rounds its
    intermediate and its output to the input dtype (one u peak each) and sums all 2r + 1 taps of the
    extended line in float64 (2r + 1 float64 u peak per pass, which matters for float64 inputs only).
    Total (2n + 4) u peak + 2 (2r + 1) u64 peak.
    """
    taps = 2 * int(4 * sigma + 0.5) + 1
    n = min(taps, max(h, w))
    u, u64 = torch.finfo(dtype).eps / 2, torch.finfo(torch.float64).eps / 2
    return ((2 * n + 4) * u + 2 * taps * u64) * peak


@pytest.mark.parametrize("mode", list(SCIPY_MODE))
@pytest.mark.parametrize("sigma", [0.3, 1.1, 1.9, 5.0, 30.0])
@pytest.mark.parametrize("h,w", [(8, 8), (5, 7), (2, 3), (1, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_blur_matches_scipy_gaussian_filter_at_any_sigma_and_size(mode, sigma, h, w, dtype):
    # sigma 1.1: radius 4 (scipy) vs 5 (ceil) differed by 2e-5; 1.9 and up on 8x8: the reflect pad was wider than
    # the image and torch raised. Signed inputs so that cancellation is exercised as well.
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * w), dtype=dtype)
    got = GaussianBlur(sigma, padding_mode=mode)(x).numpy()
    want = scipy_blur(x.numpy(), sigma, mode)
    tol = blur_tolerance(sigma, h, w, dtype, x.abs().max().item())
    assert np.abs(got - want).max() <= tol


def test_gaussian_blur_matches_scipy_at_the_largest_sigma():
    x = torch.rand(1, 1, 3, 4, generator=torch.Generator().manual_seed(1))
    for mode in SCIPY_MODE:
        got = GaussianBlur(1e5, padding_mode=mode)(x).numpy()
        assert np.abs(got - scipy_blur(x.numpy(), 1e5, mode)).max() <= blur_tolerance(1e5, 3, 4, torch.float32, 1)


def test_gaussian_blur_below_one_eighth_pixel_is_the_identity_like_scipy():
    # radius int(4 sigma + 0.5) is 0; the old kernel divided by sigma**2, which is 0 at 1e-200, and gave NaN.
    x = torch.rand(2, 3, 6, 5)
    assert torch.equal(GaussianBlur(1e-200)(x), x) and torch.equal(GaussianBlur(0.12)(x), x)
    np.testing.assert_array_equal(scipy_blur(x.numpy(), 0.12, "reflect"), x.numpy())


@pytest.mark.parametrize("severity,sigma", [(1, 1), (2, 2), (3, 3), (4, 4), (5, 6)])
def test_replicate_blur_reproduces_imagenet_c_gaussian_blur(severity, sigma):
    # ImageNet-C's gaussian_blur is skimage.filters.gaussian(x / 255., sigma=c, multichannel=True), clipped
    # to [0, 1]; skimage's defaults are mode="nearest" and truncate=4.0, and it calls
    # scipy.ndimage.gaussian_filter with sigma 0 on the channel axis. That call is the reference here.
    rgb = np.random.default_rng(severity).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    want = np.clip(ndimage.gaussian_filter(rgb / 255.0, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0), 0, 1)
    x = torch.from_numpy(rgb / 255.0).permute(2, 0, 1)[None]
    got = GaussianBlur(sigma, padding_mode="replicate", clip=True)(x)[0].permute(1, 2, 0).numpy()
    assert np.abs(got - want).max() <= blur_tolerance(sigma, 32, 32, torch.float64, 1.0)


def test_blur_names_differ_by_padding_mode():
    # Conditions are keyed by name (and so are cached evaluations): two modes must not share one.
    names = {repr(GaussianBlur(1, padding_mode=m)) for m in SCIPY_MODE}
    assert len(names) == len(SCIPY_MODE) and repr(GaussianBlur(1)) == "GaussianBlur(1)"
    named = repr(GaussianBlur(2, padding_mode="replicate", clip=True))
    assert named == "GaussianBlur(2, padding_mode='replicate', clip=True)"


# --- Fourier heat map layout (documented in docs/perturbations.md) --------------------------------------------

class OneFrequencyDetector(nn.Module):
    """Predicts class 1 (wrong: every label is 0) iff the input has energy at centred frequency ±(fy, fx)."""

    def __init__(self, fy: int, fx: int):
        super().__init__()
        self.fy, self.fx = fy, fx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.fft2(x - 0.5)  # the clean images are all 0.5: what is left is the perturbation
        energy = spectrum[..., self.fy % x.shape[-2], self.fx % x.shape[-1]].abs().sum(1)
        return torch.stack([torch.full_like(energy, 1e-3), energy], dim=1)


def _hit(i: int, j: int, fy: int, fx: int, h: int, w: int) -> bool:
    """Whether U_ij (energy at +-(i, j)) has energy at (fy, fx), frequencies taken modulo the size."""
    return ((i - fy) % h == 0 and (j - fx) % w == 0) or ((i + fy) % h == 0 and (j + fx) % w == 0)


def reference_layout(h: int, w: int, fy: int, fx: int) -> np.ndarray:
    """Yin et al.'s (H-1) x (W-1) layout, as the common PyTorch port (gatheluck/FourierHeatmap) builds it.

    Cell (a, b) is centred frequency (a - (H/2 - 1), b - (W/2 - 1)); the Nyquist row and column are left out.
    """
    return np.array([[_hit(a - (h // 2 - 1), b - (w // 2 - 1), fy, fx, h, w) for b in range(w - 1)]
                     for a in range(h - 1)], dtype=float)


@pytest.mark.parametrize("fy,fx", [(1, 2), (-3, 0), (0, 0), (-4, 1)])
@pytest.mark.parametrize("step", [1, 2])
def test_heat_map_without_its_first_row_and_column_is_the_reference_layout(fy, fx, step):
    from pytest_kernelbias.evaluation._spectra import fourier_heat_map

    h = w = 8
    images, labels = torch.full((2, 3, h, w), 0.5, dtype=torch.float64), torch.zeros(2, dtype=torch.long)
    ours = fourier_heat_map(OneFrequencyDetector(fy, fx), images, labels, eps=1.0, step=step)["all"].numpy()
    # Our documented layout: cell (a, b) is centred frequency (a * step - H//2, b * step - W//2).
    n = len(range(-(h // 2), h - h // 2, step))
    ours_layout = [[_hit(a * step - h // 2, b * step - w // 2, fy, fx, h, w) for b in range(n)] for a in range(n)]
    np.testing.assert_array_equal(ours, np.array(ours_layout, dtype=float))
    # Row and column 0 are the Nyquist frequency -H/2 (= +H/2), which the reference leaves out.
    np.testing.assert_array_equal(ours[1:, 1:], reference_layout(h, w, fy, fx)[step - 1::step, step - 1::step])
