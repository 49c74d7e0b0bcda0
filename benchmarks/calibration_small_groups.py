"""Coverage of the population's effect on small and intersectional test subgroups, through the package's own path.

Each simulated audit has G subgroups of m test images each (one shared test set), 5 paired seeds, levels k0
and k. Image i has a difficulty U_i; a model decides it with U_i with probability RHO (0.97: models err on
almost the same images, as on SynthFaces), else with its own draw, and is right on clean images when the
draw is below the clean accuracy and on perturbed ones when below the clean accuracy minus its subgroup's
drop: drop(level, seed, g) = base(level, g) + u_s + e, u_s ~ N(0, 0.02) shared by the seed's models,
e ~ N(0, 0.0025) per model and subgroup. The population's tau is the mean over models of the max-min of the
population drops, from 400,000 draws of e. Every audit is decided the way `analyze` decides it: the test
set's common variance (`difference_replicates`, `shared_variances`), the small-subgroup allowance
(`model_allowances`, `effect_allowances`) and `run_sequential` at a fixed 5 seeds, 95%.

Cells (G x m, base drops at k0 -> k): the issue's four, plus a null with groups apart and one with them
together, and a large test set as a control. Reported: coverage of tau by the default interval and by the
same interval without the allowance, the estimate's bias relative to tau, the misses below, the widths.

    python benchmarks/calibration_small_groups.py [--audits 1000] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from pytest_kernelbias.analysis._estimand import Estimand
from pytest_kernelbias.analysis._test_noise import (
    difference_replicates,
    effect_allowances,
    image_weights,
    model_allowances,
    shared_variances,
)
from pytest_kernelbias.stats import SequentialDesign, run_sequential

K0, K, SEEDS, RHO, CLEAN = 3, 9, 5, 0.97, 0.9
SIGMA_SEED, SIGMA_MODEL = 0.02, 0.0025
CELLS = {
    "2 x 100": (100, [0.10, 0.12], [0.10, 0.20]),
    "2 x 30": (30, [0.10, 0.12], [0.10, 0.20]),
    "4 x 30 intersectional": (30, [0.10, 0.11, 0.12, 0.13], [0.10, 0.12, 0.14, 0.22]),
    "4 x 50, equal at k0, k moves one": (50, [0.15] * 4, [0.15, 0.15, 0.15, 0.25]),
    "2 x 30 null, groups together": (30, [0.12, 0.12], [0.12, 0.12]),
    "4 x 30 null, groups apart": (30, [0.05, 0.10, 0.15, 0.20], [0.05, 0.10, 0.15, 0.20]),
    "2 x 500 control": (500, [0.10, 0.30], [0.10, 0.45]),
}
NAMES4 = [f"g{j}" for j in range(4)]


def population_tau(k0: list[float], k: list[float], draws: int = 400_000) -> float:
    rng = np.random.default_rng(1)
    spread = {}
    for name, base in (("k0", k0), ("k", k)):
        d = np.array(base) + rng.normal(0, SIGMA_MODEL, (draws, len(base)))
        spread[name] = float((d.max(1) - d.min(1)).mean())
    return spread["k"] - spread["k0"]


def one_audit(rng: np.random.Generator, m: int, base: dict) -> tuple[dict, np.ndarray, np.ndarray]:
    groups = len(base[K0])
    n = groups * m
    labels, codes, difficulty = rng.integers(0, 2, n), np.repeat(np.arange(groups), m), rng.random(n)
    u = rng.normal(0, SIGMA_SEED, SEEDS)
    predictions = {}
    for level in (K0, K):
        e = rng.normal(0, SIGMA_MODEL, (SEEDS, groups))
        for s in range(SEEDS):
            perturbed_acc = CLEAN - np.array(base[level]) - u[s] - e[s]
            w = np.where(rng.random(n) < RHO, difficulty, rng.random(n))
            right_clean, right_perturbed = w < CLEAN, w < perturbed_acc[codes]
            predictions[(level, s)] = {"clean": np.where(right_clean, labels, 1 - labels),
                                       "p": np.where(right_perturbed, labels, 1 - labels)}
    return predictions, labels, codes


def decide(predictions: dict, labels: np.ndarray, codes: np.ndarray, groups: int, with_allowance: bool):
    """The effect as `analyze` decides it (one effect, fixed design of 5 seeds)."""
    names, est, seeds = NAMES4[:groups], Estimand(), list(range(SEEDS))
    weights = image_weights(codes, groups)
    point = difference_replicates(predictions, K, K0, "p", seeds, labels, codes, names, est, "accuracy",
                                  np.ones((1, len(labels))))[0]
    reps = difference_replicates(predictions, K, K0, "p", seeds, labels, codes, names, est, "accuracy", weights)
    room = None
    if with_allowance:
        level, ref = (model_allowances(predictions, lv, "p", seeds, labels, codes, names, est, "accuracy", weights)
                      for lv in (K, K0))
        room = [effect_allowances(level, ref, est)]
    path = run_sequential(point, SequentialDesign(SEEDS, SEEDS), 1.0, shared_variance=[shared_variances(reps, point)],
                          allowance=room)
    return path.effect


def cell(m: int, k0: list[float], k: list[float], audits: int, seed: int) -> dict:
    tau = population_tau(k0, k)
    rng = np.random.default_rng(seed)
    rows = {True: [], False: []}
    for _ in range(audits):
        predictions, labels, codes = one_audit(rng, m, {K0: k0, K: k})
        for with_allowance in (True, False):
            e = decide(predictions, labels, codes, len(k0), with_allowance)
            rows[with_allowance].append((e.estimate, e.ci[0] <= tau <= e.ci[1], e.ci[1] < tau, e.ci[1] - e.ci[0]))
    out = {"tau": tau}
    for key, name in ((True, "default"), (False, "without allowance")):
        r = np.array(rows[key])
        out[name] = {"coverage": float(r[:, 1].mean()), "below": float(r[:, 2].mean()),
                     "bias": float(r[:, 0].mean() - tau), "width": float(r[:, 3].mean())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audits", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    se = math.sqrt(0.95 * 0.05 / args.audits)
    print(f"{args.audits} audits per cell, 5 paired seeds, 95% intervals (MC SE at 95%: {se:.4f}); goal >= 93%")
    out = {}
    for j, (name, (m, k0, k)) in enumerate(CELLS.items()):
        out[name] = res = cell(m, k0, k, args.audits, args.seed * 100 + j)
        d, p = res["default"], res["without allowance"]
        bias = f"{d['bias'] / res['tau']:+.0%} of tau" if abs(res["tau"]) > 1e-3 else f"{d['bias']:+.4f}"
        print(f"{name:<34} tau {res['tau']:+.4f}: default {100 * d['coverage']:.1f}% (below {100 * d['below']:.1f}%, "
              f"width {d['width']:.3f}); without allowance {100 * p['coverage']:.1f}% (below {100 * p['below']:.1f}%, "
              f"width {p['width']:.3f}); estimate's bias {bias}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
