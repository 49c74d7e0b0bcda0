"""Calibration of the one decision procedure (`run_sequential`) as audits run it: families, designs, shapes,
and the test-set noise in the default interval.

    python benchmarks/calibration_decision.py [--audits 2000] [--image-audits 800] [--real real.json]
                                              [--parts family image] [--seed 0] [--json out.json]

Part A, families. A family of m effects (m = 1, 3, 8), each with per-seed differences
d_js = tau_j + sd * (a_s + e_js) / sqrt(2), where a_s is shared by the family (the effects share the
reference models) and e_js is the effect's own; both standardized draws from one shape:
normal, t(3), exponential (skew +2), its mirror (skew -2), lognormal (sigma 0.5, skew +1.75), and
"real": the standardized per-seed differences of a real SynthFaces audit (benchmarks/real_differences.py,
`--real`), resampled. sd = 0.03 (resnet18-like), threshold 0.05. Every effect sits at tau = threshold
(the error-rate cells: P(pass) is the false-pass rate, P(fail) the false-failure rate), at 0 (power to
pass) and at 3x threshold (power to fail). The sum of the two draws divides a shape's skewness by
sqrt(2) (exponential: +1.41); benchmarks/independent_mc.py has pure skew +-2 for one effect.
Designs: fixed 6 and 10 seeds (one look), and the default
seeds="auto" (Pocock 3..16, futility 0.1). Each audit is one `run_sequential` call on the (m, seeds)
array, exactly what `run_audit` decides for that family; rule "evidence" (undecided is neither).

Part B, test-set noise. Two-level data from benchmarks/calibration.py's per-image model (every model
scored on one shared test set of 2 x 500 images; image difficulty shared with probability rho), at
the seed / test-set variance ratios of its scenarios, which bracket those measured on SynthFaces and
timm resnet18 (docs/statistics.md). For each scenario, coverage of the population effect (infinite
test set) by the plain seed-level t interval and by the default interval (t + the common test-set
variance from analysis/_test_noise.py), and the realized ratio of the common part to sd^2 / n.

Every RNG is seeded from --seed; --json writes all numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from calibration import (  # noqa: E402  (the per-image model is shared with the older calibration)
    K0,
    SCENARIOS,
    K,
    image_audit,
    population_tau,
)

from pytest_kernelbias.analysis._estimand import Estimand  # noqa: E402
from pytest_kernelbias.analysis._test_noise import (  # noqa: E402
    difference_replicates,
    image_weights,
    shared_variances,
)
from pytest_kernelbias.evaluation._metrics import index_codes  # noqa: E402
from pytest_kernelbias.stats import SequentialDesign, paired_effect, run_sequential

THRESHOLD, SD, CONFIDENCE = 0.05, 0.03, 0.95
FAMILIES = (1, 3, 8)
SHAPES = ("normal", "t3", "exp+", "exp-", "lognormal", "real")
DESIGNS = {"fixed 6": SequentialDesign(6, 6), "fixed 10": SequentialDesign(10, 10),
           "auto 3-16": SequentialDesign(3, 16)}
MULTIPLES = (1.0, 0.0, 3.0)
IMAGE_SEEDS, IMAGES_PER_GROUP = 5, 500


def standard(shape: str, rng: np.random.Generator, size: tuple, real: np.ndarray | None) -> np.ndarray:
    """Draws with mean 0 and sd 1 of the named shape."""
    if shape == "normal":
        return rng.standard_normal(size)
    if shape == "t3":
        return rng.standard_t(3, size) / math.sqrt(3)
    if shape in ("exp+", "exp-"):
        z = rng.exponential(size=size) - 1
        return z if shape == "exp+" else -z
    if shape == "lognormal":
        s = 0.5
        x = rng.lognormal(0, s, size)
        return (x - math.exp(s * s / 2)) / math.sqrt((math.exp(s * s) - 1) * math.exp(s * s))
    if real is None:
        raise SystemExit("shape 'real' needs --real (the JSON of benchmarks/real_differences.py)")
    return rng.choice(real, size=size)


def family_cell(m: int, shape: str, design: SequentialDesign, audits: int, rng: np.random.Generator,
                real: np.ndarray | None) -> dict:
    n = design.max_seeds
    out = {}
    for mult in MULTIPLES:
        counts = {"pass": 0, "fail": 0, "undecided": 0}
        seeds = 0
        shared = standard(shape, rng, (audits, 1, n), real)
        own = standard(shape, rng, (audits, m, n), real)
        for a in range(audits):
            d = mult * THRESHOLD + SD * (shared[a] + own[a]) / math.sqrt(2)
            path = run_sequential(d, design, THRESHOLD, "evidence", CONFIDENCE, p_method="t")
            counts[path.verdict] += 1
            seeds += path.seeds
        out[f"{mult:g}x"] = {**{k: v / audits for k, v in counts.items()}, "mean_seeds": seeds / audits}
    return out


def family_part(audits: int, base: int, real: np.ndarray | None) -> list[dict]:
    rows = []
    for i, m in enumerate(FAMILIES):
        for j, shape in enumerate(SHAPES):
            if shape == "real" and real is None:
                continue
            for k, (name, design) in enumerate(DESIGNS.items()):
                rng = np.random.default_rng([base, 1, i, j, k])
                rows.append({"family": m, "shape": shape, "design": name, "audits": audits,
                             **family_cell(m, shape, design, audits, rng, real)})
                r = rows[-1]
                print(f"  m={m} {shape:9s} {name:9s} at thr: pass {r['1x']['pass']:.3f} fail {r['1x']['fail']:.3f} "
                      f"| 0: pass {r['0x']['pass']:.3f} | 3x: fail {r['3x']['fail']:.3f} "
                      f"| seeds {r['1x']['mean_seeds']:.2f}", flush=True)
    return rows


def image_part(audits: int, base: int) -> list[dict]:
    rows, estimand = [], Estimand()
    for j, (rho, sigma_model) in enumerate(SCENARIOS):
        tau, rng = population_tau(sigma_model), np.random.default_rng([base, 2, j])
        hits_t = hits_d = 0
        ratio, widths_t, widths_d = [], [], []
        for _ in range(audits):
            clean, perturbed, labels, groups, bias = image_audit(rng, IMAGES_PER_GROUP, rho, IMAGE_SEEDS, sigma_model)
            codes, names = index_codes(groups, len(labels))
            predictions = {key: {"clean": clean[key], "p": perturbed[key]} for key in clean}
            seeds = list(range(IMAGE_SEEDS))
            reps = difference_replicates(predictions, K, K0, "p", seeds, labels, codes, names, estimand, "accuracy",
                                         image_weights(codes, len(names)))
            point = bias[K] - bias[K0]
            v = float(shared_variances(reps, point)[-1])
            plain = paired_effect(bias[K], bias[K0], confidence=CONFIDENCE)
            full = paired_effect(bias[K], bias[K0], confidence=CONFIDENCE, shared_variance=v)
            hits_t += plain.ci[0] <= tau <= plain.ci[1]
            hits_d += full.ci[0] <= tau <= full.ci[1]
            ratio.append(v / max(plain.sd ** 2 / IMAGE_SEEDS, 1e-300))
            widths_t.append(plain.ci[1] - plain.ci[0])
            widths_d.append(full.ci[1] - full.ci[0])
        se = math.sqrt(CONFIDENCE * (1 - CONFIDENCE) / audits)
        rows.append({"rho": rho, "sigma_e": sigma_model, "audits": audits, "tau": tau,
                     "t_coverage": hits_t / audits, "default_coverage": hits_d / audits, "mc_se": se,
                     "median_shared_over_seed": float(np.median(ratio)),
                     "t_width": float(np.mean(widths_t)), "default_width": float(np.mean(widths_d))})
        r = rows[-1]
        print(f"  rho {rho:.2f} sigma_e {sigma_model:.4f}: shared/seed {r['median_shared_over_seed']:.2f} | "
              f"t {r['t_coverage']:.3f} | default {r['default_coverage']:.3f} (MC SE {se:.3f}) | widths "
              f"{r['t_width']:.4f} -> {r['default_width']:.4f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audits", type=int, default=2000, help="simulated audits per cell in part A")
    ap.add_argument("--image-audits", type=int, default=800, help="simulated audits per scenario in part B")
    ap.add_argument("--real", help="JSON of benchmarks/real_differences.py (adds the 'real' shape)")
    ap.add_argument("--parts", nargs="+", choices=("family", "image"), default=["family", "image"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()
    real = None
    if args.real:
        with open(args.real) as fh:
            d = np.asarray(json.load(fh)[0]["differences"], float)
        real = (d - d.mean()) / d.std(ddof=1)
    t0, out = time.time(), {"settings": vars(args)}
    if "family" in args.parts:
        print(f"Part A: families, threshold {THRESHOLD}, sd {SD}, rule evidence; rates of pass / fail")
        out["family"] = family_part(args.audits, args.seed, real)
    if "image" in args.parts:
        print(f"Part B: test-set noise, {IMAGE_SEEDS} seeds, 2 x {IMAGES_PER_GROUP} test images; coverage of 95%")
        out["image"] = image_part(args.image_audits, args.seed)
    out["seconds"] = time.time() - t0
    print(f"{out['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
