"""Sweep the "stem" intervention over timm's model zoo, through the public API only.

    python benchmarks/timm_zoo.py [--max-params 60e6] [--sample N] [--workers 2] [--out zoo.jsonl]

For every model in `timm.list_models()` (pretrained off) that contains a conv:
find the stem (the first conv the input meets), apply do(kernel_size=k) for
k in 3, 5, 7, 4 with `intervene(..., example_input=x)` (which checks that the
stem's output shape is unchanged), run the whole model, and check the logits
shape. A model succeeds when all four levels pass.

Models above --max-params parameters are built and run on the meta device:
every shape is computed but no arithmetic is done, because building and
running them for real on 2 CPU cores would take the sweep past an hour. The
report splits the counts by device.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import random
import signal
import sys
import time
import warnings

LEVELS = (3, 5, 7, 4)


class _Timeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Timeout()


def _param_count(name: str) -> tuple[int, bool]:
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    has_conv = any(isinstance(m, torch.nn.Conv2d) or type(m).__name__ == "CondConv2d" for m in model.modules())
    return sum(p.numel() for p in model.parameters()), has_conv


def _input_sizes(model) -> list[tuple[int, ...]]:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    c, h, w = cfg.get("input_size", (3, 224, 224))
    sizes = [(1, c, 64, 64)]
    for size in (cfg.get("min_input_size"), (c, h, w)):
        if size and (1, *size) not in sizes:
            sizes.append((1, *size))
    return sizes


def try_model(name: str, timeout: int, meta: bool = False) -> dict:
    """Build, find the stem, intervene at every level, run. `meta` runs shapes only, no arithmetic."""
    import timm
    import torch

    import pytest_kernelbias as kb

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    t0 = time.time()
    out = {"model": name, "device": "meta" if meta else "cpu"}
    device = torch.device("meta" if meta else "cpu")
    try:
        torch.manual_seed(0)
        with device:
            model = timm.create_model(name, pretrained=False).eval()
        x = logits = None
        for size in _input_sizes(model):
            try:
                with torch.no_grad():
                    logits = model(torch.randn(size, device=device))
                x = torch.randn(size, device=device)
                break
            except Exception as exc:  # the original model itself rejects this size
                out["original_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        if x is None:
            out.update(status="skip", cause="original model fails at every tried input size")
            return out
        out["input"] = list(x.shape)
        stem = kb.find_stem(model, tuple(x.shape))
        conv = model.get_submodule(stem)
        out.update(stem=stem, stem_class=type(conv).__name__, stem_kernel=list(conv.kernel_size),
                   stem_stride=list(conv.stride))
        failures = {}
        notes = set()
        for k in LEVELS:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    new = kb.intervene(model, stem, k, seed=0, example_input=x).eval()
                notes.update(str(w.message).split(": ", 1)[-1].split(":")[0] for w in caught)
                with torch.no_grad():
                    new_logits = new(x)
                if new_logits.shape != logits.shape:
                    failures[k] = f"logits shape {tuple(new_logits.shape)} != {tuple(logits.shape)}"
            except kb.KernelBiasError as exc:
                failures[k] = f"{type(exc).__name__}: {str(exc)[:300]}"
            except Exception as exc:
                failures[k] = f"forward {type(exc).__name__}: {str(exc)[:300]}"
        out.update(status="ok" if not failures else "fail", failures=failures, notes=sorted(notes))
    except _Timeout:
        out.update(status="timeout")
    except Exception as exc:
        out.update(status="error", cause=f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        signal.alarm(0)
        out["seconds"] = round(time.time() - t0, 2)
    return out


def _worker(args):
    import torch

    torch.set_num_threads(1)
    return try_model(*args)


def classify(failure: str) -> str:
    if failure.startswith("forward"):
        return "forward error after the swap: " + failure.split(":")[0].split(" ", 1)[1]
    if "output shape changed" in failure:
        return "stem output shape changed"
    if "cannot do" in failure:
        return "crop impossible with non-zero padding mode"
    return failure.split(":")[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-params", type=float, default=60e6, help="larger models run on the meta device")
    ap.add_argument("--sample", type=int, default=0, help="a seeded random sample of this many models (0: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--out", default="zoo.jsonl")
    args = ap.parse_args()

    import timm

    names = timm.list_models()
    if args.sample:
        names = sorted(random.Random(0).sample(names, args.sample))
    t0 = time.time()
    todo, big, no_conv, meta_error = [], 0, 0, 0
    for name in names:
        try:
            params, has_conv = _param_count(name)
        except Exception:
            meta_error += 1
            todo.append((name, args.timeout, False))  # meta build failed: try it for real
            continue
        if not has_conv:
            no_conv += 1
        else:
            big += params > args.max_params
            todo.append((name, args.timeout, params > args.max_params))
    print(f"{len(names)} models listed; {no_conv} have no conv; {len(todo)} to try, {big} of them over "
          f"{args.max_params:.0f} params on the meta device ({meta_error} could not be counted on meta)", flush=True)

    results = []
    ctx = mp.get_context("fork")
    with ctx.Pool(args.workers, maxtasksperchild=20) as pool, open(args.out, "w") as fh:
        for i, res in enumerate(pool.imap_unordered(_worker, todo)):
            results.append(res)
            fh.write(json.dumps(res) + "\n")
            fh.flush()
            if (i + 1) % 50 == 0:
                print(f"  {i + 1}/{len(todo)} done, {time.time() - t0:.0f}s", flush=True)

    counted = [r for r in results if r["status"] in ("ok", "fail")]
    ok = [r for r in counted if r["status"] == "ok"]
    causes = collections.Counter(classify(f) for r in counted if r["status"] == "fail" for f in r["failures"].values())
    other = collections.Counter(r["status"] for r in results if r["status"] not in ("ok", "fail"))
    notes = collections.Counter(n for r in ok for n in r.get("notes", []))
    print(f"\nmodels tried: {len(results)}; with a stem found and run: {len(counted)}; succeeded (k in {LEVELS}): "
          f"{len(ok)} = {100 * len(ok) / max(1, len(counted)):.1f}%")
    print(f"not counted: {dict(other)}")
    print("failures by cause (one per failing level):")
    for cause, n in causes.most_common():
        print(f"  {n:4d}  {cause}")
    print("notes on succeeding models:")
    for note, n in notes.most_common():
        print(f"  {n:4d}  {note}")
    for dev in ("cpu", "meta"):
        part = [r for r in counted if r["device"] == dev]
        print(f"  on {dev}: {sum(r['status'] == 'ok' for r in part)}/{len(part)} succeeded")
    print(f"stem classes: {dict(collections.Counter(r.get('stem_class') for r in counted))}")
    print(f"total {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
