"""Calibration of a layer map whose shared reference's bias folds: the family-wise error with and without the
fold allowance, and what the allowance costs when one arm is harmful.

    python benchmarks/calibration_folded_reference.py [--audits 2000] [--seed 0] [--rho 0.5] [--arms 3 8 16]
                                                      [--boundary-only | --harm-only] [--json out.json]

Nothing trains. Per seed s, each model's per-subgroup drops are D(m, g) = mu_g + sigma * z, with z standard
normal and correlated rho (--rho, 0.5 or 0.9) between an arm's model and the reference's of the same seed
(paired seeds: they share data order and every weight but one layer's, so rho can be high). The
reference's subgroups are tied (mu = 0), so its spread B = max_g D - min_g D folds: |sigma * (z1 - z2)| for
two subgroups, the range of four for four. An arm moves the first subgroup's expected drop by delta, chosen
(by 200,000 draws) so that E[B(arm)] - E[B(reference)] = tau. B, the fold and the verdicts come from the
package's own `Estimand.bias`, `fold_allowance` and `run_sequential` (what `analyze` calls), with `arms=`
as a layer map; "allowance" passes `fold_allowance` (the reference's below, each arm's own above), "plain"
does not.

Scenarios: "boundary", every arm's tau = threshold (0.05), where any settled verdict is wrong: the family-wise
error, goal <= 5% at 3, 8 and 16 arms; "one harmful", arm 0 at 2 x threshold and the others at the reference
(tau = 0): how often the harmful arm is found and the null arms pass, and the models per arm.
Designs: seeds="auto" 3..16 (Pocock, futility 0.1) and a fixed 6 seeds.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
from scipy import optimize

from pytest_kernelbias.analysis._estimand import Estimand
from pytest_kernelbias.analysis._fold import fold_allowance
from pytest_kernelbias.stats import SequentialDesign, run_sequential

THRESHOLD, CONFIDENCE, RHO, GOAL = 0.05, 0.95, 0.5, 0.05
DESIGNS = {"auto 3-16": SequentialDesign(3, 16), "fixed 6": SequentialDesign(6, 6)}
SPREAD = Estimand()


def _delta(sigma: float, groups: int, tau: float) -> float:
    """The shift of one subgroup's expected drop that moves E[B] by tau above the tied reference's."""
    if tau == 0:
        return 0.0
    z = np.random.default_rng(5).standard_normal((200_000, groups)) * sigma
    base = SPREAD.bias(z, range(groups)).mean()

    def gap(d: float) -> float:
        return SPREAD.bias(z + np.r_[d, np.zeros(groups - 1)], range(groups)).mean() - base - tau
    return optimize.brentq(gap, 0.0, 1.0)


def _prefixes(y: np.ndarray, names: list, looks: tuple) -> np.ndarray:
    """`fold_allowances` at the seed counts a look reads (the others are never used: 0)."""
    return np.array([fold_allowance(y[:n], names, SPREAD) if n in looks else 0.0 for n in range(1, len(y) + 1)])


def _draw(rng, deltas: np.ndarray, sigma: float, groups: int, design: SequentialDesign) -> tuple[np.ndarray, list]:
    """(arms, seeds) paired differences of B, and per arm its fold allowance (seeds, 2)."""
    seeds = design.max_seeds
    names = [f"g{i}" for i in range(groups)]
    z0 = rng.standard_normal((seeds, groups))
    zj = RHO * z0[None] + math.sqrt(1 - RHO ** 2) * rng.standard_normal((len(deltas), seeds, groups))
    mu = np.zeros((len(deltas), 1, groups))
    mu[:, 0, 0] = deltas
    ref, arms = sigma * z0, mu + sigma * zj
    d = SPREAD.bias(arms, names) - SPREAD.bias(ref, names)[None]
    looks = tuple(design.looks)
    below = _prefixes(ref, names, looks)
    return d, [np.stack([below, _prefixes(a, names, looks)], axis=1) for a in arms]


def _verdicts(d: np.ndarray, design: SequentialDesign, folds: list | None) -> tuple[list[str], float]:
    arms, n = d.shape[0], design.max_seeds
    path = run_sequential(d[:, :n], design, THRESHOLD, "evidence", CONFIDENCE, p_method="t",
                          arms=list(range(arms)), fold_allowance=None if folds is None else [f[:n] for f in folds])
    by_arm = {a["arm"]: a["verdict"] for a in path.arm_outcomes()}
    seeds = [at or path.seeds for _, at in path.arm_stops]
    return [by_arm.get(i, path.verdict) for i in range(arms)], (max(seeds) + sum(seeds)) / arms


def _cell(audits: int, arms: int, sigma: float, groups: int, scenario: str, design: SequentialDesign,
          seed: int) -> dict:
    taus = np.full(arms, THRESHOLD) if scenario == "boundary" else np.r_[2 * THRESHOLD, np.zeros(arms - 1)]
    deltas = np.array([_delta(sigma, groups, t) for t in taus])
    rng = np.random.default_rng([seed, arms, groups, int(sigma * 1e4), design.min_seeds])
    draws = [_draw(rng, deltas, sigma, groups, design) for _ in range(audits)]
    out = {"ref_allowance_at_min_seeds": float(np.mean([f[0][design.min_seeds - 1, 0] for _, f in draws]))}
    for way in ("plain", "allowance"):
        verdicts, models = zip(*(_verdicts(d, design, f if way == "allowance" else None) for d, f in draws))
        v = np.array(verdicts)
        row = {"models_per_arm": float(np.mean(models))}
        if scenario == "boundary":
            row["familywise_error"] = float(np.mean((v != "undecided").any(axis=1)))
        else:
            row["harm_found"] = float(np.mean(v[:, 0] == "fail"))
            row["null_arms_pass"] = float(np.mean(v[:, 1:] == "pass"))
        out[way] = row
    return out


def run(audits: int = 2000, seed: int = 0, arms_list=(3, 8, 16), scenarios=("boundary", "one harmful")) -> dict:
    cells = []
    for scenario in scenarios:
        for groups in (2, 4):
            for sigma in (0.02, 0.04):
                for arms in arms_list:
                    for name, design in DESIGNS.items():
                        cells.append({"scenario": scenario, "groups": groups, "sigma": sigma, "arms": arms,
                                      "design": name, **_cell(audits, arms, sigma, groups, scenario, design, seed)})
    return {"audits": audits, "threshold": THRESHOLD, "confidence": CONFIDENCE, "goal": GOAL,
            "rho": RHO, "mc_se_at_goal": math.sqrt(GOAL * (1 - GOAL) / audits), "cells": cells}


def print_cells(out: dict) -> None:
    print(f"Folded reference, {out['audits']} audits per cell (MC SE at 5%: {out['mc_se_at_goal']:.2%})")
    for c in out["cells"]:
        head = (f"  {c['scenario']:<11} {c['groups']} subgroups, sigma {c['sigma']}, {c['arms']:>2} arms, "
                f"{c['design']:<9} reference allowance {c['ref_allowance_at_min_seeds']:.4f}:")
        if c["scenario"] == "boundary":
            print(head, " ".join(f"{w} {c[w]['familywise_error']:6.2%}" for w in ("plain", "allowance")))
        else:
            print(head, " ".join(f"{w}: harm found {c[w]['harm_found']:6.2%}, null arms pass "
                                 f"{c[w]['null_arms_pass']:6.2%}, models/arm {c[w]['models_per_arm']:5.2f};"
                                 for w in ("plain", "allowance")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audits", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rho", type=float, default=RHO)
    parser.add_argument("--boundary-only", action="store_true", help="only the error-rate scenario")
    parser.add_argument("--harm-only", action="store_true", help="only the one-harmful-arm scenario")
    parser.add_argument("--arms", type=int, nargs="+", default=[3, 8, 16])
    parser.add_argument("--json")
    args = parser.parse_args()
    globals()["RHO"] = args.rho
    scenarios = ("boundary",) if args.boundary_only else ("one harmful",) if args.harm_only else \
        ("boundary", "one harmful")
    out = run(args.audits, args.seed, tuple(args.arms), scenarios)
    print_cells(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
