"""Batched, on-device image perturbations with a stated frequency meaning.

Every perturbation maps a float (N, C, H, W) batch to one of the same shape,
dtype and device, and is deterministic (given its seed, where it has one).
"""

from __future__ import annotations

import torch

from .errors import AuditConfigError


class Perturbation:
    """Base class: call it on a batch; `name` is its short label in tables."""

    clip: bool = False

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_floating_point(x) or x.ndim != 4:
            raise TypeError(f"{self!r} expects a float (N, C, H, W) tensor, got {x.dtype} of shape {tuple(x.shape)}")
        out = self.apply(x)
        return out.clamp(0, 1) if self.clip else out

    @property
    def name(self) -> str:
        return repr(self)


def radial_distance(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Distance of each centred-spectrum bin from DC, where `fftshift` puts DC: (h//2, w//2)."""
    iy = torch.arange(h, device=device, dtype=torch.float64) - h // 2
    ix = torch.arange(w, device=device, dtype=torch.float64) - w // 2
    return torch.sqrt(iy[:, None] ** 2 + ix[None, :] ** 2)


class LowPass(Perturbation):
    """Ideal radial low-pass: keep centred-spectrum bins with distance from DC
    strictly below `cutoff * min(H, W) / 2`, i.e. `cutoff` is a fraction of
    Nyquist in (0, 1]. Removes high-frequency detail (Wang et al., CVPR 2020).

    The result is the real part of the inverse transform, unclipped unless
    `clip=True`.
    """

    def __init__(self, cutoff: float, clip: bool = False):
        if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not (0 < cutoff <= 1):
            raise AuditConfigError(
                f"LowPass cutoff is a fraction of Nyquist and must lie in (0, 1], got {cutoff!r}; "
                "e.g. LowPass(0.4) keeps the lowest 40% of frequencies"
            )
        self.cutoff = float(cutoff)
        self.clip = bool(clip)
        self._masks: dict[tuple, torch.Tensor] = {}

    def mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """The 0/1 mask in *unshifted* FFT layout, cached per size and device."""
        key = (h, w, str(device))
        if key not in self._masks:
            keep = radial_distance(h, w, device) < self.cutoff * min(h, w) / 2
            # Moving the mask instead of the spectrum saves two shifts per batch.
            self._masks[key] = torch.fft.ifftshift(keep, dim=(-2, -1))
        return self._masks[key]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.fft2(x, dim=(-2, -1))
        spectrum = spectrum * self.mask(x.shape[-2], x.shape[-1], x.device)
        return torch.fft.ifft2(spectrum, dim=(-2, -1)).real.to(x.dtype)

    def __repr__(self) -> str:
        return f"LowPass({self.cutoff:g}{', clip=True' if self.clip else ''})"


class Identity(Perturbation):
    """No change: the clean condition."""

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __repr__(self) -> str:
        return "Identity()"

