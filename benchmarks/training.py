"""Training throughput of the demo CNN per strategy, against the machine's matmul FLOP/s.

    python benchmarks/training.py [--steps 30] [--batch 64] [--repeats 3] [--no-compile]

Side by side in one run, interleaved so background load hits each alike:
  NCHW            plain float32 training, 2 threads (the naive baseline)
  channels_last   model and batches in channels_last memory format (the default)
  compiled        channels_last plus torch.compile; steady-state rate, and the
                  compile time (first step) reported on its own line
  1 proc x 1 thr  channels_last in one spawned one-thread process with the other
                  core idle: what each worker could reach alone
  2 procs x 1 thr channels_last in two spawned processes of one thread each,
                  both training at once from a common start (what the default
                  pool of 2 workers does); twice the slower one's rate, and each
                  one's rate against the process alone
                  (below 100% where the two cores share execution units or caches)
Achieved training FLOP/s use forward FLOPs from torch's FlopCounterMode, x3 for
backward, against a dense float32 matmul measured in the same run.
"""

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pytest_kernelbias import SynthFacesCNN

WARMUP = 3


def steps_per_second(memory_format, steps: int, batch: int, compile_model: bool = False,
                     threads: int | None = None, start=None) -> tuple[float, float]:
    """(training steps per second after warm-up, seconds the first step took).

    `start`, a barrier shared with other processes, holds the timed steps until all of them have
    warmed up, so processes meant to train at once do (spawned workers start seconds apart).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = SynthFacesCNN().to(memory_format=memory_format)
    step_model = torch.compile(model) if compile_model else model
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = torch.rand(batch, 3, 32, 32).contiguous(memory_format=memory_format)
    y = torch.randint(0, 2, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    t_first = time.perf_counter()
    for i in range(steps + WARMUP):
        if i == 1:
            first = time.perf_counter() - t_first
        if i == WARMUP:
            if start is not None:
                start.wait()
            t0 = time.perf_counter()  # the first steps warm up allocators, kernels and the compiler
        opt.zero_grad(set_to_none=True)
        loss_fn(step_model(x), y).backward()
        opt.step()
    return steps / (time.perf_counter() - t0), first


def _one_thread_rate(args: tuple) -> float:
    steps, batch, start = args
    return steps_per_second(torch.channels_last, steps, batch, threads=1, start=start)[0]


def two_single_thread_processes(pool: ProcessPoolExecutor, manager, steps: int, batch: int) -> float:
    """Steps per second of two one-thread processes training at once, from a common start.

    Counted over the slower one's time (2 x steps / its seconds): the faster one finishes first
    and the other then trains alone, which must not count as both training at once.
    """
    start = manager.Barrier(2)
    return 2 * min(pool.map(_one_thread_rate, [(steps, batch, start)] * 2))


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
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (it needs a C++ compiler)")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    runs = {"NCHW": dict(memory_format=torch.contiguous_format),
            "channels_last": dict(memory_format=torch.channels_last)}
    if not args.no_compile:
        runs["compiled"] = dict(memory_format=torch.channels_last, compile_model=True)
    rates = {k: [] for k in [*runs, "1 proc x 1 thr", "2 procs x 1 thr"]}
    compile_s, peaks = [], []
    context = get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        for _ in range(args.repeats):
            for name, kw in runs.items():
                sps, first = steps_per_second(steps=args.steps, batch=args.batch, threads=threads, **kw)
                rates[name].append(sps)
                if name == "compiled":
                    compile_s.append(first)
            rates["1 proc x 1 thr"].append(pool.submit(_one_thread_rate, (args.steps, args.batch, None)).result())
            rates["2 procs x 1 thr"].append(two_single_thread_processes(pool, manager, args.steps, args.batch))
            peaks.append(matmul_flops())
    flops = training_flops(args.batch)
    peak = statistics.median(peaks)
    base = statistics.median(rates["NCHW"])
    print(f"torch {torch.__version__}, {threads} threads, batch {args.batch}, "
          f"{flops / 1e9:.3f} GFLOP per training step (forward+backward)")
    print(f"dense float32 matmul: {peak / 1e9:.1f} GFLOP/s")
    for name, values in rates.items():
        sps = statistics.median(values)
        print(f"  {name:<16} {sps * args.batch:8.0f} img/s  {sps * flops / 1e9:6.1f} GFLOP/s "
              f"= {100 * sps * flops / peak:5.1f}% of matmul   {sps / base:4.2f}x NCHW")
    alone, both = statistics.median(rates["1 proc x 1 thr"]), statistics.median(rates["2 procs x 1 thr"])
    print(f"two one-thread processes at once each train at {100 * both / 2 / alone:.0f}% of one alone")
    if compile_s:
        c, eager, comp = statistics.median(compile_s), statistics.median(rates["channels_last"]), \
            statistics.median(rates["compiled"])
        gain = 1 / eager - 1 / comp
        breakeven = f"{c / gain:.0f} steps" if gain > 0 else "never (not faster once compiled)"
        print(f"torch.compile: first step {c:.1f}s (first repeat {compile_s[0]:.1f}s, later ones hit the "
              f"compile cache); it pays for itself after {breakeven} (a default SynthFaces training is 252)")


if __name__ == "__main__":
    main()
