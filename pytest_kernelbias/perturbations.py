"""Batched, on-device image perturbations with a stated frequency meaning.

Every perturbation maps a float (N, C, H, W) batch to one of the same shape,
dtype and device, is deterministic given its seed, and has a `clip` option.
Radii of spectral filters are fractions of Nyquist: 1.0 is `min(H, W) / 2`
frequency bins from DC in the centred spectrum (`fftshift` puts DC at
(H//2, W//2)). `Cls.sweep([...])` declares a severity sweep that an audit
evaluates in one pass over the data.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from .errors import AuditConfigError


def _fraction(name: str, value: object, lo_open: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not ((0 < value) if lo_open else (0 <= value)) or value > 1:
        interval = "(0, 1]" if lo_open else "[0, 1]"
        raise AuditConfigError(
            f"{name} is a fraction of Nyquist and must lie in {interval}, got {value!r}; "
            "e.g. LowPass(0.4) keeps the lowest 40% of frequencies"
        )
    return float(value)


def _non_negative(name: str, value: object, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise AuditConfigError(f"{name} must be a finite number >= 0 ({unit}), got {value!r}")
    return float(value)


class Perturbation:
    """Base class: call it on a batch. `severity` is the swept parameter."""

    clip: bool = False
    severity_name: str = ""

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reset(self) -> None:
        """Restart any random stream, so every model sees the same perturbed images."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_floating_point(x) or x.ndim != 4:
            raise TypeError(f"{self!r} expects a float (N, C, H, W) tensor, got {x.dtype} of shape {tuple(x.shape)}")
        out = self.apply(x)
        return out.clamp(0, 1) if self.clip else out

    @property
    def name(self) -> str:
        return repr(self)

    @property
    def severity(self) -> float | None:
        return getattr(self, self.severity_name, None) if self.severity_name else None

    @classmethod
    def sweep(cls, severities: Iterable[float], **kwargs) -> list["Perturbation"]:
        """One perturbation per severity, e.g. ``LowPass.sweep([0.9, 0.7, 0.5])``."""
        return [cls(s, **kwargs) for s in severities]

    def _repr(self, *args: str) -> str:
        extra = [*args, *(["clip=True"] if self.clip else [])]
        return f"{type(self).__name__}({', '.join(extra)})"


