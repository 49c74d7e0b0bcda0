"""A layer map of timm resnet18 on the planted SynthFaces data: which conv's kernel size moves the gap.

The stem (`conv1`, 7x7 stride 2) and the first conv of the first two stages, each do(kernel_size = k) alone
against the architecture as built. At 32x32 input the later stages see 2x2 and 1x1 maps, where a 5x5 kernel
would only ever meet padding, so the audit would refuse them: they are left out here.

    python benchmarks/layer_map_resnet18.py [--seeds 2]

Prints the map (network order), the time and the models trained.
"""

from __future__ import annotations

import argparse
import time

from pytest_kernelbias import LowPass, TrainConfig, each, run_audit
from pytest_kernelbias.audit import default_data

LAYERS = ["conv1", "layer1.0.conv1", "layer2.0.conv1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    train, test = default_data("planted", n_train=1000, n_test=1000)
    started = time.time()
    result = run_audit("resnet18", each(LAYERS), [3, 5], data=train, test_data=test, seeds=args.seeds,
                       perturbation=LowPass(0.4), train_config=TrainConfig(epochs=3), rule="evidence",
                       threshold=0.05, progress=None)
    seconds = time.time() - started
    print(f"resnet18 layer map, {args.seeds} seeds: {result.run.trained} models trained in {seconds:.0f} s "
          f"({result.run.workers} workers)")
    for row in result.layer_map():
        print(f"  {row['position']}. {row['layer']:<16} own k={row['own_kernel']}  {row['level']:<14} "
              f"effect {row['effect']:+.3f}  {row['confidence']:.2%} CI [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
              f"  p adj {row['p_adjusted']:.3g}  {row['verdict']}")


if __name__ == "__main__":
    main()
