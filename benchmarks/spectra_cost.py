"""The cost of one model's activation spectra: the package's way against a full forward pass in float64.

    python benchmarks/spectra_cost.py [--rounds 5] [--images 512] [--layer conv1]

`activation_spectra` stops the forward pass at the measured layer and transforms its maps in float32
(sums per radial bin in float64). The reference here is what it did before: the whole network runs
after the layer, and the FFT runs in float64. Both run side by side in this process on the same
trained-shape SynthFacesCNN and images, alternating; it prints the median time ratio and the largest
difference of the high-frequency shares (the numbers a report shows), which must stay below 1e-5.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pytest_kernelbias.data import synthfaces
from pytest_kernelbias.evaluation._spectra import (
    _half_plane_bins,
    activation_spectra,
    high_frequency_ratio,
    layer_map_shape,
    radial_bin_counts,
)
from pytest_kernelbias.models import SynthFacesCNN


def reference_spectra(model, layer, images, groups, batch_size=256):
    """Per subgroup, the mean radial power spectrum: whole forward pass, float64 FFT (the former way)."""
    captured = []

    def hook(_m, _a, out):
        x = out.double()
        x = x - x.mean(dim=(-2, -1), keepdim=True)
        half = torch.fft.rfft2(x)
        power = half.real ** 2 + half.imag ** 2
        h, w = x.shape[-2:]
        bins, weight, n_bins = _half_plane_bins(h, w)
        flat = power.reshape(-1, bins.numel()) * weight
        sums = torch.zeros(flat.shape[0], n_bins, dtype=flat.dtype).index_add_(1, bins, flat)
        captured.append((sums / radial_bin_counts(h, w)).reshape(*x.shape[:-2], n_bins).mean(1))

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        with torch.no_grad():
            parts = []
            for start in range(0, len(images), batch_size):
                captured.clear()
                model.eval()(images[start:start + batch_size].clone())
                parts.append(captured[0])
    finally:
        handle.remove()
    spectra = torch.cat(parts)
    return {g: spectra[idx].mean(0) for g, idx in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--layer", default="conv1")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the audit's one thread
    torch.manual_seed(0)
    model = SynthFacesCNN()
    images = synthfaces(args.images, 0, "planted", split="test").images
    half = args.images // 2
    groups = {"a": torch.arange(half), "b": torch.arange(half, args.images)}
    shape = layer_map_shape(model, args.layer, images[0])
    ratios, worst = [], 0.0
    for i in range(args.rounds):
        times = {}
        for way in (("new", "old") if i % 2 == 0 else ("old", "new")):
            started = time.perf_counter()
            out = (activation_spectra(model, args.layer, images, groups) if way == "new"
                   else reference_spectra(model, args.layer, images, groups))
            times[way] = time.perf_counter() - started
            if way == "new":
                new = out
            else:
                old = out
        ratios.append(times["new"] / times["old"])
        for g in groups:
            worst = max(worst, abs(float(high_frequency_ratio(new[g], 0.5, shape))
                                   - float(high_frequency_ratio(old[g], 0.5, shape))))
        print(f"round {i + 1}: new {times['new']:.3f}s, old {times['old']:.3f}s")
    print(f"median time ratio new/old at {args.layer}: {statistics.median(ratios):.2f}x; largest |hf share "
          f"difference| {worst:.2e} (must be < 1e-5)")


if __name__ == "__main__":
    main()
