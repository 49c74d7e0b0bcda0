"""SynthFaces: procedurally drawn faces with subgroup attributes, shipped as code.

Every image is a soft-edged face oval with hair, eyes and a mouth on a shaded
background. Two subgroup attributes are drawn independently and uniformly:
``skin_tone`` (``light`` / ``dark``, the face colour) and ``gender``
(``f`` / ``m``, long or short hair). The binary task label ``y`` is carried by
the oval's aspect ratio, a low-frequency cue present for everyone.

The *planted* configuration adds a second, high-frequency cue for one
subgroup only: fine stripes (period 3 px, i.e. 2/3 of Nyquist) whose
orientation encodes ``y``. A low-pass perturbation erases them, so a model that
leans on them loses accuracy on that subgroup only; how much it leans on them
is what a convolution's kernel size can change. The *null* configuration
carries no stripes and reports attributes drawn independently of the pixels,
so every subgroup comes from one distribution and any measured gap is noise.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace

import torch

from ._subgroups import SubgroupDataset

SKIN = {"light": (0.87, 0.72, 0.62), "dark": (0.45, 0.30, 0.22)}


@dataclass(frozen=True)
class SynthFacesConfig:
    """Where each subgroup's label evidence lives in the spectrum.

    `stripe_group` is the ``(attribute, value)`` whose images carry the
    high-frequency label cue, or None for no stripes. `stripe_period` is in
    pixels; `aspect_gap` / `aspect_noise` set the low-frequency cue's strength
    (their ratio is d', so Bayes accuracy from the oval alone is Phi(d'/2)).
    `independent_attributes` reports attributes drawn apart from the pixels.
    """

    name: str
    size: int = 32
    stripe_group: tuple[str, str] | None = None
    stripe_period: float = 3.0
    stripe_amplitude: float = 0.25
    aspect_gap: float = 0.12
    aspect_noise: float = 0.06
    pixel_noise: float = 0.02
    independent_attributes: bool = False

    def with_(self, **changes) -> "SynthFacesConfig":
        return replace(self, **changes)


NULL = SynthFacesConfig(name="null", independent_attributes=True)
PLANTED = SynthFacesConfig(name="planted", stripe_group=("skin_tone", "dark"))
CONFIGS = {"null": NULL, "planted": PLANTED}


def _face_masks(xx, yy, cx, cy, half_w, half_h, female) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft masks (n, s, s) of the face, the hair (long for `female`) and the eyes and mouth inside the face."""
    n = female.shape[0]

    def soft_ellipse(ax: torch.Tensor, ay: torch.Tensor, ox=0.0, oy=0.0) -> torch.Tensor:
        # A 1-px sigmoid edge keeps the shape itself low-frequency (no aliasing).
        r = torch.sqrt(((xx - cx - ox) / ax) ** 2 + ((yy - cy - oy) / ay) ** 2)
        return torch.sigmoid((1 - r) * torch.minimum(ax, ay) * 1.5)

    face = soft_ellipse(half_w, half_h)
    hair_outer = soft_ellipse(half_w * 1.22, half_h * 1.12, oy=-0.6)
    above_brow = torch.sigmoid((cy - 0.35 * half_h - yy) * 1.5)
    long_hair = female.view(n, 1, 1).float()
    hair = hair_outer * (1 - face) * torch.clamp(above_brow + long_hair, max=1.0)
    hair = torch.maximum(hair, hair_outer * above_brow * face)

    eye_r = 1.3
    eyes = sum(
        torch.sigmoid((eye_r - torch.sqrt((xx - cx - side * 0.42 * half_w) ** 2
                                          + (yy - cy + 0.15 * half_h) ** 2)) * 2.5)
        for side in (-1, 1)
    )
    mouth = (torch.sigmoid((0.55 * half_w - (xx - cx).abs()) * 2)
             * torch.sigmoid((0.8 - (yy - cy - 0.45 * half_h).abs()) * 3))
    return face, hair, (eyes + mouth).clamp(max=1.0) * face


def _paint(face, hair, features, dark, xx, s: int, u, g: torch.Generator) -> torch.Tensor:
    """Colour the masks: background shade with a gentle gradient, skin by tone, dark hair and features."""
    n = dark.shape[0]
    base = u(0.30, 0.70, 1, 1, 1)
    tilt = u(-0.008, 0.008, 1, 1, 1)
    background = (base + tilt * (xx - s / 2)[:, None]).expand(n, 3, s, s)
    # Mostly a shared brightness shift, a little per-channel hue jitter.
    skin = (torch.tensor([SKIN["light"], SKIN["dark"]])[dark.long()] + 0.04 * torch.randn(n, 1, generator=g)
            + 0.015 * torch.randn(n, 3, generator=g))
    hair_rgb = torch.tensor([0.16, 0.11, 0.08]) + 0.03 * torch.randn(n, 3, generator=g)
    feature_rgb = torch.tensor([0.10, 0.06, 0.06])

    img = background
    img = img * (1 - face[:, None]) + skin[:, :, None, None] * face[:, None]
    img = img * (1 - hair[:, None]) + hair_rgb[:, :, None, None] * hair[:, None]
    return img * (1 - features[:, None]) + feature_rgb[None, :, None, None] * features[:, None]


