"""Training throughput of the demo CNN: memory formats, against the machine's matmul FLOP/s.

    python benchmarks/training.py [--steps 30] [--batch 64] [--repeats 3]

Side by side in one process, interleaved so background load hits both alike:
  NCHW           plain float32 training (the naive baseline)
  channels_last  model and batches in channels_last memory format
It prints images/s, the ratio, and achieved training FLOP/s (forward FLOPs
counted by torch's FlopCounterMode, x3 for backward) against a dense float32
matmul measured in the same run.
"""

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pytest_kernelbias import SynthFacesCNN


def steps_per_second(memory_format, steps: int, batch: int) -> float:
    torch.manual_seed(0)
    model = SynthFacesCNN().to(memory_format=memory_format)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = torch.rand(batch, 3, 32, 32).contiguous(memory_format=memory_format)
    y = torch.randint(0, 2, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    for i in range(steps + 3):
        if i == 3:
            t0 = time.perf_counter()  # the first steps warm up allocators and kernels
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def training_flops(batch: int) -> float:
    model = SynthFacesCNN()
    with FlopCounterMode(display=False) as counter:
        model(torch.rand(batch, 3, 32, 32)).sum().backward()
    return float(counter.get_total_flops())


def matmul_flops(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    formats = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}
    rates = {k: [] for k in formats}
    peaks = []
    for _ in range(args.repeats):
        for name, fmt in formats.items():
            rates[name].append(steps_per_second(fmt, args.steps, args.batch))
        peaks.append(matmul_flops())
    flops = training_flops(args.batch)
    peak = statistics.median(peaks)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{flops / 1e9:.3f} GFLOP per training step (forward+backward)")
    print(f"dense float32 matmul: {peak / 1e9:.1f} GFLOP/s")
    for name in formats:
        sps = statistics.median(rates[name])
        print(f"  {name:<14} {sps * args.batch:8.0f} img/s  {sps * flops / 1e9:6.1f} GFLOP/s "
              f"= {100 * sps * flops / peak:5.1f}% of matmul")
    ratio = statistics.median(rates["channels_last"]) / statistics.median(rates["NCHW"])
    print(f"channels_last / NCHW = {ratio:.2f}x")


if __name__ == "__main__":
    main()
