"""What behavioural cache keys cost, side by side in one run.

1. Share of a cold run: the example audits (example_audits/, an empty cache) run in this process under
   pytest with the three fingerprint functions timed as they run, so the share of the run they take is
   measured in the same run, whatever the machine's load (goal: under 2%).
2. The probe against one model's training: for real models at the audit's image size, the model
   fingerprint (tree, seeded init, eval/train outputs and gradients on 8 images) against one training
   epoch of the same model on 1,000 images, alternating, best of `--repeats`.
3. A warm rerun against a plain collection: `pytest --kernel-audit example_audits` on the cache part 1
   filled, against `pytest --collect-only` of the same files, each in a fresh process, alternating
   (goal: warm at most 2.5x collection, and nothing trained).

    python benchmarks/fingerprint_cost.py [--repeats 3] [--skip-cold] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TIMED = {"model": ("pytest_kernelbias.intervention._intervene", "model_fingerprint"),
         "perturbation": ("pytest_kernelbias.plan", "perturbation_fingerprint"),
         "trainer": ("pytest_kernelbias.plan", "trainer_fingerprint")}


def _timing(spent: dict[str, float], name: str, fn):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start
    return timed


def cold_share(cache: Path) -> dict:
    """Run the example audits cold in this process with the fingerprint functions timed."""
    import importlib

    import pytest

    spent = dict.fromkeys(TIMED, 0.0)
    for name, (module, attr) in TIMED.items():
        mod = importlib.import_module(module)
        setattr(mod, attr, _timing(spent, name, getattr(mod, attr)))
    start = time.perf_counter()
    code = pytest.main(["--kernel-audit", str(ROOT / "example_audits"), "--kernel-audit-cache", str(cache),
                        "-p", "no:cacheprovider", "-q", "-W", "ignore"])
    total = time.perf_counter() - start
    return {"exit": int(code), "seconds": total, **{f"{k}_s": v for k, v in spent.items()},
            "share": sum(spent.values()) / total}


def _epoch_seconds(build, data) -> float:
    from pytest_kernelbias.training import TrainConfig, train

    model = build()
    start = time.perf_counter()
    train(model, data, 0, TrainConfig(epochs=1, batch_size=64), "cpu")
    return time.perf_counter() - start


def probe_against_training(repeats: int) -> list[dict]:
    """Model fingerprint vs one training epoch on 1,000 SynthFaces images, per model, best of `repeats`."""
    import timm

    from pytest_kernelbias import SynthFacesCNN, synthfaces
    from pytest_kernelbias.fingerprints import model_fingerprint

    data = synthfaces(1000, 0, "planted")
    models = {"SynthFacesCNN": SynthFacesCNN, "resnet18": lambda: timm.create_model("resnet18", num_classes=2),
              "convnext_atto": lambda: timm.create_model("convnext_atto", num_classes=2),
              "mobilenetv3_small_050": lambda: timm.create_model("mobilenetv3_small_050", num_classes=2)}
    rows = []
    torch.set_num_threads(1)  # the audit's thread policy
    for name, build in models.items():
        probe, epoch = [], []
        for _ in range(repeats):  # alternating, so a slow phase of the machine hits both
            start = time.perf_counter()
            model_fingerprint(build, data.images)
            probe.append(time.perf_counter() - start)
            epoch.append(_epoch_seconds(build, data))
        rows.append({"model": name, "probe_s": min(probe), "epoch_s": min(epoch), "ratio": min(probe) / min(epoch)})
    return rows


def _run(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - start, out.stdout


def warm_against_collection(cache: Path, repeats: int) -> dict:
    """Fresh-process warm runs and plain collections of example_audits, alternating; medians."""
    warm, collect, trained = [], [], []
    report = Path(tempfile.mkdtemp()) / "report.json"
    for _ in range(repeats):
        seconds, _ = _run(["--kernel-audit", "example_audits", "--kernel-audit-cache", str(cache), "-q",
                           "-p", "no:cacheprovider", "--kernel-audit-json", str(report), "-W", "ignore"])
        warm.append(seconds)
        audits = json.loads(report.read_text())["audits"]
        trained.append(sum((a.get("settings") or {}).get("trained", 0) for a in audits))
        collect.append(_run(["--collect-only", "-q", "example_audits", "-p", "no:cacheprovider"])[0])
    mid = sorted(warm)[len(warm) // 2], sorted(collect)[len(collect) // 2]
    return {"warm_s": warm, "collect_s": collect, "trained": trained, "ratio": mid[0] / mid[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true", help="use --cache as filled by an earlier run")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="fingerprint-cost-"))
    if not args.skip_cold:
        share = cold_share(cache)
        print(f"1. cold example audits: {share['seconds']:.1f} s (pytest exit {share['exit']}); fingerprints "
              f"{share['model_s']:.2f} s model + {share['perturbation_s']:.2f} s perturbation + "
              f"{share['trainer_s']:.3f} s trainer = {100 * share['share']:.2f}% of the run (goal < 2%)")
    for row in probe_against_training(args.repeats):
        print(f"2. {row['model']:<22} fingerprint {row['probe_s']:.3f} s vs one epoch on 1,000 images "
              f"{row['epoch_s']:.2f} s: {100 * row['ratio']:.2f}%")
    warm = warm_against_collection(cache, args.repeats)
    print(f"3. warm rerun vs plain collection, fresh processes: warm {['%.1f' % s for s in warm['warm_s']]} s, "
          f"collect {['%.1f' % s for s in warm['collect_s']]} s: {warm['ratio']:.2f}x (goal <= 2.5x); "
          f"models trained by the warm runs {warm['trained']}")


if __name__ == "__main__":
    main()
