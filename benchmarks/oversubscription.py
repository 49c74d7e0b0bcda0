"""An audit alone, then the same audit beside one other busy process: does the default path oversubscribe?

    python benchmarks/oversubscription.py [--seeds 2] [--epochs 2] [--n-train 2000] [--repeats 1]

Both runs are cold (no cache) and use the defaults (workers = usable cores, one torch thread per
training). The busy process is a one-thread torch matmul loop (one other process keeping one core
busy, as a shared CI machine has), started before the second run and killed after it. The figure of
merit is shared / idle wall time; on P cores with one busy neighbour an audit that runs P one-thread
processes should slow by about (P + 1) / P, not by the 20x measured with two-thread training. The
effects of both runs are printed too: they must be identical (the thread policy fixes the numbers).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from pytest_kernelbias import LowPass, SynthFacesCNN, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.execution._threads import usable_cores

HOG = "import torch\ntorch.set_num_threads(1)\na = torch.randn(384, 384)\nwhile True:\n    a = (a @ a).tanh()\n"


def audit(args: argparse.Namespace):
    data = synthfaces(args.n_train, 0, "planted"), synthfaces(args.n_train // 2, 0, "planted", "test")
    t0 = time.perf_counter()
    result = run_audit(SynthFacesCNN, "conv1", [3, 9], data=data[0], test_data=data[1], seeds=args.seeds,
                       perturbation=LowPass(0.4), train_config=TrainConfig(epochs=args.epochs), cache=None,
                       placebos=(), progress=None, require_learning=args.n_train >= 1000)
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=1, help="alternate idle and shared runs this many times; best of")
    args = ap.parse_args()
    print(f"{usable_cores()} usable cores; audit: SynthFacesCNN conv1 [3, 9], {args.seeds} seeds, "
          f"{args.epochs} epochs, {args.n_train} train images; defaults otherwise", flush=True)
    # Start the worker pool (imports in each worker) untimed; these tiny models need not learn.
    audit(argparse.Namespace(**{**vars(args), "n_train": 200, "epochs": 1}))
    idle, shared, effects = [], [], set()
    for _ in range(args.repeats):
        seconds, result = audit(args)
        idle.append(seconds)
        effects.add(result.effect.estimate)
        hog = subprocess.Popen([sys.executable, "-c", HOG])
        try:
            time.sleep(2.0)  # let it import torch and start spinning
            seconds, result = audit(args)
            shared.append(seconds)
            effects.add(result.effect.estimate)
        finally:
            hog.kill()
            hog.wait()
    best_idle, best_shared = min(idle), min(shared)
    print(f"idle   {best_idle:7.1f} s  (runs: {', '.join(f'{s:.1f}' for s in idle)})")
    print(f"shared {best_shared:7.1f} s  (runs: {', '.join(f'{s:.1f}' for s in shared)})")
    print(f"shared / idle = {best_shared / best_idle:.2f}  (goal <= 2.5 on 2 cores)")
    print(f"effects {'identical' if len(effects) == 1 else 'DIFFER'}: {sorted(effects)}")


if __name__ == "__main__":
    main()
