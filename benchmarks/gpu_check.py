"""What a GPU machine does with the audits: one prepared script for the times a GPU is lent.

    python benchmarks/gpu_check.py [--out DIR] [--device cuda] [--skip-examples]

On the device (CUDA unless --device says otherwise; `--device cpu` is a smoke run):
  1. training throughput of SynthFacesCNN (32x32) and timm resnet18 (64x64):
     sequential `train` per seed against seed-batched `train_seeds` (vmap), S = 4
     seeds, AMP and channels_last as the default TrainConfig has them; and what
     `choose_strategy` picks there
  2. host-to-device copies of a training batch: pageable against pinned memory
  3. the example audits (`pytest --kernel-audit example_audits`) cold on the
     device, in a fresh cache, with their wall time and outcome
Everything printed is also written to DIR/gpu_check.json (DIR defaults to $OUT).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from pytest_kernelbias import SynthFacesCNN, TrainConfig, synthfaces
from pytest_kernelbias.data import PLANTED
from pytest_kernelbias.training import train
from pytest_kernelbias.training._seed_batched import choose_strategy, train_seeds

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _models(build, seeds: int) -> list:
    out = []
    for s in range(seeds):
        torch.manual_seed(s)
        out.append(build())
    return out


def training_rates(name: str, build, data, device: torch.device, seeds: int, cfg: TrainConfig) -> dict:
    """Images/s summed over models, sequential vs seed-batched, after a warm-up of each."""
    warm = data.subset(torch.arange(2 * cfg.batch_size))
    train(build(), warm, 0, cfg, device)
    train_seeds(_models(build, seeds), warm, list(range(seeds)), cfg, device)
    _sync(device)
    t0 = time.perf_counter()
    for s, m in enumerate(_models(build, seeds)):
        train(m, data, s, cfg, device)
    _sync(device)
    sequential = seeds * len(data) * cfg.epochs / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    train_seeds(_models(build, seeds), data, list(range(seeds)), cfg, device)
    _sync(device)
    batched = seeds * len(data) * cfg.epochs / (time.perf_counter() - t0)
    choice = choose_strategy(build, data, cfg, device, seeds)
    row = {"model": name, "seeds": seeds, "images": len(data), "batch": cfg.batch_size,
           "sequential_img_s": round(sequential), "vmap_img_s": round(batched),
           "vmap_over_sequential": round(batched / sequential, 2), "choose_strategy": choice.strategy,
           "reason": choice.reason}
    print(f"{name}: sequential {sequential:.0f} img/s, seed-batched {batched:.0f} img/s "
          f"({batched / sequential:.2f}x); choose_strategy -> {choice.strategy}: {choice.reason}", flush=True)
    return row


def copy_rates(device: torch.device, batch: int = 256, size: int = 64, repeats: int = 50) -> dict:
    """GB/s of host-to-device batch copies from pageable and from pinned memory."""
    if device.type != "cuda":
        return {"skipped": "not a CUDA device"}
    pageable = torch.rand(batch, 3, size, size)
    pinned = pageable.pin_memory()
    out = {}
    for name, x in (("pageable", pageable), ("pinned", pinned)):
        x.to(device)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            x.to(device, non_blocking=True)
        _sync(device)
        out[f"{name}_GB_s"] = round(repeats * x.numel() * 4 / (time.perf_counter() - t0) / 1e9, 2)
    print(f"host-to-device copy of a {batch}x3x{size}x{size} batch: pageable {out['pageable_GB_s']} GB/s, "
          f"pinned {out['pinned_GB_s']} GB/s", flush=True)
    return out


def example_audits(device: torch.device, out_dir: Path) -> dict:
    cache = tempfile.mkdtemp(prefix="gpu-check-cache-")
    report = out_dir / "example_audits.json"
    cmd = [sys.executable, "-m", "pytest", "--kernel-audit", "example_audits", "-q", "-p", "no:cacheprovider",
           "--kernel-audit-device", str(device), "--kernel-audit-cache", cache, "--kernel-audit-json", str(report)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    tail = proc.stdout.strip().splitlines()[-12:]
    print(f"example audits on {device}: exit {proc.returncode} in {seconds:.0f}s", *tail, sep="\n", flush=True)
    return {"exit": proc.returncode, "seconds": round(seconds, 1), "tail": tail}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--skip-examples", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device here: this check is for a GPU machine (use --device cpu for a smoke run)")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    import timm

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    results = {"device": name, "torch": torch.__version__, "timm": timm.__version__, "training": []}
    print(f"device {name}, torch {torch.__version__}", flush=True)
    cfg = TrainConfig(epochs=1)
    small = synthfaces(4000 if device.type == "cuda" else 512, 0, "planted")
    results["training"].append(training_rates("SynthFacesCNN 32px", SynthFacesCNN, small, device, args.seeds, cfg))
    big = synthfaces(2000 if device.type == "cuda" else 128, 0, replace(PLANTED, size=64))
    resnet = lambda: timm.create_model("resnet18", num_classes=2)  # noqa: E731 - a factory, as audits take
    results["training"].append(training_rates("resnet18 64px", resnet, big, device, args.seeds, cfg))
    results["copies"] = copy_rates(device)
    if not args.skip_examples:
        results["example_audits"] = example_audits(device, out_dir)
    (out_dir / "gpu_check.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
