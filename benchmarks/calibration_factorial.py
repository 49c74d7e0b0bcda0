"""Calibration of a factorial audit's family: the cause's effect without and with the fix, the fix's own
effect and their interaction, decided together by the one decision procedure.

    python benchmarks/calibration_factorial.py [--audits 2000] [--seed 0] [--json out.json]

Per-seed cell biases B(c, s) = mu_c + sd * (a_s + e_cs) / sqrt(2) for the four cells of a 2 x 2 design (a_s
shared by the cells of a seed, as paired models share their seed; e_cs each cell's own), both standardized draws
of one shape (normal, t(3), exponential skew +2). The family's per-seed differences are the contrasts
`FactorialDesign.contrasts()` gives, exactly what `analyze` decides for a factorial audit; sd = 0.03, threshold
0.05, rule "evidence", 95%. Scenarios (cause effect without the fix K0, with it K1, fix effect F, interaction I):

- "cause at t, fix inert": K0 = K1 = t, F = I = 0. Every |tau| <= t, and some = t: P(fail) and P(pass) are
  both error rates here, each at most 5%.
- "fix cancels at t": K0 = t, K1 = 0, F = 0, I = -t. The same two error rates.
- "all 0": P(fail) is an error rate (far below 5%); P(pass) the power to pass.
- "interaction 3t": K0 = 3t, K1 = 0, I = -3t: P(fail) the power to fail.

Designs: fixed 6 and 10 seeds (one look) and seeds="auto" (3..16). The Monte Carlo SE of a 5% rate over 2,000
audits is 0.49 points; a rate counts as held when it is at most 5% + 2 SE.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from calibration_decision import standard  # noqa: E402

from pytest_kernelbias.intervention import AntiAlias, Factor, factorial  # noqa: E402
from pytest_kernelbias.stats import SequentialDesign, run_sequential  # noqa: E402

THRESHOLD, SD, CONFIDENCE = 0.05, 0.03, 0.95
SHAPES = ("normal", "t3", "exp+")
DESIGNS = {"fixed 6": SequentialDesign(6, 6), "fixed 10": SequentialDesign(10, 10),
           "auto 3-16": SequentialDesign(3, 16)}
t = THRESHOLD
SCENARIOS = {  # cell means (B00, B10, B01, B11): cause a0 -> a1, fix b0 -> b1
    "cause at t, fix inert": (0.0, t, 0.0, t),
    "fix cancels at t": (0.0, t, 0.0, 0.0),
    "all 0": (0.0, 0.0, 0.0, 0.0),
    "interaction 3t": (0.0, 3 * t, 0.0, 0.0),
}
ERRORS = {"cause at t, fix inert": ("pass", "fail"), "fix cancels at t": ("pass", "fail"), "all 0": ("fail",),
          "interaction 3t": ()}
DESIGN = factorial(Factor("conv1", [3, 9]), Factor("pool", [None, AntiAlias(3)])).design


def family_rows(b: np.ndarray) -> np.ndarray:
    """(members, seeds) per-seed contrasts of cell biases `b` (cells in DESIGN.cells order, seeds)."""
    index = {cell: i for i, cell in enumerate(DESIGN.cells)}
    return np.array([sum(w * b[index[cell]] for cell, w in weights.items()) for _, weights in DESIGN.contrasts()])


def cell(mu: tuple, shape: str, design: SequentialDesign, audits: int, rng: np.random.Generator) -> dict:
    n = design.max_seeds
    means = np.array([mu[0], mu[1], mu[2], mu[3]])  # DESIGN.cells: (a0,b0), (a1,b0), (a0,b1), (a1,b1)
    shared, own = standard(shape, rng, (audits, 1, n), None), standard(shape, rng, (audits, 4, n), None)
    counts, seeds = {"pass": 0, "fail": 0, "undecided": 0}, 0
    for a in range(audits):
        b = means[:, None] + SD * (shared[a] + own[a]) / math.sqrt(2)
        path = run_sequential(family_rows(b), design, THRESHOLD, "evidence", CONFIDENCE, p_method="t")
        counts[path.verdict] += 1
        seeds += path.seeds
    return {**{k: v / audits for k, v in counts.items()}, "mean_seeds": seeds / audits}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--audits", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()
    limit = 0.05 + 2 * math.sqrt(0.05 * 0.95 / args.audits)
    rows, held = [], True
    for i, (scenario, mu) in enumerate(SCENARIOS.items()):
        for j, shape in enumerate(SHAPES):
            for k, (name, design) in enumerate(DESIGNS.items()):
                r = cell(mu, shape, design, args.audits, np.random.default_rng([args.seed, i, j, k]))
                errors = {e: r[e] for e in ERRORS[scenario]}
                ok = all(v <= limit for v in errors.values())
                held &= ok
                rows.append({"scenario": scenario, "shape": shape, "design": name, **r, "errors_held": ok})
                print(f"{scenario:22s} {shape:6s} {name:9s} pass {r['pass']:.3f} fail {r['fail']:.3f} undecided "
                      f"{r['undecided']:.3f} seeds {r['mean_seeds']:.2f}" + ("" if ok else "  <- over the limit"),
                      flush=True)
    print(f"family of {len(DESIGN.contrasts())}; every error rate at most {limit:.4f}: {held}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"audits": args.audits, "limit": limit, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
