"""AntiAlias and Pooling over a sample of timm's zoo: every strided conv and every pool of each model.

    python benchmarks/downsample_zoo.py [--sample 60] [--max-params 30e6] [--workers 2] [--out downsample.jsonl]

A seeded random sample of `timm.list_models()` (pretrained off, at most --max-params parameters, with a conv).
For each model, every conv with stride > 1 gets AntiAlias(3), and every MaxPool2d/AvgPool2d gets AntiAlias(3)
and each other pooling kind, through `intervene(..., example_input=x)` (which checks the layer's output shape).
A layer counts as applied when the whole model then runs with the original logits' shape and every parameter
and buffer outside the layer equals the original's (pairing). A dilated max pool cannot become an average or blur
pool of its shape: those refusals are by design and counted apart.
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

from timm_zoo import _alarm, _input_sizes, _param_count, _Timeout


def _candidates(model) -> list[tuple[str, list]]:
    from torch import nn

    from pytest_kernelbias.intervention import AntiAlias, Pooling, is_pool

    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and tuple(module.stride) != (1, 1):
            found.append((name, [AntiAlias(3)]))
        elif is_pool(module):
            own = "max" if isinstance(module, nn.MaxPool2d) else "avg"
            strided = (module.stride or module.kernel_size) not in (1, (1, 1))  # AntiAlias needs a subsampling
            found.append((name, [AntiAlias(3)] * strided + [Pooling(k) for k in ("max", "avg", "blur") if k != own]))
    return found


def _paired(original, changed, layer: str) -> bool:
    """Every tensor outside `layer` equal to the original's (an aliased layer's other names excluded too)."""
    changed_state = changed.state_dict()
    for key, value in original.state_dict().items():
        if key.startswith(layer + ".") or key not in changed_state:
            continue
        if not (changed_state[key] == value).all():
            return False
    return True


def _apply(model, x, logits, layer: str, level) -> str:
    import torch

    import pytest_kernelbias as kb
    from pytest_kernelbias.intervention import intervene

    try:
        changed = intervene(model, layer, level, seed=0, example_input=x).eval()
        with torch.no_grad():
            out = changed(x)
    except kb.KernelBiasError as exc:
        text = str(exc)
        return "refused by design" if "is dilated" in text else f"error: {text[:200]}"
    except Exception as exc:
        return f"forward {type(exc).__name__}: {str(exc)[:200]}"
    if out.shape != logits.shape:
        return f"logits shape {tuple(out.shape)}"
    return "ok" if _paired(model, changed, layer) else "pairing broken"


def try_model(name: str, timeout: int) -> dict:
    import timm
    import torch

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    out: dict = {"model": name, "layers": []}
    try:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        for size in _input_sizes(model):
            try:
                x = torch.randn(size)
                with torch.no_grad():
                    logits = model(x)
                break
            except Exception:
                x = None
        if x is None:
            out["status"] = "skip: the original model runs at no tried size"
            return out
        for layer, levels in _candidates(model):
            for level in levels:
                out["layers"].append({"layer": layer, "class": type(model.get_submodule(layer)).__name__,
                                      "level": str(level), "result": _apply(model, x, logits, layer, level)})
        out["status"] = "done"
    except _Timeout:
        out["status"] = "timeout"
    except Exception as exc:
        out["status"] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.alarm(0)
    return out


def _worker(args):
    import torch

    torch.set_num_threads(1)
    return try_model(*args)


def _report(results: list[dict], seconds: float) -> None:
    rows = [row for r in results for row in r["layers"]]
    refused = [row for row in rows if row["result"] == "refused by design"]
    counted = [row for row in rows if row["result"] != "refused by design"]
    for kind in ("anti_alias", "pooling"):
        part = [row for row in counted if row["level"].startswith(kind)]
        ok = sum(row["result"] == "ok" for row in part)
        print(f"{kind}: {ok}/{len(part)} layer-levels applied = {100 * ok / max(1, len(part)):.1f}% "
              f"(shapes and pairing kept)")
    print(f"refused by design (a dilated max pool to avg or blur): {len(refused)}")
    print(f"models: {collections.Counter(r['status'].split(':')[0] for r in results)}")
    print("failures:")
    for cause, n in collections.Counter(row["result"][:120] for row in counted if row["result"] != "ok").most_common():
        print(f"  {n:4d}  {cause}")
    print(f"layer classes: {dict(collections.Counter(row['class'] for row in rows))}")
    print(f"total {seconds:.0f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=60)
    ap.add_argument("--max-params", type=float, default=30e6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--out", default="downsample.jsonl")
    args = ap.parse_args()
    import timm

    names, rng = [], random.Random(0)
    pool_of_names = timm.list_models()
    rng.shuffle(pool_of_names)
    for name in pool_of_names:  # the first --sample models that fit the size and have a conv
        try:
            params, has_conv = _param_count(name)
        except Exception:
            continue
        if has_conv and params <= args.max_params:
            names.append(name)
        if len(names) == args.sample:
            break
    t0 = time.time()
    results = []
    with mp.get_context("fork").Pool(args.workers, maxtasksperchild=10) as pool, open(args.out, "w") as fh:
        for res in pool.imap_unordered(_worker, [(n, args.timeout) for n in sorted(names)]):
            results.append(res)
            fh.write(json.dumps(res) + "\n")
    _report(results, time.time() - t0)


if __name__ == "__main__":
    sys.exit(main())
