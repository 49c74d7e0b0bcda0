"""Cost of perturbations in evaluation, as ratios measured side by side in one process.

    python benchmarks/perturb.py [--batch 512] [--repeats 15]

For SynthFacesCNN at 32x32 and 64x64 it times, on the same batch:
  forward      the model's forward pass (eval, no grad), the unit of cost
  LowPass      the batched torch.fft low-pass, whole batch and in chunks of 64
  float64      the same low-pass on a float64 batch
  numpy loop   a per-image, per-channel numpy FFT loop doing the same filtering
  blur         GaussianBlur(1.0), and scipy.ndimage.gaussian_filter image by image
It prints each as a percentage of the forward pass and the loop/batched ratios.
No wall-clock figure gates anything; medians of --repeats runs are reported.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from pytest_kernelbias import GaussianBlur, LowPass, SynthFacesCNN


def median_time(fn, repeats: int) -> float:
    fn()  # warm caches (FFT plans, masks)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def numpy_lowpass(x: np.ndarray, cutoff: float) -> np.ndarray:
    h, w = x.shape[-2:]
    iy, ix = np.arange(h) - h // 2, np.arange(w) - w // 2
    keep = np.fft.ifftshift(np.hypot(iy[:, None], ix[None, :]) < cutoff * min(h, w) / 2)
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[n, c] = np.fft.ifft2(np.fft.fft2(x[n, c]) * keep).real
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    from scipy import ndimage

    torch.manual_seed(0)
    model = SynthFacesCNN().eval()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")
    for size in (32, 64):
        x = torch.rand(args.batch, 3, size, size)
        x64, xn = x.double(), x.numpy()
        lp, blur = LowPass(0.4), GaussianBlur(1.0)
        with torch.no_grad():
            t = {
                "forward": median_time(lambda: model(x), args.repeats),
                "LowPass batch": median_time(lambda: lp(x), args.repeats),
                "LowPass chunks of 64": median_time(lambda: [lp(c) for c in x.split(64)], args.repeats),
                "LowPass float64": median_time(lambda: lp(x64), args.repeats),
                "numpy per-image loop": median_time(lambda: numpy_lowpass(xn, 0.4), max(3, args.repeats // 3)),
                "GaussianBlur batch": median_time(lambda: blur(x), args.repeats),
                "scipy gaussian_filter loop": median_time(
                    lambda: [ndimage.gaussian_filter(img, sigma=(0, 1.0, 1.0), mode="reflect", truncate=4.0)
                             for img in xn], max(3, args.repeats // 3)),
            }
        print(f"\n{size}x{size}: forward pass {1000 * t['forward']:.1f} ms")
        for name, v in t.items():
            if name != "forward":
                print(f"  {name:<28} {1000 * v:8.2f} ms  = {100 * v / t['forward']:6.1f}% of a forward pass")
        print(f"  numpy loop / LowPass batch        = {t['numpy per-image loop'] / t['LowPass batch']:.1f}x")
        print(f"  scipy loop / GaussianBlur batch   = {t['scipy gaussian_filter loop'] / t['GaussianBlur batch']:.1f}x")


if __name__ == "__main__":
    main()
