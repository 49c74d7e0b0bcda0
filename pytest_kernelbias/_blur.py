"""The separable Gaussian blur behind `GaussianBlur`, defined to equal `scipy.ndimage.gaussian_filter`.

Each spatial axis is blurred by an n x n matrix built once per size: row p holds
the kernel taps p - r .. p + r, each moved onto the pixel the border mode maps
it to. Folding indices this way is valid for any kernel radius, so a blur wider
than the image (where `torch.nn.functional.pad(mode="reflect")` refuses) is
well defined, and it gives scipy's result whatever the ratio of sigma to size.
On the CPU one matrix product per axis is also faster than a padded `conv2d`
(benchmarks/perturb.py).
"""

from __future__ import annotations

import torch

TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default: the kernel radius is int(4 sigma + 0.5)
MAX_SIGMA = 1e5  # pixels; the kernel is tabulated, 8 sigma + 1 taps, so the cost grows with sigma

# padding_mode -> the scipy.ndimage mode that extends borders the same way (see docs/perturbations.md).
SCIPY_MODES = {
    "reflect": "mirror",       # d c b | a b c d | c b a  (torch "reflect": the edge pixel is not repeated)
    "symmetric": "reflect",    # c b a | a b c d | d c b  (half-sample symmetric: the edge pixel is repeated)
    "replicate": "nearest",    # a a a | a b c d | d d d
    "circular": "wrap",        # b c d | a b c d | a b c
    "zeros": "constant",       # 0 0 0 | a b c d | 0 0 0  (cval=0)
}


def gaussian_kernel1d(sigma: float, truncate: float = TRUNCATE, dtype=torch.float64, device=None) -> torch.Tensor:
    """Sampled, normalized 1-D Gaussian truncated at radius int(truncate * sigma + 0.5), as scipy.ndimage does.

    A radius of 0 (sigma < 0.125 at the default truncate) is the identity kernel [1.0].
    """
    radius = int(truncate * sigma + 0.5)
    if radius == 0:  # also avoids 0.5 / sigma**2 overflowing for a tiny sigma
        return torch.ones(1, dtype=dtype, device=device)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 / sigma ** 2 * t ** 2)  # scipy's expression, in float64 like scipy
    return (k / k.sum()).to(dtype=dtype, device=device)


def _fold(t: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """The pixel (0..n-1) that index t maps to under `mode`, for any integer t (no limit on |t|)."""
    if mode == "reflect":  # period 2n - 2; a single pixel is its own mirror
        if n == 1:
            return torch.zeros_like(t)
        m = t.remainder(2 * n - 2)
        return torch.where(m < n, m, 2 * n - 2 - m)
    if mode == "symmetric":  # period 2n
        m = t.remainder(2 * n)
        return torch.where(m < n, m, 2 * n - 1 - m)
    if mode == "circular":
        return t.remainder(n)
    return t.clamp(0, n - 1)  # replicate


def _reduced_taps(kernel: torch.Tensor, n: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets and weights equivalent to `kernel` on an axis of n pixels, at most about 2n of them.

    A kernel far wider than the axis would otherwise need an n x (8 sigma + 1)
    index table. Offsets a whole period apart land on the same pixel in the
    periodic modes, and every offset beyond n - 1 lands on the edge pixel
    (replicate) or outside the image (zeros), so their weights can be summed first.
    """
    r = len(kernel) // 2
    k = torch.arange(-r, r + 1)
    period = {"reflect": max(2 * n - 2, 1), "symmetric": 2 * n, "circular": n}.get(mode)
    if period is not None:
        k = k.remainder(period)
    elif mode == "replicate":
        k = k.clamp(-(n - 1), n - 1)
    else:  # zeros: taps that never land on the image are dropped
        keep = k.abs() <= n - 1
        k, kernel = k[keep], kernel[keep]
    lo = int(k.min())
    weights = torch.bincount(k - lo, weights=kernel)
    offsets = torch.arange(lo, lo + len(weights))
    return offsets, weights


def blur_matrix(sigma: float, n: int, mode: str) -> torch.Tensor:
    """The (n, n) float64 matrix B with B @ v = scipy.ndimage.gaussian_filter1d(v, sigma, mode=SCIPY_MODES[mode])."""
    offsets, weights = _reduced_taps(gaussian_kernel1d(sigma), n, mode)
    rows = torch.arange(n)[:, None].expand(n, len(offsets))
    taps = rows + offsets[None, :]
    w = weights[None, :].expand_as(taps)
    if mode == "zeros":
        inside = (taps >= 0) & (taps < n)
        rows, taps, w = rows[inside], taps[inside], w[inside]
    else:
        taps = _fold(taps, n, mode)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix.index_put_((rows.reshape(-1), taps.reshape(-1)), w.reshape(-1), accumulate=True)
    return matrix


def blur(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Blur (N, C, H, W) `x` with the (H, H) and (W, W) axis matrices: down the columns first, as scipy does."""
    # Matrix products keep float32 on CUDA (TF32 is off for matmul by default, unlike for cuDNN convolutions).
    return torch.matmul(torch.matmul(rows, x), cols.T)