def _stripes(cfg: SynthFacesConfig, attrs: dict, y: torch.Tensor, face: torch.Tensor, xx: torch.Tensor,
             yy: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """The label's high-frequency evidence, on the faces of `cfg.stripe_group` only: (n, 1, size, size)."""
    n = len(y)
    attr, value = cfg.stripe_group
    carries = torch.tensor([v == value for v in attrs[attr]])
    theta = y.float() * (math.pi / 2)  # label 0: vertical stripes, label 1: horizontal
    wave = torch.sin(2 * math.pi * (xx * torch.cos(theta).view(n, 1, 1) + yy * torch.sin(theta).view(n, 1, 1))
                     / cfg.stripe_period + phase)
    return (cfg.stripe_amplitude * wave * face * carries.view(n, 1, 1).float())[:, None]


def synthfaces(
    n: int, seed: int = 0, config: str | SynthFacesConfig = "planted", split: str = "train"
) -> SubgroupDataset:
    """Draw `n` SynthFaces images, deterministic in (`seed`, `split`, `config`).

    Images are float32 (n, 3, size, size) in [0, 1]; labels are int64 in {0, 1}.
    """
    cfg = CONFIGS[config] if isinstance(config, str) else config
    if n < 1:
        raise ValueError(f"synthfaces needs n >= 1, got {n}")
    try:
        made = _drawn(int(n), int(seed), cfg, split)
    except TypeError:  # a config built with a list (unhashable) is drawn each time
        return _draw(int(n), int(seed), cfg, split)
    # Drawn once per (size, seed, configuration, split) in a process: every audit, look and test that asks for the
    # default data gets it without the second of drawing. Each caller gets its own tensors and lists, so a write
    # into one set never reaches the next caller.
    return replace(made, images=made.images.clone(), labels=made.labels.clone(),
                   attributes={k: list(v) for k, v in made.attributes.items()}, meta=dict(made.meta))


@functools.lru_cache(maxsize=4)
def _drawn(n: int, seed: int, cfg: SynthFacesConfig, split: str) -> SubgroupDataset:
    return _draw(n, seed, cfg, split)


def _draw(n: int, seed: int, cfg: SynthFacesConfig, split: str) -> SubgroupDataset:
    # Train and test splits of one seed must not share images.
    salt = {"train": 0, "test": 1, "val": 2}.get(split, sum(map(ord, split)))
    g = torch.Generator().manual_seed(int(seed) * 1009 + salt)
    s = cfg.size

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=g)

    y = torch.randint(0, 2, (n,), generator=g)
    dark = torch.randint(0, 2, (n,), generator=g).bool()
    female = torch.randint(0, 2, (n,), generator=g).bool()

    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    yy, xx = yy[None], xx[None]
    cx = s / 2 - 0.5 + torch.randn(n, 1, 1, generator=g)
    cy = s / 2 - 0.5 + torch.randn(n, 1, 1, generator=g)
    half_h = s * u(0.30, 0.36, 1, 1)
    aspect = 0.74 + cfg.aspect_gap * y.view(n, 1, 1) + cfg.aspect_noise * torch.randn(n, 1, 1, generator=g)
    half_w = half_h * aspect.clamp(0.5, 1.1)

    face, hair, features = _face_masks(xx, yy, cx, cy, half_w, half_h, female)
    img = _paint(face, hair, features, dark, xx, s, u, g)

    attrs = {"skin_tone": ["dark" if d else "light" for d in dark.tolist()],
             "gender": ["f" if f else "m" for f in female.tolist()]}
    if cfg.stripe_group is not None:
        img = img + _stripes(cfg, attrs, y, face, xx, yy, u(0, 2 * math.pi, 1, 1))

    img = img + cfg.pixel_noise * torch.randn(img.shape, generator=g)
    img = img.clamp(0, 1).contiguous()

    if cfg.independent_attributes:
        # The null world: the reported subgroup says nothing about the pixels.
        attrs = {
            "skin_tone": ["dark" if b else "light" for b in torch.randint(0, 2, (n,), generator=g).bool().tolist()],
            "gender": ["f" if b else "m" for b in torch.randint(0, 2, (n,), generator=g).bool().tolist()],
        }
    return SubgroupDataset(
        images=img.float(),
        labels=y.long(),
        attributes=attrs,
        name=f"SynthFaces[{cfg.name}, {split}, n={n}, seed={seed}]",
        meta={"source": "synthfaces", "config": asdict(cfg), "seed": seed, "split": split},
    )
