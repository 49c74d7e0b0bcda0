"""One training epoch on 1 and on 2 torch threads, alternating, in one process.

    python benchmarks/threads.py [--repeats 2] [--n-train 4000] [--kernel 3]

Why the audit's one-thread policy costs or saves time on a machine: two one-thread workers beat
one two-thread process by (2 / t1) / (1 / t2) = 2 * t2 / t1, where t1 and t2 are the epoch times
printed here. The first, untimed epoch pays the one-off costs (allocator, lazy imports).
`--kernel K` trains SynthFacesCNN with a K x K conv1, as an audit's variant at level K is built.
"""

from __future__ import annotations

import argparse
import time

import torch

from pytest_kernelbias import KernelIntervention, SynthFacesCNN, TrainConfig, synthfaces
from pytest_kernelbias.training import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--kernel", type=int, default=3, help="conv1's kernel size")
    args = ap.parse_args()
    # An intervention needs two levels; only level K is ever built.
    variant = KernelIntervention(SynthFacesCNN, "conv1", [args.kernel, args.kernel + 2])
    data = synthfaces(args.n_train, 0, "planted")
    torch.set_num_threads(2)
    train(variant.build(args.kernel, 0), data.subset(torch.arange(min(500, args.n_train))), 0, TrainConfig(epochs=1))
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for threads in (2, 1):
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            train(variant.build(args.kernel, 0), data, 0, TrainConfig(epochs=1))
            times[threads].append(time.perf_counter() - t0)
    t1, t2 = min(times[1]), min(times[2])
    print(f"1 thread:  {', '.join(f'{t:.2f}' for t in times[1])} s per epoch")
    print(f"2 threads: {', '.join(f'{t:.2f}' for t in times[2])} s per epoch")
    print(f"2 threads / 1 thread speed-up {t1 / t2:.2f}x; two one-thread workers vs one two-thread process "
          f"{2 * t2 / t1:.2f}x")


if __name__ == "__main__":
    main()
