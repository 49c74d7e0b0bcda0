"""Real paired differences and the seed / test-set variance split, measured on trained models.

    python benchmarks/real_differences.py [--seeds 16] [--timm-seeds 4] [--json out.json]

Two real audits, each run once with a fixed seed count and rule "estimate" (no verdict is the point):

  * SynthFaces planted, SynthFacesCNN, conv1 at k = 3 vs 9, LowPass(0.4), 2,000 training and 1,000 test
    images, `--seeds` seeds: the per-seed differences d_s of the spread statistic (their mean, sd,
    sample skewness and excess kurtosis), and the same for the smooth signed contrast
    D(dark) - D(light), so the two statistics' shapes can be compared on the same models;
  * timm resnet18, stem conv1 at k = 7 vs 3, 1,000 training images, 3 epochs, `--timm-seeds` seeds.

For each: the seed part of the estimate's variance (sd^2 / n) and the common test-set part that the
seeds' spread cannot show (`shared_variance`, analysis/_test_noise.py), and their ratio. The
calibration's part 2 simulates two-level data at these ratios; part 3 resamples the SynthFaces
differences as a real distribution.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from scipy import stats

from pytest_kernelbias import LowPass, SynthFacesCNN, TrainConfig, run_audit
from pytest_kernelbias.audit import default_data


def shape(d: np.ndarray) -> dict:
    return {"mean": float(d.mean()), "sd": float(d.std(ddof=1)), "skew": float(stats.skew(d, bias=False)),
            "excess_kurtosis": float(stats.kurtosis(d, bias=False)), "n": len(d)}


def measure(name: str, result) -> dict:
    e = next(iter(result.all_effects.values()))
    d = np.asarray(e.differences)
    seed_part = e.sd ** 2 / e.n
    return {"audit": name, "differences": d.tolist(), **shape(d), "seed_variance_of_mean": seed_part,
            "shared_variance": e.shared_variance, "shared_over_seed": e.shared_variance / seed_part,
            "seconds": result.settings["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--timm-seeds", type=int, default=4)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    started = time.time()
    out = []
    train, test = default_data("planted", n_train=2000, n_test=1000)
    common = dict(data=train, test_data=test, attributes="skin_tone", perturbation=LowPass(0.4), rule="estimate",
                  progress=None, placebos=(), spectral_cutoff=None)
    spread = run_audit(SynthFacesCNN, "conv1", [3, 9], seeds=args.seeds, **common)
    out.append(measure("SynthFacesCNN planted, spread", spread))
    contrast = run_audit(SynthFacesCNN, "conv1", [3, 9], seeds=args.seeds, bias="contrast",
                         contrast=("skin_tone=dark", "skin_tone=light"), **common)  # same models, from the cache
    out.append(measure("SynthFacesCNN planted, contrast dark - light", contrast))
    small_train, _ = default_data("planted", n_train=1000, n_test=1000)
    timm = run_audit("resnet18", "conv1", [7, 3], seeds=args.timm_seeds, train_config=TrainConfig(epochs=3),
                     **{**common, "data": small_train})
    out.append(measure("timm resnet18 stem, spread", timm))
    print(f"{'audit':46s} {'n':>3s} {'mean':>8s} {'sd':>7s} {'skew':>6s} {'kurt':>6s} {'sd^2/n':>9s} "
          f"{'shared':>9s} {'ratio':>6s}")
    for r in out:
        print(f"{r['audit']:46s} {r['n']:3d} {r['mean']:+8.4f} {r['sd']:7.4f} {r['skew']:+6.2f} "
              f"{r['excess_kurtosis']:+6.2f} {r['seed_variance_of_mean']:9.2e} {r['shared_variance']:9.2e} "
              f"{r['shared_over_seed']:6.2f}")
    skew_se = math.sqrt(6 * args.seeds * (args.seeds - 1) / ((args.seeds - 2) * (args.seeds + 1) * (args.seeds + 3)))
    print(f"(a sample skewness of {args.seeds} normal draws has SE {skew_se:.2f}); {time.time() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
