"""Seed-batched (vmap) against sequential training of SynthFacesCNN, both with the real trainers.

    python benchmarks/seed_batching.py [--steps 6] [--repeats 3] [--threads N]

Side by side in one process, interleaved so background load hits both alike, for
S = 2 and 4 seeds, batch 64 and 128, NCHW and channels_last, 32x32 images:
  sequential  training.train on each of the S models in turn
  vmap        seed_batching.train_seeds on all S at once
"channels_last" is TrainConfig.channels_last: sequential trains in that format, while
train_seeds always runs its vmapped step in NCHW (see seed_batching's docstring).
Rates are training images per second summed over models (an image seen by S models
counts S times), median over repeats, after one warm-up run of each; the ratio
vmap/sequential is the wall-time speedup of training the S seeds.
"""

import argparse
import statistics
import time

import torch

from pytest_kernelbias import SynthFacesCNN
from pytest_kernelbias.data._synthfaces import synthfaces
from pytest_kernelbias.training._seed_batched import train_seeds
from pytest_kernelbias.training._trainer import TrainConfig, train


def models(seeds: int) -> list:
    out = []
    for s in range(seeds):
        torch.manual_seed(s)
        out.append(SynthFacesCNN())
    return out


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per run (default 6)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default 3)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: torch's)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps x {args.repeats} repeats, "
          "img/s summed over models")
    print(f"{'seeds':>5} {'batch':>5} {'format':<13} {'sequential':>10} {'vmap':>8} {'vmap/seq':>8}")
    for seeds in (2, 4):
        for batch in (64, 128):
            data = synthfaces(args.steps * batch, 0, "planted", "train")
            warm = data.subset(torch.arange(2 * batch))
            for fmt in ("NCHW", "channels_last"):
                cfg = TrainConfig(epochs=1, batch_size=batch, channels_last=fmt == "channels_last")
                seq_models, vmap_models = models(seeds), models(seeds)
                runs = {
                    "sequential": lambda d: [train(m, d, i, cfg) for i, m in enumerate(seq_models)],
                    "vmap": lambda d: train_seeds(vmap_models, d, list(range(seeds)), cfg),
                }
                for run in runs.values():
                    run(warm)  # allocators, oneDNN primitive caches, optimizer state
                times = {k: [] for k in runs}
                for _ in range(args.repeats):
                    for k, run in runs.items():
                        times[k].append(seconds(lambda: run(data)))
                rate = {k: seeds * len(data) / statistics.median(v) for k, v in times.items()}
                print(f"{seeds:>5} {batch:>5} {fmt:<13} {rate['sequential']:>10.0f} {rate['vmap']:>8.0f} "
                      f"{rate['vmap'] / rate['sequential']:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
