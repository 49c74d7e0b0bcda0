"""The whole audit pipeline against a plain PyTorch script doing the same audit the naive way.

    python benchmarks/naive_pipeline.py [--seeds 3] [--repeats 2] [--sigma 1.0] [--threads N] [--workers W]
                                        [--quick] [--no-weight-check]

Both sides run one audit: do(kernel_size=9) vs kernel_size=3 on SynthFacesCNN.conv1, trained on
planted SynthFaces (4000 train / 2000 test images, data seed 0, as audit.default_data draws them),
effect tau = mean over seeds of [B(9, s) - B(3, s)], where B is the spread (max - min) over
skin_tone subgroups of the accuracy drop under a Gaussian blur of `--sigma` pixels.

  pipeline  run_audit(SynthFacesCNN, "conv1", [3, 9], data="planted",
            perturbation=GaussianBlur(sigma, padding_mode="replicate"), seeds=N, cache=None,
            placebos=(), spectral_cutoff=None, progress=None): cold, default TrainConfig
            (channels_last training; where the library has it, seed_batching="auto" measures
            sequential against vmapped seed-batched training and keeps the faster), batched blur,
            batched evaluation. Timed from the call to the AuditResult, so data generation, model
            construction and that measurement are inside its time; the measurement's
            per-process memo is cleared before every run so each run is cold.
  naive     what one would write without the library: the same synthfaces() data, the same
            recipe as training.train written out by hand (AdamW lr 3e-3 wd 5e-4, cosine LambdaLR
            stepped per batch, batch 64, 4 epochs, order from torch.Generator().manual_seed(seed)
            + randperm per epoch, torch.manual_seed(seed) first), plain float32 NCHW, one model
            after another; Pillow's ImageFilter.GaussianBlur on each test image in a Python loop
            (once, reused by every model); evaluation one image at a time (batch of 1, eval mode,
            no_grad); per-subgroup accuracies, drops, B and tau by hand, with the paired t 95% CI
            from scipy.stats.ttest_rel. Its untrained models come from
            KernelIntervention(...).build(level, seed) so both sides start from identical weights;
            building them is outside its time (model construction is not what is compared).

The pipeline's blur is the library's GaussianBlur with replicate borders because that is what
Pillow's box blur does at the edges; Pillow cannot blur float ("F") images (ValueError: image has
wrong mode), so the naive side rounds each image to uint8 first, and Pillow's fixed-point box
passes round on their own. The script prints how far the two blurred test sets are apart in pixels.

It prints, per model, clean and perturbed accuracy per subgroup from both sides and their largest
difference, the share of identical predictions, both effects with their CIs, the wall and CPU
time of each side with the cores other processes kept busy meanwhile (from /proc/stat), the
ratio naive / pipeline, a breakdown of the naive time, and the FLOPs both sides count by the direct
convolution count (FlopCounterMode) with the rate each side reached against the dense matmul rate
measured at the end of the run: a comparison, not a bound (convolution kernels may do fewer operations
than the direct count, so runs have exceeded the matmul rate by it). torch's one-off
process costs (thread pool, lazy imports on the first optimizer) are paid once, untimed, before
either side runs.

  --repeats R      run the sides R times in alternating order (P N, N P, ...) so background load
                   hits both alike; the ratio is total naive over total pipeline time, and also
                   fastest naive run over fastest pipeline run (outside load only adds time).
  --threads N      torch's thread count for both sides. With 2 threads on a machine shared with
                   other processes, ops can wait a scheduler slice for their second thread, so
                   times swing several-fold; one thread per side is far steadier.
  --workers W      pass workers=W to run_audit; the default is run_audit's own (one one-thread
                   process per usable core), because the comparison asked for is the default
                   pipeline against what one would write by hand. The naive side stays one
                   sequential process on torch's default threads.
  --no-weight-check  skip training one model (kernel 3, seed 0) with training.train in both memory
                   formats, outside the compared times, which shows the hand loop is the same
                   recipe (NCHW matches it bit for bit) and how far channels_last moves each tensor.
  --quick          a smoke run (800 training images, 1 epoch, 500 test images; the models barely
                   learn); its times mean nothing.

No figure here gates anything.
"""

