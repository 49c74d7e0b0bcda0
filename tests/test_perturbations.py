import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kernelbias import AuditConfigError, LowPass


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
