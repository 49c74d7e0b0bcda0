"""Measure the planted SynthFaces effect with many seeds, paired and unpaired.

    python benchmarks/planted_effect.py [--seeds 10] [--json out.json]

Prints the effect of do(kernel_size=9) vs 3 on SynthFacesCNN.conv1 on the
spread of LowPass(0.4) drops between skin-tone subgroups, with its 95% CI and
exact p, once with paired seeds (the default) and once without pairing.
"""

import argparse
import json
import time

import torch

from pytest_kernelbias import LowPass, SynthFacesCNN, run_audit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--config", default="planted")
    ap.add_argument("--json")
    ap.add_argument("--unpaired", action="store_true", help="also run the unpaired design for comparison")
    args = ap.parse_args()
    out = {"torch_threads": torch.get_num_threads(), "seeds": args.seeds, "config": args.config}
    for paired in [True] + ([False] if args.unpaired else []):
        t0 = time.time()
        result = run_audit(SynthFacesCNN, "conv1", [3, 9], data=args.config, attributes="skin_tone",
                           perturbation=LowPass(0.4), seeds=args.seeds, paired=paired,
                           name=f"{args.config}-{'paired' if paired else 'unpaired'}", progress=None)
        e = result.effect
        print(repr(result))
        print(f"paired={paired}: effect {e.estimate:+.4f} sd {e.sd:.4f} CI [{e.ci[0]:+.4f}, {e.ci[1]:+.4f}] "
              f"p={e.p_value:.4g} n={e.n} ({time.time() - t0:.0f}s)", flush=True)
        out["paired" if paired else "unpaired"] = {"estimate": e.estimate, "sd": e.sd, "ci": e.ci,
                                                   "p": e.p_value, "n": e.n, "seconds": time.time() - t0,
                                                   "differences": e.differences}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
