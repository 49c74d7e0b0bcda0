"""Evaluation cost per model on a CPU: prediction batch size and the radial spectrum's FFT.

    python benchmarks/evaluation.py [--repeats 3] [--images 2000]

Side by side in one process, one torch thread (the audit's policy), interleaved so background load
hits each alike; the best of `--repeats` runs is reported:
  predict   `predict_conditions` (clean + LowPass(0.4)) of SynthFacesCNN (channels_last, as training
            leaves it) on SynthFaces test images at batch 512 (the old default) and 64 (the CPU default)
  spectrum  `radial_power_spectrum` of 256 images x 32 channels x 32x32 activations, float64: the
            full-spectrum fft2 + fftshift the library used before, and the rfft2 half spectrum with
            multiplicities it uses now; the script prints their largest relative difference.
"""

import argparse
import time

import torch

from pytest_kernelbias import LowPass, SynthFacesCNN, synthfaces
from pytest_kernelbias.evaluation._predict import predict_conditions
from pytest_kernelbias.evaluation._spectra import _radial_bins, radial_power_spectrum


def full_spectrum(x: torch.Tensor) -> torch.Tensor:
    """The earlier implementation: centred full fft2, power binned over every coefficient."""
    h, w = x.shape[-2:]
    x = x.double() - x.double().mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1)).abs() ** 2
    bins, n_bins = _radial_bins(h, w)
    flat = power.reshape(-1, h * w)
    sums = torch.zeros(flat.shape[0], n_bins, dtype=flat.dtype).index_add_(1, bins, flat)
    return (sums / torch.bincount(bins, minlength=n_bins).to(flat.dtype)).reshape(*x.shape[:-2], n_bins)


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    images = synthfaces(args.images, 0, "planted", "test").images
    model = SynthFacesCNN().to(memory_format=torch.channels_last).eval()
    conditions = {"LowPass(0.4)": LowPass(0.4)}
    predict = {b: best(lambda b=b: predict_conditions(model, images, conditions, batch_size=b), args.repeats)
               for b in (512, 64)}
    maps = torch.randn(256, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    spectra = {"full fft2": best(lambda: full_spectrum(maps), args.repeats),
               "rfft2 half": best(lambda: radial_power_spectrum(maps), args.repeats)}
    diff = float(((full_spectrum(maps) - radial_power_spectrum(maps)).abs().max()
                  / full_spectrum(maps).abs().max()))
    print(f"predict {args.images} images x 2 conditions, 1 thread: batch 512 {predict[512]:.2f} s, "
          f"batch 64 {predict[64]:.2f} s ({predict[512] / predict[64]:.2f}x)")
    print(f"radial spectrum of 256x32 maps 32x32, float64: full fft2 {spectra['full fft2']:.3f} s, rfft2 half "
          f"{spectra['rfft2 half']:.3f} s ({spectra['full fft2'] / spectra['rfft2 half']:.2f}x); "
          f"largest relative difference {diff:.1e}")


if __name__ == "__main__":
    main()
