"""Calibration of a layer map's decisions: one family of L arms with a shared reference, sequential arms,
against the ways a team could run the same question without a map.

    python benchmarks/calibration_layer_map.py [--audits 2000] [--arms 3] [--seed 0] [--boundary-only]
                                               [--json out.json]
    (also `python benchmarks/calibration.py --parts map`)

Nothing trains: per seed s, the reference model's bias is r_s = u_s + e0_s and arm i's is
u_s + tau_i + e_is, so arm i's paired difference is d_is = tau_i + e_is - e0_s. In a map every arm is
paired with the same reference model, so the arms' differences share -e0_s (correlation 1/2); L separate
audits each train their own reference, so theirs are independent. sd(d) = 0.03 (resnet18-like) and
0.0075 (SynthFaces-like); e is normal, or for the arms a centred exponential (d skewed, as real
differences can be: docs/statistics.md), threshold 0.05, confidence 0.95. Every verdict is `run_sequential` (the audit's
own procedure, paired t intervals):

  map, sequential   `run_sequential(L rows, 3..16, arms=range(L))`: one family of L, an arm stops when settled
  map, fixed        `run_sequential(L rows, SequentialDesign(n, n))`, n = --fixed-seeds (6)
  separate, fixed   L audits `run_sequential(1 row, SequentialDesign(n, n))`, each its own family of one
  separate, seq.    L audits `run_sequential(1 row, 3..16)`

Scenarios: "boundary", every |tau_i| = threshold (signs alternate), where any settled verdict is wrong:
the family-wise error is P(some arm wrongly settled), goal <= 5% for the map (the separate audits have
no family: each spends 5% on its own, and the union is what a team reading three green tests gets);
"one harmful", tau_1 = 2 x threshold and the others 0: P(the harmful arm found), P(a null arm passes)
and the mean models per arm (map: (max seeds + sum of arm seeds) / L, since the reference trains to
the longest arm; separate: 2 x seeds).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from pytest_kernelbias.stats import SequentialDesign, run_sequential

THRESHOLD, CONFIDENCE = 0.05, 0.95
SDS = (0.03, 0.0075)
SHAPES = ("normal", "skewed")
AUTO = SequentialDesign(3, 16)
FIXED_SEEDS = 6
GOAL = 0.05


def _differences(rng, taus: np.ndarray, sd: float, shape: str, shared: bool) -> np.ndarray:
    """(L, 16) paired differences; each model's noise has sd sd / sqrt(2), so sd(d) = sd.

    "skewed": the arms' noise is a centred exponential (skewness 2) and the reference's normal, so d is
    skewed (skewness 2 / 2^1.5 = 0.71); the same law for both would make d symmetric (a Laplace).
    """
    arms, seeds = len(taus), AUTO.max_seeds
    own = rng.standard_normal((arms, seeds)) if shape == "normal" else rng.exponential(1.0, (arms, seeds)) - 1.0
    ref = rng.standard_normal((1 if shared else arms, seeds))
    return taus[:, None] + (own - ref) * sd / math.sqrt(2)


def _arm_verdicts(path, arms: int) -> list[str]:
    """Each arm's own verdict: fail when one of its effects' intervals lies beyond, pass when inside."""
    by_arm = {a["arm"]: a["verdict"] for a in path.arm_outcomes()}
    return [by_arm.get(i, path.verdict) for i in range(arms)]


def _map(d: np.ndarray, design: SequentialDesign) -> tuple[list[str], float]:
    arms = d.shape[0]
    path = run_sequential(d[:, :design.max_seeds], design, THRESHOLD, "evidence", CONFIDENCE, p_method="t",
                          arms=list(range(arms)))
    seeds = [at or path.seeds for _, at in path.arm_stops]
    return _arm_verdicts(path, arms), (max(seeds) + sum(seeds)) / arms


def _separate(d: np.ndarray, design: SequentialDesign) -> tuple[list[str], float]:
    paths = [run_sequential(row[:design.max_seeds], design, THRESHOLD, "evidence", CONFIDENCE, p_method="t")
             for row in d]
    return [p.verdict for p in paths], 2 * float(np.mean([p.seeds for p in paths]))


WAYS = {"map, sequential": (_map, AUTO, True), "map, fixed": (_map, SequentialDesign(FIXED_SEEDS, FIXED_SEEDS), True),
        "separate, fixed": (_separate, SequentialDesign(FIXED_SEEDS, FIXED_SEEDS), False),
        "separate, sequential": (_separate, AUTO, False)}


def _cell(audits: int, arms: int, sd: float, shape: str, scenario: str, seed: int) -> dict:
    if scenario == "boundary":
        taus = THRESHOLD * np.where(np.arange(arms) % 2, -1.0, 1.0)
    else:
        taus = np.r_[2 * THRESHOLD, np.zeros(arms - 1)]
    out = {}
    for k, (name, (run, design, shared)) in enumerate(WAYS.items()):
        rng = np.random.default_rng([seed, arms, int(sd * 1e4), SHAPES.index(shape), k])
        verdicts, models = zip(*(run(_differences(rng, taus, sd, shape, shared), design) for _ in range(audits)))
        v = np.array(verdicts)
        row = {"models_per_arm": float(np.mean(models))}
        if scenario == "boundary":
            row["familywise_error"] = float(np.mean((v != "undecided").any(axis=1)))
            row["any_fail"] = float(np.mean((v == "fail").any(axis=1)))
            row["any_pass"] = float(np.mean((v == "pass").any(axis=1)))
        else:
            row["harm_found"] = float(np.mean(v[:, 0] == "fail"))
            row["null_arm_passes"] = float(np.mean(v[:, 1:] == "pass"))
            row["wrong"] = float(np.mean((v[:, 0] == "pass") | (v[:, 1:] == "fail").any(axis=1)))
        out[name] = row
    return out


def run(audits: int = 2000, arms: int = 3, seed: int = 0, scenarios: tuple = ("boundary", "one harmful")) -> dict:
    cells = []
    for scenario in scenarios:
        for sd in SDS:
            for shape in SHAPES:
                cells.append({"scenario": scenario, "sd": sd, "shape": shape, "arms": arms,
                              "ways": _cell(audits, arms, sd, shape, scenario, seed)})
    return {"audits": audits, "arms": arms, "threshold": THRESHOLD, "design": [AUTO.min_seeds, AUTO.max_seeds],
            "fixed_seeds": FIXED_SEEDS, "goal": GOAL, "mc_se_at_goal": math.sqrt(GOAL * (1 - GOAL) / audits),
            "cells": cells}


def print_map(out: dict) -> None:
    se = out["mc_se_at_goal"]
    print(f"\nLayer map, {out['arms']} arms, {out['audits']} audits per cell, threshold {out['threshold']}, "
          f"seeds=auto {out['design'][0]}..{out['design'][1]}, fixed {out['fixed_seeds']} (MC SE at 5%: {se:.2%})")
    for cell in out["cells"]:
        print(f"  {cell['scenario']}, sd {cell['sd']}, {cell['shape']}:")
        for name, row in cell["ways"].items():
            if cell["scenario"] == "boundary":
                stats = (f"family-wise error {row['familywise_error']:6.2%} (a fail {row['any_fail']:.2%}, "
                         f"a pass {row['any_pass']:.2%})")
            else:
                stats = (f"harm found {row['harm_found']:6.2%}, null arms passed {row['null_arm_passes']:6.2%}, "
                         f"any wrong {row['wrong']:.2%}")
            print(f"    {name:<21} {stats}; models per arm {row['models_per_arm']:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audits", type=int, default=2000)
    parser.add_argument("--arms", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--boundary-only", action="store_true", help="only the error-rate scenario (more audits)")
    parser.add_argument("--json")
    args = parser.parse_args()
    out = run(args.audits, args.arms, args.seed, ("boundary",) if args.boundary_only else ("boundary", "one harmful"))
    print_map(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
