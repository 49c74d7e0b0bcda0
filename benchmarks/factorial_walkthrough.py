"""The factorial walkthrough of docs/walkthroughs.md: does anti-aliased downsampling change a kernel size's effect?

    python benchmarks/factorial_walkthrough.py [--only synthfaces resnet18] [--seeds 4]

1. SynthFacesCNN on the planted SynthFaces data: conv1's kernel size (3 vs 9) crossed with anti-aliasing its
   max pool (as built vs AntiAlias(3); the one pool module serves both downsamplings).
2. timm resnet18: the stem conv's kernel size (7 vs 3) crossed with anti-aliasing the max pool after it.

Each trains every cell on the same seeds (2,000 training and 1,000 test images at 32x32 for SynthFacesCNN;
1,000 and 1,000 for resnet18, 3 epochs), and prints the seconds, the four effects with their family-adjusted
intervals and verdicts at +-0.05, and the sentence the reports print.
"""

from __future__ import annotations

import argparse
import time

from pytest_kernelbias import LowPass, SynthFacesCNN, TrainConfig, run_audit
from pytest_kernelbias.audit import default_data
from pytest_kernelbias.intervention import AntiAlias, Factor, factorial

CASES = {
    "synthfaces": dict(model=SynthFacesCNN, layers=["conv1", "pool"], n_train=2000,
                       levels=factorial(Factor("conv1", [3, 9]), Factor("pool", [None, AntiAlias(3)])), extra={}),
    "resnet18": dict(model="resnet18", layers=["conv1", "maxpool"], n_train=1000,
                     levels=factorial(Factor("conv1", [7, 3]), Factor("maxpool", [None, AntiAlias(3)])),
                     extra={"train_config": TrainConfig(epochs=3)}),
}


def run(name: str, seeds: int) -> None:
    case = CASES[name]
    train, test = default_data("planted", n_train=case["n_train"], n_test=1000)
    started = time.time()
    result = run_audit(case["model"], case["layers"], case["levels"], data=train, test_data=test,
                       attributes="skin_tone", perturbation=LowPass(0.4), seeds=seeds, progress=None,
                       **case["extra"])
    print(f"\n{name}: {time.time() - started:.0f} s, {result.run.trained} models trained")
    for row in result.summary_rows():
        print(f"  {row['contrast']}: {row['effect']:+.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] "
              f"({row['confidence']:.2%}) {row['verdict']}")
    for row in result.to_dict()["factorial"]:
        print(f"  {row['sentence']}")
    print(f"  clean accuracy: {result.clean_accuracy()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=list(CASES))
    ap.add_argument("--seeds", type=int, default=4)
    args = ap.parse_args()
    for name in args.only:
        run(name, args.seeds)


if __name__ == "__main__":
    main()