import argparse
import math
import os
import statistics
import time

import numpy as np
import PIL
import scipy
import torch
from PIL import Image, ImageFilter
from scipy import stats
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from training import matmul_flops  # benchmarks/training.py: this script's folder is on sys.path

from pytest_kernelbias import GaussianBlur, KernelIntervention, SynthFacesCNN, run_audit, synthfaces
from pytest_kernelbias.training._trainer import TrainConfig, train

try:  # seed-batched training and its per-process strategy memo; absent in older versions of the library
    from pytest_kernelbias.training import _seed_batched as seed_batching
except ImportError:
    seed_batching = None

LEVELS = (3, 9)
ATTRIBUTE = "skin_tone"


# ---------------------------------------------------------------- the naive script, piece by piece

def naive_train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int, epochs: int,
                batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 5e-4) -> nn.Module:
    """A hand-written loop with training.train's recipe, in plain float32 NCHW."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(images)
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    order = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    torch.manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=order)
        running = 0.0
        for step in range(steps_per_epoch):
            idx = perm[step * batch_size:(step + 1) * batch_size]
            loss = loss_fn(model(images[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * len(idx)  # the epoch loss a script would log; costs a sync per step
    return model.eval()


def pillow_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Pillow's GaussianBlur image by image; Pillow only blurs 8-bit images, hence the uint8 round trip."""
    out = []
    for img in images:
        u8 = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        blurred = Image.fromarray(u8).filter(ImageFilter.GaussianBlur(sigma))
        out.append(torch.from_numpy(np.asarray(blurred).copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


@torch.no_grad()
def predict_one_by_one(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    model.eval()
    return np.array([int(model(images[i:i + 1]).argmax(dim=1)) for i in range(len(images))])


def subgroup_accuracy(pred: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    return {f"{ATTRIBUTE}={g}": float((pred[groups == g] == labels[groups == g]).mean()) for g in sorted(set(groups))}


def naive_audit(models: dict, sigma: float, seeds: int, n_train: int, n_test: int, epochs: int) -> dict:
    """The whole naive audit on pre-built untrained `models[(level, seed)]`; returns numbers and times."""
    t = {}
    t0 = time.perf_counter()
    train_set = synthfaces(n_train, 0, "planted", "train")
    test_set = synthfaces(n_test, 0, "planted", "test")
    t["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    trained = {key: naive_train(m, train_set.images, train_set.labels, key[1], epochs) for key, m in models.items()}
    t["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    blurred = pillow_blur(test_set.images, sigma)
    t["perturb"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    preds = {key: {"clean": predict_one_by_one(m, test_set.images), "perturbed": predict_one_by_one(m, blurred)}
             for key, m in trained.items()}
    t["evaluate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    labels = test_set.labels.numpy()
    groups = np.asarray(test_set.attributes[ATTRIBUTE])
    acc, spread = {}, {}
    for key, p in preds.items():
        clean = subgroup_accuracy(p["clean"], labels, groups)
        pert = subgroup_accuracy(p["perturbed"], labels, groups)
        acc[key] = {g: (clean[g], pert[g]) for g in clean}
        drops = [clean[g] - pert[g] for g in clean]
        spread[key] = max(drops) - min(drops)
    b_ref = [spread[(LEVELS[0], s)] for s in range(seeds)]
    b_trt = [spread[(LEVELS[1], s)] for s in range(seeds)]
    ci = stats.ttest_rel(b_trt, b_ref).confidence_interval(0.95)
    effect = {"estimate": float(np.mean(np.subtract(b_trt, b_ref))), "ci": (float(ci.low), float(ci.high)),
              "differences": np.subtract(b_trt, b_ref).tolist()}
    t["stats"] = time.perf_counter() - t0
    return {"times": t, "acc": acc, "preds": preds, "effect": effect, "trained": trained, "blurred": blurred,
            "test_set": test_set, "train_set": train_set}


# ---------------------------------------------------------------- the pipeline

def pipeline_audit(perturbation, seeds: int, quick: dict | None, workers: int | None = None) -> object:
    if quick is None:
        return run_audit(SynthFacesCNN, "conv1", list(LEVELS), data="planted", perturbation=perturbation,
                         seeds=seeds, cache=None, placebos=(), spectral_cutoff=None, progress=None, workers=workers)
    # The smoke run shrinks the data and epochs; drawing the data stays inside the timed call's share.
    return run_audit(SynthFacesCNN, "conv1", list(LEVELS),
                     data=synthfaces(quick["n_train"], 0, "planted", "train"),
                     test_data=synthfaces(quick["n_test"], 0, "planted", "test"),
                     perturbation=perturbation, seeds=seeds, cache=None, placebos=(), spectral_cutoff=None,
                     progress=None, train_config=TrainConfig(epochs=quick["epochs"]), workers=workers)


def warm_up() -> None:
    """Pay torch's one-off costs (thread pool, lazy imports on the first optimizer, kernel setup) untimed.

    Whichever side ran first would otherwise carry them for both.
    """
    torch.manual_seed(0)
    x, y = torch.rand(64, 3, 32, 32), torch.randint(0, 2, (64,))
    for fmt in (torch.contiguous_format, torch.channels_last):
        model = SynthFacesCNN().to(memory_format=fmt)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for _ in range(2):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x.contiguous(memory_format=fmt)), y).backward()
            opt.step()
        with torch.no_grad():
            model.eval()(x[:1])
            model(torch.rand(512, 3, 32, 32))
    pillow_blur(x[:2], 1.0)
    GaussianBlur(1.0, padding_mode="replicate")(x)


def cold_pipeline(perturbation, seeds: int, quick: dict | None, workers: int | None = None):
    """The pipeline with nothing remembered from an earlier run in this process."""
    if seed_batching is not None:
        # The measured sequential-vs-vmap choice is memoized per process; a fresh process measures it.
        seed_batching.clear_strategy_memo()
    return pipeline_audit(perturbation, seeds, quick, workers)


def strategies_chosen() -> list[str]:
    """The training strategy the last pipeline run measured and chose, read from the library's memo."""
    memo = getattr(seed_batching, "_CHOICES", None)  # private, read only: run_audit reports it only via progress
    return [f"{c.strategy} ({c.reason})" for c in memo.values()] if memo else []


def machine_busy_seconds() -> float | None:
    """CPU seconds every process on the machine has spent busy so far (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    except OSError:
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def live_children_seconds() -> float:
    """CPU seconds of this process's running children (Linux /proc), e.g. the worker pool run_audit keeps."""
    total, me = 0.0, str(os.getpid())
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        except OSError:  # exited meanwhile
            continue
        if fields[1] == me:  # ppid
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children, finished or (like run_audit's pool) still running."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + live_children_seconds()


def timed(fn):
    """fn()'s result, wall and CPU seconds, and the cores other processes kept busy meanwhile.

    The machine is shared, so the outside load during each side is measured rather than assumed.
    """
    b0, w0, c0 = machine_busy_seconds(), time.perf_counter(), cpu_seconds()
    out = fn()
    wall, cpu, b1 = time.perf_counter() - w0, cpu_seconds() - c0, machine_busy_seconds()
    others = None if b0 is None or b1 is None else max(0.0, (b1 - b0) - cpu) / wall
    return out, wall, cpu, others


# ---------------------------------------------------------------- FLOPs against the matmul rate

def audit_flops(intervention: KernelIntervention, seeds: int, n_train: int, n_test: int, epochs: int) -> float:
    """FLOPs either side must compute: every model's training (forward and backward) and its evaluation.

    Counted by torch's FlopCounterMode on one batch of 64 per level; evaluation is one forward per
    test image and condition (clean and blurred).
    """
    total = 0.0
    for level in LEVELS:
        model = intervention.build(level, 0)
        x = torch.rand(64, 3, 32, 32)
        with FlopCounterMode(display=False) as train_count:
            model.train()(x).sum().backward()
        with FlopCounterMode(display=False) as eval_count, torch.no_grad():
            model.eval()(x)
        per_image_train, per_image_eval = train_count.get_total_flops() / 64, eval_count.get_total_flops() / 64
        total += seeds * (per_image_train * n_train * epochs + per_image_eval * 2 * n_test)
    return total


def print_flop_rates(flops: float, peak: float, p_wall: list[float], n_wall: list[float]) -> None:
    """Both sides' counted FLOPs and the rate each side's fastest run reached: a comparison, not a bound.

    FlopCounterMode counts a convolution as the direct algorithm does; the library's kernels may do fewer
    operations (e.g. Winograd for 3x3), and runs have reached more than the dense matmul rate by this count
    (116% on 2026-12-02), so the matmul rate does not bound the audit's time and no ceiling on the ratio
    follows from it.
    """
    print(f"  FLOPs: both sides count {flops / 1e12:.2f} TFLOP (direct convolution, FlopCounterMode); the fastest "
          f"pipeline run reached {flops / min(p_wall) / 1e9:.1f} GFLOP/s and the fastest naive run "
          f"{flops / min(n_wall) / 1e9:.1f} GFLOP/s by that count, against a dense matmul rate of {peak / 1e9:.1f} "
          "GFLOP/s on all cores. Not a ceiling: the convolution kernels may do fewer operations than the direct "
          "count, so no bound on the ratio follows from the matmul rate")


# ---------------------------------------------------------------- report

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each side, in alternating order")
    ap.add_argument("--sigma", type=float, default=1.0, help="blur standard deviation in pixels")
    ap.add_argument("--quick", action="store_true", help="smoke run: 800 train images, 1 epoch, 500 test images")
    ap.add_argument("--no-weight-check", action="store_true")
    ap.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's own choice)")
    ap.add_argument("--workers", type=int, default=None,
                    help="run_audit(workers=...) on the pipeline side only (default: run_audit's, usable cores)")
    args = ap.parse_args()
    if args.threads:
        # Every op of a multi-threaded forward/backward ends in a barrier; under outside load the
        # barrier waits for a descheduled thread, so pinning the count makes the two sides comparable.
        torch.set_num_threads(args.threads)
    quick = {"n_train": 800, "n_test": 500, "epochs": 1} if args.quick else None
    n_train, n_test, epochs = (quick["n_train"], quick["n_test"], quick["epochs"]) if quick else (4000, 2000, 4)
    perturbation = GaussianBlur(args.sigma, padding_mode="replicate")
    pert_name = perturbation.name

    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), Pillow {PIL.__version__}, "
          f"scipy {scipy.__version__}, {os.cpu_count()} CPUs")
    print(f"audit: SynthFacesCNN.conv1 kernel_size {LEVELS[1]} vs {LEVELS[0]}, {args.seeds} seeds, "
          f"{n_train} train / {n_test} test images, {epochs} epochs, blur sigma {args.sigma:g} px"
          + ("  [--quick smoke run: times mean nothing]" if quick else ""))
    print(f"pipeline perturbation {pert_name}"
          + f", workers={args.workers or 'default (usable cores)'}"
          + f"; naive: PIL.ImageFilter.GaussianBlur({args.sigma:g}) per uint8 image\n")

    intervention = KernelIntervention(SynthFacesCNN, "conv1", list(LEVELS), num_classes=2)
    warm_up()
    runs = {"pipeline": [], "naive": []}
    for r in range(args.repeats):
        order = ("pipeline", "naive") if r % 2 == 0 else ("naive", "pipeline")
        for side in order:
            if side == "pipeline":
                out, wall, cpu, others = timed(lambda: cold_pipeline(perturbation, args.seeds, quick, args.workers))
            else:
                # Built before the clock starts: model construction is not what is compared.
                models = {(level, s): intervention.build(level, s) for s in range(args.seeds) for level in LEVELS}
                out, wall, cpu, others = timed(lambda: naive_audit(models, args.sigma, args.seeds, n_train, n_test,
                                                                 epochs))
            runs[side].append((out, wall, cpu, others))
            busy = "n/a" if others is None else f"{others:.2f}"
            print(f"round {r + 1}: {side:<8} wall {wall:7.1f} s  cpu {cpu:7.1f} s  "
                  f"(other processes kept {busy} of {os.cpu_count()} cores busy meanwhile)", flush=True)
            if side == "pipeline":
                for line in strategies_chosen():
                    print(f"         pipeline seed training: {line}")

    result = runs["pipeline"][0][0]
    naive = runs["naive"][0][0]
    test_set = naive["test_set"]

    # ---- the perturbations themselves, on the same test images
    ours = perturbation(test_set.images)
    diff = (ours - naive["blurred"]) * 255
    quantized = (test_set.images.clamp(0, 1) * 255).round() - test_set.images * 255
    print(f"\nblurred test sets ({n_test} images): |pipeline - Pillow| max {diff.abs().max():.2f}/255, "
          f"mean {diff.abs().mean():.3f}/255, signed mean {diff.mean():+.3f}/255; "
          f"uint8 rounding alone max {quantized.abs().max():.2f}/255")

    # ---- per model: accuracies and prediction agreement
    groups = list(next(iter(naive["acc"].values())))
    by_model = {}
    for row in result.outcomes.rows:
        if row.perturbation == pert_name:
            by_model.setdefault((row.level, row.seed), {})[row.subgroup] = (row.clean, row.perturbed)
    print("\nper model: accuracy clean / perturbed per subgroup, pipeline (P) and naive (N)")
    head = "  ".join(f"{g:>27}" for g in groups)
    print(f"  {'model':<11} {'side':<4} {head}  {'max|P-N|':>8}  {'same pred clean':>15}  {'same pred pert':>14}  "
          f"{'N: Pillow vs lib blur':>21}")
    max_acc_diff = 0.0
    same_clean, same_pert = [], []
    for key in sorted(naive["acc"]):
        level, seed = key
        p_acc, n_acc = by_model[key], naive["acc"][key]
        d = max(abs(p_acc[g][i] - n_acc[g][i]) for g in groups for i in (0, 1))
        max_acc_diff = max(max_acc_diff, d)
        pp, nn_ = result.predictions[key], naive["preds"][key]
        sc = float((pp["clean"] == nn_["clean"]).mean())
        sp = float((pp[pert_name] == nn_["perturbed"]).mean())
        same_clean.append(sc)
        same_pert.append(sp)
        # The naive model on both blurs isolates the perturbation's share of the disagreement.
        with torch.no_grad():
            lib_blur_pred = naive["trained"][key](ours).argmax(1).numpy()
        sb = float((lib_blur_pred == nn_["perturbed"]).mean())
        for side, acc in (("P", p_acc), ("N", n_acc)):
            cells = "  ".join(f"{acc[g][0]:.4f} / {acc[g][1]:.4f}".rjust(27) for g in groups)
            extra = (f"  {d:8.4f}  {100 * sc:14.2f}%  {100 * sp:13.2f}%  {100 * sb:20.2f}%" if side == "P" else "")
            print(f"  k={level} s={seed:<5} {side:<4} {cells}{extra}")
    print(f"  largest |pipeline - naive| accuracy over all models, subgroups and conditions: {max_acc_diff:.4f}")
    print(f"  identical predictions: clean {100 * np.mean(same_clean):.2f}%, perturbed {100 * np.mean(same_pert):.2f}% "
          f"(mean over models; lowest {100 * min(same_clean):.2f}% / {100 * min(same_pert):.2f}%)")

    # ---- effects
    e, ne = result.effect, naive["effect"]
    print(f"\neffect tau = mean_s[B(k={LEVELS[1]}, s) - B(k={LEVELS[0]}, s)], B = spread of drop over {ATTRIBUTE}")
    print(f"  pipeline {e.estimate:+.4f}  95% CI [{e.ci[0]:+.4f}, {e.ci[1]:+.4f}] ({e.method})  "
          f"per seed {' '.join(f'{v:+.4f}' for v in e.differences)}")
    print(f"  naive    {ne['estimate']:+.4f}  95% CI [{ne['ci'][0]:+.4f}, {ne['ci'][1]:+.4f}] (ttest_rel)  "
          f"per seed {' '.join(f'{v:+.4f}' for v in ne['differences'])}")
    print(f"  |difference| estimate {abs(e.estimate - ne['estimate']):.4f}")

    # ---- weights: is the hand loop training.train's recipe?
    if not args.no_weight_check:
        key = (LEVELS[0], 0)
        naive_sd = naive["trained"][key].state_dict()
        cfg = {"epochs": epochs}
        print(f"\nweights of k={key[0]} s={key[1]}, hand loop (NCHW) vs training.train (untimed for the ratio):")
        for fmt in (False, True):
            t0 = time.perf_counter()
            lib = train(intervention.build(*key), naive["train_set"], key[1],
                        TrainConfig(channels_last=fmt, **cfg)).state_dict()
            seconds = time.perf_counter() - t0
            # Float tensors only: num_batches_tracked is a step count, not a weight.
            diffs = {k: float((lib[k] - naive_sd[k]).abs().max()) for k in lib if lib[k].is_floating_point()}
            rel = {k: d / max(float(lib[k].abs().max()), 1e-12) for k, d in diffs.items()}
            top = sorted(rel, key=rel.get, reverse=True)[:3]
            print(f"  channels_last={fmt!s:<5}: train() {seconds:.1f} s; max |difference| "
                  f"{max(diffs.values()):.3g}; largest relative to the tensor's max |value|: "
                  + ", ".join(f"{k} {rel[k]:.3g}" for k in top))

    # ---- times
    p_wall = [w for _, w, _, _ in runs["pipeline"]]
    n_wall = [w for _, w, _, _ in runs["naive"]]
    p_cpu = [c for _, _, c, _ in runs["pipeline"]]
    n_cpu = [c for _, _, c, _ in runs["naive"]]
    print(f"\ntimes over {args.repeats} run(s) per side, alternating order:")
    print(f"  pipeline wall {' '.join(f'{w:.1f}' for w in p_wall)} s, cpu {' '.join(f'{c:.1f}' for c in p_cpu)} s")
    print(f"  naive    wall {' '.join(f'{w:.1f}' for w in n_wall)} s, cpu {' '.join(f'{c:.1f}' for c in n_cpu)} s")
    parts = ("data", "train", "perturb", "evaluate", "stats")
    for name in parts:
        vals = [out["times"][name] for out, _, _, _ in runs["naive"]]
        share = sum(vals) / sum(n_wall)
        print(f"    naive {name:<9} {statistics.median(vals):8.2f} s (median)  {100 * share:5.1f}% of naive wall"
              + (f"  = {1000 * statistics.median(vals) / (2 * n_test * len(LEVELS) * args.seeds):.2f} ms per "
                 "batch-1 forward" if name == "evaluate" else ""))
    print(f"  ratio naive / pipeline: wall {sum(n_wall) / sum(p_wall):.2f}x, cpu {sum(n_cpu) / sum(p_cpu):.2f}x"
          + (f"  (per round: {' '.join(f'{n / p:.2f}' for n, p in zip(n_wall, p_wall))})" if args.repeats > 1 else ""))
    if args.repeats > 1:
        # Outside load only ever adds time, so each side's fastest run is its least disturbed one.
        print(f"  ratio of the fastest runs: wall {min(n_wall) / min(p_wall):.2f}x "
              f"({min(n_wall):.1f} s / {min(p_wall):.1f} s)")
    torch.set_num_threads(os.cpu_count() or 1)  # dense matmul on every core, whatever --threads said: the peak
    print_flop_rates(audit_flops(intervention, args.seeds, n_train, n_test, epochs),
                  statistics.median(matmul_flops() for _ in range(3)), p_wall, n_wall)


if __name__ == "__main__":
    main()
