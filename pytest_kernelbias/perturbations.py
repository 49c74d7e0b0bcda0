"""Batched, on-device image perturbations with a stated frequency meaning.

Every perturbation maps a float (N, C, H, W) batch to one of the same shape,
dtype and device, is deterministic given its seed, and has a `clip` option.
Radii of spectral filters are fractions of Nyquist: 1.0 is `min(H, W) / 2`
frequency bins from DC in the centred spectrum (`fftshift` puts DC at
(H//2, W//2)). `Cls.sweep([...])` declares a severity sweep that an audit
evaluates in one pass over the data. Valid ranges and blur border modes: docs/perturbations.md.
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from . import _blur
from ._blur import gaussian_kernel1d  # noqa: F401  (public name, kept importable from here)
from .errors import PerturbationError, PerturbationSettingError


def _real(value: object) -> bool:
    # numbers.Real admits numpy scalars (np.float32 is no `float`); bool is excluded on purpose.
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _fraction(name: str, value: object, lo_open: bool = True) -> float:
    if not _real(value) or not ((0 < value) if lo_open else (0 <= value)) or value > 1:
        interval = "(0, 1]" if lo_open else "[0, 1]"
        raise PerturbationSettingError(
            f"{name} is a fraction of Nyquist and must lie in {interval}, got {value!r}; "
            "e.g. LowPass(0.4) keeps the lowest 40% of frequencies"
        )
    return float(value)


def _non_negative(name: str, value: object, unit: str, upper: float = math.inf) -> float:
    if not _real(value) or value < 0 or value > upper:
        bound = "" if upper == math.inf else f" and <= {upper:g}"
        raise PerturbationSettingError(f"{name} must be a finite number >= 0{bound} ({unit}), got {value!r}")
    return float(value)


def _integer(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise PerturbationSettingError(f"{name} must be an int from {lo} to {hi}, got {value!r}")
    return int(value)


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
        if min(x.shape[-2:]) == 0:
            raise PerturbationError(f"{self!r} needs images of at least 1x1 pixels, got shape {tuple(x.shape)}")
        if x.numel() == 0:  # no images or no channels: nothing to do, and the FFT and JPEG backends refuse it
            return x.clone()
        # torch has no CPU FFT or antialiased resize in float16/bfloat16: compute in float32, round once at the end.
        low = x.dtype in (torch.float16, torch.bfloat16)
        # apply() gets its own copy: one that writes into its input must not rewrite the caller's images.
        out = self.apply(x.float() if low else x.clone())
        out = out.clamp(0, 1) if self.clip else out
        return out.to(x.dtype) if low else out

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

    def __repr__(self) -> str:
        # A subclass without its own repr is labelled by its parameters, not its memory address, so its
        # label (and a baseline that names it) is the same in the next run.
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items()) if not k.startswith("_"))
        return f"{type(self).__name__}({params})"

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
        # Chunks of 64 images keep the complex spectra in cache: faster at 64x64 (docs/performance.md).
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
            raise PerturbationSettingError(f"BandPass needs lo < hi (fractions of Nyquist), got lo={lo}, hi={hi}")
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
        scale = self.sigma * nyquist
        if scale == 0:
            return (distance == 0).double()  # the limit: only the mean survives
        # Dividing before squaring: (sigma * nyquist)**2 underflows to 0 for sigma ~1e-160 and DC became 0/0 = NaN.
        return torch.exp(-0.5 * (distance / scale) ** 2)

    def __repr__(self) -> str:
        return self._repr(f"{self.sigma:g}")


class GaussianBlur(Perturbation):
    """Pixel-space Gaussian blur, `sigma` in pixels (0 to 1e5): equals `scipy.ndimage.gaussian_filter`.

    Separable, truncated at radius int(4 sigma + 0.5) px like scipy (truncate=4.0);
    its transfer function approximates exp(-2 pi^2 sigma^2 f^2), f in cycles/pixel.
    Any sigma works on any image size, also when the kernel is wider than the image.
    `padding_mode` is how borders are extended, named as in torch, with scipy's mode:

    - "reflect" (default): scipy "mirror", ``d c b | a b c d | c b a`` (the edge is not repeated)
    - "symmetric": scipy "reflect", ``c b a | a b c d | d c b`` (the edge is repeated)
    - "replicate": scipy "nearest", ``a a a | a b c d | d d d``; ImageNet-C's gaussian_blur
      (skimage.filters.gaussian, default mode "nearest") is ``GaussianBlur(c, padding_mode="replicate", clip=True)``
    - "circular": scipy "wrap", ``b c d | a b c d | a b c``
    - "zeros": scipy "constant" with cval=0

    Each channel is blurred on its own (scipy's sigma=(0, 0, s, s) on the batch).
    """

    severity_name = "sigma"

    def __init__(self, sigma: float, clip: bool = False, padding_mode: str = "reflect"):
        self.sigma = _non_negative("GaussianBlur sigma", sigma, "pixels", upper=_blur.MAX_SIGMA)
        if padding_mode not in _blur.SCIPY_MODES:
            raise PerturbationSettingError(
                f"GaussianBlur padding_mode must be one of {', '.join(_blur.SCIPY_MODES)}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.clip = bool(clip)
        self._matrices: dict[tuple, torch.Tensor] = {}

    def matrix(self, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The (n, n) blur of one axis of n pixels, cached per size, device and dtype."""
        key = (n, str(device), dtype)
        if key not in self._matrices:
            self._matrices[key] = _blur.blur_matrix(self.sigma, n, self.padding_mode).to(device=device, dtype=dtype)
        return self._matrices[key]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0:
            return x
        h, w = x.shape[-2:]
        return _blur.blur(x, self.matrix(h, x.device, x.dtype), self.matrix(w, x.device, x.dtype))

    def __repr__(self) -> str:
        # The mode is part of the name: conditions, and the cached evaluations keyed by them, must not collide.
        mode = [] if self.padding_mode == "reflect" else [f"padding_mode={self.padding_mode!r}"]
        return self._repr(f"{self.sigma:g}", *mode)


class Downsample(Perturbation):
    """Bicubic (antialiased) down by `factor`, then bicubic back up: removes detail above ~1/factor of Nyquist."""

    severity_name = "factor"

    def __init__(self, factor: float, clip: bool = False):
        if not _real(factor) or factor < 1:
            raise PerturbationSettingError(f"Downsample factor must be a number >= 1 and finite, got {factor!r}")
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
        self.seed = _integer("GaussianNoise seed", seed, 0, 2**64 - 1)  # what torch.Generator accepts
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
        self.quality = _integer("JPEG quality", quality, 1, 100)
        self.clip = bool(clip)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        import io

        import numpy as np
        from PIL import Image

        if x.shape[1] not in (1, 3):
            raise PerturbationSettingError(
                f"JPEG needs images with 1 or 3 channels (grey or RGB), got {x.shape[1]}; "
                "convert them first, or use another perturbation")
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
            raise PerturbationSettingError("Compose takes one or more Perturbation objects")
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
