"""Frequency content of learned features: radial spectra, high-frequency ratios, Fourier heat maps.

Radial bins are integer distances from DC in the centred spectrum; bin r
covers distances in [r - 0.5, r + 0.5), the last bin everything beyond.
Frequencies as fractions of Nyquist are r / (min(H, W) // 2).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..intervention import is_cond_conv
from ..perturbations import radial_distance


def _radial_bins(h: int, w: int, device=None) -> tuple[torch.Tensor, int]:
    """Bin index per coefficient of the centred (h, w) spectrum, and the number of bins.

    Bin r holds the coefficients whose distance from DC rounds to r; the last
    bin also holds everything beyond it (the spectrum's corners).
    """
    n_bins = min(h, w) // 2 + 1
    return radial_distance(h, w, device).round().long().clamp(max=n_bins - 1).flatten(), n_bins


def radial_bin_counts(h: int, w: int) -> torch.Tensor:
    """How many Fourier coefficients of an (h, w) map fall in each radial bin."""
    bins, n_bins = _radial_bins(h, w)
    return torch.bincount(bins, minlength=n_bins).double()


def _half_plane_bins(h: int, w: int, device=None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Radial bin and multiplicity of each coefficient of an rfft2 (h, w//2 + 1) half spectrum; the bin count.

    A real map's spectrum is conjugate-symmetric, so column v > 0 stands for itself and its mirror
    -v at the same distance (multiplicity 2), except the Nyquist column of an even width, which is
    its own mirror. Distances are those of `_radial_bins` (signed frequencies as fftshift lays them out).
    """
    n_bins = min(h, w) // 2 + 1
    fy = torch.fft.fftfreq(h, 1 / h, dtype=torch.float64, device=device)
    fx = torch.arange(w // 2 + 1, dtype=torch.float64, device=device)
    bins = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).round().long().clamp(max=n_bins - 1)
    weight = torch.full((w // 2 + 1,), 2.0, dtype=torch.float64, device=device)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    return bins.flatten(), weight.expand(h, -1).flatten(), n_bins


def radial_power_spectrum(x: torch.Tensor, remove_mean: bool = True) -> torch.Tensor:
    """Mean power per radial bin of each (..., H, W) map; shape (..., min(H, W)//2 + 1).

    For feature maps the per-map mean is removed so the DC bin does not swamp
    the ratio; a kernel's DC (its response to a constant) is kept. Computed on the
    real FFT's half spectrum with each coefficient counted as often as it occurs in
    the full one: the full-spectrum sums, faster on a CPU (docs/performance.md).
    The transform runs at the maps' own precision (float32 for activations, at least), and the power
    is summed per bin in float64: high-frequency shares move by under 1e-5 (benchmarks/spectra_cost.py).
    """
    h, w = x.shape[-2:]
    x = x if x.dtype == torch.float64 else x.float()
    if remove_mean:
        x = x - x.mean(dim=(-2, -1), keepdim=True)
    half = torch.fft.rfft2(x)
    power = half.real ** 2 + half.imag ** 2
    bins, weight, n_bins = _half_plane_bins(h, w, x.device)
    flat = power.reshape(-1, bins.numel()).double() * weight
    sums = torch.zeros(flat.shape[0], n_bins, dtype=flat.dtype, device=x.device).index_add_(1, bins, flat)
    return (sums / radial_bin_counts(h, w).to(x.device, flat.dtype)).reshape(*x.shape[:-2], n_bins)


def high_frequency_ratio(spectrum: torch.Tensor, cutoff: float = 0.5,
                         shape: tuple[int, int] | None = None) -> torch.Tensor:
    """Share of the non-DC energy in the radial bins at or above `cutoff` x Nyquist (last dim = bins).

    `spectrum` is a mean power per bin (`radial_power_spectrum`) of (H, W)
    maps, `shape`; each bin's energy is its mean power times the number of
    Fourier coefficients it holds, so the ratio is the energy share of the
    coefficients whose rounded distance from DC is at least cutoff x Nyquist,
    Nyquist being min(H, W) // 2. Without `shape` the maps are taken to be
    square with an even side, 2 * (bins - 1).
    """
    n_bins = spectrum.shape[-1]
    h, w = shape if shape is not None else (2 * (n_bins - 1),) * 2
    if min(h, w) // 2 + 1 != n_bins:
        raise ValueError(f"a spectrum of {n_bins} radial bins does not come from {h}x{w} maps")
    counts = radial_bin_counts(h, w).to(spectrum.device, spectrum.dtype)
    r = torch.arange(n_bins, device=spectrum.device)
    energy = torch.where(r == 0, torch.zeros_like(counts), counts) * spectrum
    high = energy[..., r >= cutoff * (n_bins - 1)].sum(-1)
    total = energy.sum(-1)
    return torch.where(total > 0, high / total.clamp_min(1e-300), torch.zeros_like(total))


def kernel_spectrum(conv: nn.Module, size: int = 32) -> torch.Tensor | None:
    """Mean radial power spectrum of a conv's kernels, zero-padded to `size` x `size` so levels compare; None
    for a layer without learned kernels (a pool)."""
    if not isinstance(getattr(conv, "weight", None), torch.Tensor):
        return None
    # CondConv2d keeps its experts' kernels flattened, (experts, out * in * kh * kw).
    w = conv.weight.detach().reshape(-1, *conv.kernel_size) if is_cond_conv(conv) \
        else conv.weight.detach().reshape(-1, *conv.weight.shape[-2:])
    kh, kw = w.shape[-2:]
    padded = w.new_zeros(w.shape[0], max(size, kh), max(size, kw))
    padded[:, :kh, :kw] = w
    return radial_power_spectrum(padded, remove_mean=False).mean(0)


class _Reached(Exception):
    """Raised by the spectra hook once the measured layer has run, to end the forward pass there."""


@torch.no_grad()
def activation_spectra(
    model: nn.Module, layer: str, images: torch.Tensor, groups: Mapping[str, torch.Tensor],
    batch_size: int = 256, device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Per subgroup, the mean radial power spectrum of `layer`'s output maps on that subgroup's images.

    `high_frequency_ratio(spectrum, cutoff, layer_map_shape(...))` turns one into an energy share.
    """
    device = torch.device(device)
    module = model.get_submodule(layer)
    model.to(device).eval()
    captured: list[torch.Tensor] = []

    def capture(_m, _a, out):
        captured.append(radial_power_spectrum(out).mean(1))
        raise _Reached  # the rest of the network cannot change this layer's maps: it need not run

    handle = module.register_forward_hook(capture)
    try:
        per_image = []
        for start in range(0, len(images), batch_size):
            captured.clear()
            try:
                model(images[start:start + batch_size].to(device, copy=True))  # never the caller's images
            except _Reached:
                pass
            per_image.append(captured[0].cpu())
    finally:
        handle.remove()
    spectra = torch.cat(per_image)
    return {g: spectra[idx].mean(0) for g, idx in groups.items()}


@torch.no_grad()
def layer_map_shape(model: nn.Module, layer: str, image: torch.Tensor, device: str | torch.device = "cpu"):
    """(H, W) of `layer`'s output maps for one input image of shape (C, H, W)."""
    shapes: list = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _a, out: shapes.append(out.shape[-2:]))
    try:
        model.to(device).eval()(image[None].to(device, copy=True))  # a copy: the model may write into it
    finally:
        handle.remove()
    return tuple(shapes[0])


def fourier_basis(h: int, w: int, i: int, j: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """U_ij: the real image with unit L2 norm whose spectrum is non-zero only at (i, j) and (-i, -j).

    Built by inverting a spectrum with those two bins set, as Yin et al. (2019) define it.
    """
    spec = torch.zeros(h, w, dtype=torch.complex128, device=device)
    spec[i % h, j % w] += 1
    spec[-i % h, -j % w] += 1
    u = torch.fft.ifft2(spec).real
    return (u / u.norm()).to(dtype)


@torch.no_grad()
def fourier_heat_map(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
    groups: Mapping[str, torch.Tensor] | None = None, step: int = 1, seed: int = 0,
    batch_size: int = 512, device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Yin et al. (2019) Fourier heat maps, per subgroup.

    Cell (a, b) is the error rate in [0, 1] under clip(x + r * eps * U_ij, 0, 1)
    for the centred frequency (i, j) = (a*step - H//2, b*step - W//2), where r is
    a random sign per image and channel (seeded) and `eps` is the L2 norm of the
    perturbation per channel. `step` > 1 computes a coarser grid (cost is one
    pass over `images` per cell).
    """
    device = torch.device(device)
    model.to(device).eval()
    n, c, h, w = images.shape
    groups = dict(groups) if groups is not None else {"all": torch.arange(n)}
    rows, cols = range(-(h // 2), h - h // 2, step), range(-(w // 2), w - w // 2, step)
    gen = torch.Generator().manual_seed(seed)
    signs = (torch.randint(0, 2, (n, c, 1, 1), generator=gen) * 2 - 1).to(device, images.dtype)
    wrong = torch.zeros(len(rows), len(cols), n, dtype=torch.bool)
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            u = fourier_basis(h, w, i, j, images.dtype, device)
            for start in range(0, n, batch_size):
                x = images[start:start + batch_size].to(device)
                s = signs[start:start + batch_size]
                pred = model((x + s * eps * u).clamp(0, 1)).argmax(1).cpu()
                wrong[a, b, start:start + batch_size] = pred != labels[start:start + batch_size]
    return {g: wrong[:, :, idx].double().mean(-1) for g, idx in groups.items()}
