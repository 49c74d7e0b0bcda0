"""Does the undecided note's advice keep the error rates? A Monte Carlo through the package's own decision path.

Each simulated audit has per-seed differences d_s = tau + sd * z_s + c, where c ~ N(0, shared) is the test
set's common noise (one test set: every model and both stages share it; the interval is told its variance,
as `analysis/_test_noise.py` measures it). tau sits at the threshold (0.05), so a "pass" (tau >= threshold)
and a "fail" (tau <= threshold) are both wrong; each is one error rate, which the design brief bounds by
alpha = 5% (`run_sequential` spends alpha / 2 on each). Stage 1 is the audit as run: a fixed design of 3 or
6 seeds, or seeds="auto" (Pocock 3..16, futility 0.1). When it ends undecided, the second stage is:

  * "as advised": a follow-up on fresh seeds (new z, the same c), `seeds_to_settle` of stage 1's effect seeds
    per level at the follow-up's level, a fixed design judged alone at confidence 1 - alpha / 2: what
    `analysis/_advice.py` advises;
  * "reuse": `seeds=N` on the seeds already seen, N the same count (at least one more than stage 1 had):
    the first N draws re-decided, the move the note used to suggest;
  * "none": stop undecided.

The combined error of a way is P(stage 1 errs) + P(stage 1 undecided and stage 2 errs), per side.

    python benchmarks/calibration_followup.py [--audits 4000] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from pytest_kernelbias.analysis._sequential import follow_up_confidence, seeds_to_settle
from pytest_kernelbias.stats import SequentialDesign, run_sequential

THRESHOLD, SD, CAP = 0.05, 0.03, 64  # a follow-up is capped at 64 seeds per level (none is refused)
DESIGNS = {"fixed 3": SequentialDesign(3, 3), "fixed 6": SequentialDesign(6, 6), "seeds=auto": SequentialDesign(3, 16)}
SHARED = {"no test-set noise": 0.0, "test-set sd 0.01": 0.01 ** 2}


FOLLOW = follow_up_confidence(0.95)


def _decide(d: np.ndarray, design: SequentialDesign, shared: float, confidence: float = 0.95):
    return run_sequential(d, design, THRESHOLD, confidence=confidence, shared_variance=shared)


def one_audit(rng: np.random.Generator, design: SequentialDesign, shared: float) -> dict[str, str]:
    """Final verdicts of the three ways for one simulated audit at tau = threshold."""
    c = rng.normal(0, math.sqrt(shared)) if shared else 0.0
    first = THRESHOLD + SD * rng.standard_normal(design.max_seeds + CAP) + c
    path = _decide(first[:design.max_seeds], design, shared)
    if path.verdict != "undecided":
        return dict.fromkeys(("advised", "reuse", "none"), path.verdict)
    need = min(CAP, seeds_to_settle(path.effect, THRESHOLD, FOLLOW) or CAP)
    fresh = THRESHOLD + SD * rng.standard_normal(need) + c
    advised = _decide(fresh, SequentialDesign(need, need), shared, FOLLOW).verdict
    more = max(need, path.seeds + 1)
    reuse = _decide(first[:more], SequentialDesign(more, more), shared).verdict
    return {"advised": advised, "reuse": reuse, "none": "undecided"}


def cell(audits: int, design: SequentialDesign, shared: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    counts = {way: {"pass": 0, "fail": 0} for way in ("advised", "reuse", "none")}
    for _ in range(audits):
        for way, verdict in one_audit(rng, design, shared).items():
            if verdict in ("pass", "fail"):
                counts[way][verdict] += 1
    return {way: {side: n / audits for side, n in c.items()} for way, c in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audits", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    se = math.sqrt(0.05 * 0.95 / args.audits)
    print(f"tau = threshold = {THRESHOLD}, sd {SD}; {args.audits} audits per cell (MC SE at 5%: {se:.4f}); "
          "P(false pass) / P(false fail), each bounded by alpha = 5%")
    out = {}
    for (dname, design), (sname, shared) in [(d, s) for d in DESIGNS.items() for s in SHARED.items()]:
        rates = cell(args.audits, design, shared, args.seed)
        out[f"{dname}, {sname}"] = rates
        text = "  ".join(f"{way} {100 * r['pass']:.2f}% / {100 * r['fail']:.2f}%" for way, r in rates.items())
        print(f"{dname:>10}, {sname:<17}: {text}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