def radial_distance(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Distance of each centred-spectrum bin from DC, where `fftshift` puts DC: (h//2, w//2)."""
    iy = torch.arange(h, device=device, dtype=torch.float64) - h // 2
    ix = torch.arange(w, device=device, dtype=torch.float64) - w // 2
    return torch.sqrt(iy[:, None] ** 2 + ix[None, :] ** 2)


class SpectralFilter(Perturbation):
    """Multiplies each channel's spectrum by a radial transfer function."""

    def __init__(self) -> None:
        self._masks: dict[tuple, torch.Tensor] = {}

    def transfer(self, distance: torch.Tensor, nyquist: float) -> torch.Tensor:
        """Gain in [0, 1] at each centred-spectrum distance (bins); `nyquist` is min(H, W) / 2 bins."""
        raise NotImplementedError

    def mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """The transfer function in *unshifted* FFT layout, cached per size and device."""
        key = (h, w, str(device))
        if key not in self._masks:
            gain = self.transfer(radial_distance(h, w, device), min(h, w) / 2)
            # Moving the mask instead of the spectrum saves two shifts per batch.
            self._masks[key] = torch.fft.ifftshift(gain, dim=(-2, -1))
        return self._masks[key]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.mask(x.shape[-2], x.shape[-1], x.device)
        # Chunks of 64 images keep the complex spectra in cache: measured 1.5x faster at 64x64 (benchmarks/perturb.py).
        return torch.cat([self._filter(chunk, mask) for chunk in x.split(64)]) if len(x) > 64 else self._filter(x, mask)

    @staticmethod
    def _filter(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.fft2(x, dim=(-2, -1))
        return torch.fft.ifft2(spectrum * mask.to(spectrum.real.dtype), dim=(-2, -1)).real.to(x.dtype)


class LowPass(SpectralFilter):
    """Ideal radial low-pass: keep bins strictly closer to DC than `cutoff` x Nyquist.

    Removes high-frequency detail (Wang et al., CVPR 2020). Unclipped unless `clip=True`.
    """

    severity_name = "cutoff"

    def __init__(self, cutoff: float, clip: bool = False):
        super().__init__()
        self.cutoff = _fraction("LowPass cutoff", cutoff)
        self.clip = bool(clip)

    def transfer(self, distance: torch.Tensor, nyquist: float) -> torch.Tensor:
        return (distance < self.cutoff * nyquist).double()

    def __repr__(self) -> str:
        return self._repr(f"{self.cutoff:g}")


class HighPass(SpectralFilter):
    """Ideal radial high-pass, the exact complement of `LowPass(cutoff)`: keeps only fine detail."""

    severity_name = "cutoff"

    def __init__(self, cutoff: float, clip: bool = False):
        super().__init__()
        self.cutoff = _fraction("HighPass cutoff", cutoff)
        self.clip = bool(clip)

    def transfer(self, distance: torch.Tensor, nyquist: float) -> torch.Tensor:
        return (distance >= self.cutoff * nyquist).double()

    def __repr__(self) -> str:
        return self._repr(f"{self.cutoff:g}")


class BandPass(SpectralFilter):
    """Ideal radial band-pass: keep `lo` x Nyquist <= distance < `hi` x Nyquist."""

    severity_name = "lo"

    def __init__(self, lo: float, hi: float, clip: bool = False):
        super().__init__()
        self.lo = _fraction("BandPass lo", lo, lo_open=False)
        self.hi = _fraction("BandPass hi", hi)
        if self.lo >= self.hi:
            raise AuditConfigError(f"BandPass needs lo < hi (fractions of Nyquist), got lo={lo}, hi={hi}")
        self.clip = bool(clip)

    def transfer(self, distance: torch.Tensor, nyquist: float) -> torch.Tensor:
        return ((distance >= self.lo * nyquist) & (distance < self.hi * nyquist)).double()

    @classmethod
    def sweep(cls, bands: Iterable[Sequence[float]], **kwargs) -> list["Perturbation"]:
        return [cls(lo, hi, **kwargs) for lo, hi in bands]

    def __repr__(self) -> str:
        return self._repr(f"{self.lo:g}", f"{self.hi:g}")


class GaussianLowPass(SpectralFilter):
    """Spectral Gaussian low-pass: gain exp(-d^2 / (2 (sigma x Nyquist)^2)); `sigma` is a fraction of Nyquist."""

    severity_name = "sigma"

    def __init__(self, sigma: float, clip: bool = False):
        super().__init__()
        self.sigma = _non_negative("GaussianLowPass sigma", sigma, "a fraction of Nyquist")
        self.clip = bool(clip)

    def transfer(self, distance: torch.Tensor, nyquist: float) -> torch.Tensor:
        if self.sigma == 0:
            return (distance == 0).double()  # the limit: only the mean survives
        return torch.exp(-(distance ** 2) / (2 * (self.sigma * nyquist) ** 2))

    def __repr__(self) -> str:
        return self._repr(f"{self.sigma:g}")


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, dtype=torch.float64, device=None) -> torch.Tensor:
    """Sampled, truncated (radius ceil(truncate*sigma) px) and normalized 1-D Gaussian."""
    radius = max(1, math.ceil(truncate * sigma))
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    return k / k.sum()


class GaussianBlur(Perturbation):
    """Pixel-space Gaussian blur with `sigma` in pixels (separable, truncated at 4 sigma).

    Its transfer function approximates exp(-2 pi^2 sigma^2 f^2), f in cycles/pixel.
    `padding_mode` is how borders are extended ("reflect" or "circular").
    """

    severity_name = "sigma"

    def __init__(self, sigma: float, clip: bool = False, padding_mode: str = "reflect"):
        self.sigma = _non_negative("GaussianBlur sigma", sigma, "pixels")
        if padding_mode not in ("reflect", "circular", "replicate"):
            raise AuditConfigError(f"padding_mode must be reflect, circular or replicate, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.clip = bool(clip)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0:
            return x
        k = gaussian_kernel1d(self.sigma, dtype=x.dtype, device=x.device)
        r = len(k) // 2
        n, c, h, w = x.shape
        y = x.reshape(n * c, 1, h, w)
        y = F.conv2d(F.pad(y, (r, r, 0, 0), mode=self.padding_mode), k.view(1, 1, 1, -1))
        y = F.conv2d(F.pad(y, (0, 0, r, r), mode=self.padding_mode), k.view(1, 1, -1, 1))
        return y.reshape(n, c, h, w)

    def __repr__(self) -> str:
        return self._repr(f"{self.sigma:g}")


class Downsample(Perturbation):
    """Bicubic (antialiased) down by `factor`, then bicubic back up: removes detail above ~1/factor of Nyquist."""

    severity_name = "factor"

    def __init__(self, factor: float, clip: bool = False):
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 1:
            raise AuditConfigError(f"Downsample factor must be a number >= 1, got {factor!r}")
        self.factor = float(factor)
        self.clip = bool(clip)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        small = (max(1, round(h / self.factor)), max(1, round(w / self.factor)))
        y = F.interpolate(x, size=small, mode="bicubic", align_corners=False, antialias=True)
        return F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)

    def __repr__(self) -> str:
        return self._repr(f"{self.factor:g}")


class GaussianNoise(Perturbation):
    """Additive white Gaussian noise with standard deviation `std` (image units): adds high frequencies.

    The noise stream is seeded by `seed` and restarts on `reset()`, which the
    audit calls before evaluating each model, so every model sees the same noise.
    """

    severity_name = "std"

    def __init__(self, std: float, seed: int = 0, clip: bool = False):
        self.std = _non_negative("GaussianNoise std", std, "image units")
        self.seed = int(seed)
        self.clip = bool(clip)
        self._gens: dict[str, torch.Generator] = {}

    def reset(self) -> None:
        self._gens.clear()

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        key = str(x.device)
        if key not in self._gens:
            self._gens[key] = torch.Generator(device=x.device).manual_seed(self.seed)
        noise = torch.randn(x.shape, generator=self._gens[key], device=x.device, dtype=x.dtype)
        return x + self.std * noise

    def __repr__(self) -> str:
        return self._repr(f"{self.std:g}", *([f"seed={self.seed}"] if self.seed else []))


class JPEG(Perturbation):
    """JPEG compression at `quality` (1-100), via Pillow.

    Quantizes 8x8 DCT coefficients, the high-frequency ones most coarsely;
    at low quality it also adds block edges, so it is not a pure low-pass.

    Inputs are taken as images in [0, 1] (clamped before encoding); the codec runs on the CPU,
    image by image, with chroma subsampling off so only quantization acts.
    """

    severity_name = "quality"

    def __init__(self, quality: int, clip: bool = False):
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise AuditConfigError(f"JPEG quality must be an int from 1 to 100, got {quality!r}")
        self.quality = quality
        self.clip = bool(clip)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        import io

        import numpy as np
        from PIL import Image

        if x.shape[1] not in (1, 3):
            raise AuditConfigError(f"JPEG needs 1 or 3 channels, got {x.shape[1]}")
        u8 = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().permute(0, 2, 3, 1).numpy()
        out = []
        for img in u8:
            buf = io.BytesIO()
            Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(
                buf, format="JPEG", quality=self.quality, subsampling=0)
            decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
            out.append(decoded.reshape(img.shape))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255

    def __repr__(self) -> str:
        return self._repr(str(self.quality))


class Compose(Perturbation):
    """Apply perturbations in order, e.g. ``Compose(LowPass(0.5), GaussianNoise(0.05))``."""

    def __init__(self, *perturbations: Perturbation, clip: bool = False):
        if not perturbations or not all(isinstance(p, Perturbation) for p in perturbations):
            raise AuditConfigError("Compose takes one or more Perturbation objects")
        self.perturbations = perturbations
        self.clip = bool(clip)

    def reset(self) -> None:
        for p in self.perturbations:
            p.reset()

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        for p in self.perturbations:
            x = p(x)
        return x

    def __repr__(self) -> str:
        return self._repr(*map(repr, self.perturbations))


class Identity(Perturbation):
    """No change: the clean condition."""

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __repr__(self) -> str:
        return "Identity()"
