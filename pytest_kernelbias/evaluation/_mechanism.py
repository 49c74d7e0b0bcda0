"""The mechanism, measured per model: kernel spectra, activation high-frequency shares, heat maps."""

from __future__ import annotations

from typing import Sequence

import torch

from ..intervention import level_label
from ._spectra import (
    activation_spectra,
    fourier_heat_map,
    high_frequency_ratio,
    kernel_spectrum,
    layer_map_shape,
)


def _subset(groups: dict, per_group: int) -> tuple[torch.Tensor, dict]:
    """A fixed, seeded sample of at most `per_group` images per subgroup, and its group index."""
    gen = torch.Generator().manual_seed(0)
    picked = {g: idx[torch.randperm(len(idx), generator=gen)[:per_group]] for g, idx in groups.items()}
    index = torch.cat(list(picked.values()))
    offsets, local = 0, {}
    for g, idx in picked.items():
        local[g] = torch.arange(offsets, offsets + len(idx))
        offsets += len(idx)
    return index, local


SPECTRAL_IMAGES = 256  # images per subgroup whose activation spectra are measured (part of evaluation keys)
# How the spectra are computed, in the evaluation keys: an evaluation stored under another method is measured again.
SPECTRAL_METHOD = "forward to the layer, rfft2 at the maps' precision, float64 bin sums"


def spectral_layers(level, layers: Sequence[str], layer_map: bool) -> list[str]:
    """The layers whose activation spectra a model of `level` is measured at.

    An audit measures its first intervened layer. A layer map measures each arm at its own layer and the
    shared reference at every arm's layer, so each arm's spectral shift is paired with the reference there.
    """
    if not layer_map:
        return [layers[0]]
    own = getattr(level, "layer", None)
    return [own] if own is not None else list(layers)


def measure_spectra(model, layer: str, level, seed, loaders, cutoff,
                    per_group: int = SPECTRAL_IMAGES) -> tuple[list, list]:
    """One row per subgroup (high-frequency share of `layer`'s output), and that layer's kernels' spectrum.

    A mean spectrum settles with a few hundred images, so a fixed sample per
    subgroup (the same for every model, keeping the levels paired) bounds the cost.
    """
    spectrum = kernel_spectrum(model.get_submodule(layer))
    kernel = None if spectrum is None else spectrum.tolist()
    index, groups = _subset(loaders.groups, per_group)
    by_group = activation_spectra(model, layer, loaders.data.images[index], groups, device=loaders.device)
    shape = layer_map_shape(model, layer, loaders.data.images[0], device=loaders.device)
    rows = [{"level": level_label(level), "seed": seed, "subgroup": g, "layer": layer,
             "hf_ratio": float(high_frequency_ratio(spectrum, cutoff, shape))} for g, spectrum in by_group.items()]
    return rows, kernel


def heat_maps(model, loaders, options: dict) -> dict:
    """Fourier heat maps per subgroup on a fixed, seeded subset of each subgroup's test images.

    Layout (`fourier_heat_map`): cell (a, b) is centred frequency (i, j) = (a*step - H//2, b*step - W//2),
    i vertical, j horizontal, for i < H - H//2 and j < W - W//2. With step=1 and even H, W the map is
    H x W, DC at cell (H/2, W/2), and row 0 / column 0 are the Nyquist frequency -H/2 (= +H/2).
    The common reference layout (Yin et al. 2019; the gatheluck/FourierHeatmap port) is
    (H-1) x (W-1), cell (a', b') = frequency (a' - (H/2 - 1), b' - (W/2 - 1)), without the Nyquist
    row and column: reference == map[1:, 1:] for step=1, and map[1:, 1:] == reference[s-1::s, s-1::s]
    for step=s. Odd sizes have no Nyquist row or column, so all H x W cells are kept, DC in the middle.
    See docs/perturbations.md.
    """
    # A fixed subset keeps the cost bounded and the maps paired across levels.
    index, groups = _subset(loaders.groups, int(options.get("images", 256)))
    maps = fourier_heat_map(model, loaders.data.images[index], loaders.data.labels[index],
                            eps=float(options.get("eps", 4.0)), groups=groups, step=int(options.get("step", 4)),
                            device=loaders.device)
    return {g: m.tolist() for g, m in maps.items()}
