"""Do the training presets learn? Each model trained with `TrainConfig.for_model(...)` on planted SynthFaces.

    python benchmarks/recipes_learn.py [--seeds 2] [--models convnext_atto,cnn] [--n-train 2000]
        [--n-test 1000] [--recipes preset,default] [--set lr=3e-4 --set epochs=10] [--no-probe]

For each model (by default SynthFacesCNN, timm resnet18, convnext_atto, mobilenetv3_small_050,
efficientnet_b0 and torchvision resnet18, all with 2 classes and no pretrained weights) and recipe
("preset": `TrainConfig.for_model(model)`, with any --set changes; "default": `TrainConfig()`), it
trains one model per seed with the package's trainer (`training.train`, seed s: weights drawn under
`torch.manual_seed(s)`, batch order from s) and prints the clean test accuracy per seed, the
majority-class rate of the test set, whether every seed learned by the audit's own criterion
(`analysis.learning_of`: the 95% Clopper-Pearson interval of clean accuracy lies above the
majority rate; "partly" where it is less than 0.05 above it or a subgroup is at chance, the
audit's warning) and the training seconds. Unless --no-probe, it also runs `lr_probe` once per
model and recipe (seed 0, its default step budget) and prints the lr it picks, its candidates x
steps and its seconds against one model's training (the mean over seeds).
One thread throughout (the audit's setting); no GPU is used.
"""

from __future__ import annotations

import argparse
import time


def synthfaces_cnn():
    from pytest_kernelbias import SynthFacesCNN

    return SynthFacesCNN()


def torchvision_resnet18():
    import torchvision

    return torchvision.models.resnet18(num_classes=2)


# Name shown -> what `TrainConfig.for_model` and `model_source` take (a factory or a timm name).
MODELS = {
    "cnn": synthfaces_cnn,
    "resnet18": "resnet18",
    "convnext_atto": "convnext_atto",
    "mobilenetv3_small_050": "mobilenetv3_small_050",
    "efficientnet_b0": "efficientnet_b0",
    "tv_resnet18": torchvision_resnet18,
}


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def predictions(model, images, chunk: int = 500):
    import torch

    with torch.no_grad():
        return torch.cat([model(images[i:i + chunk]).argmax(1) for i in range(0, len(images), chunk)]).numpy()


def run_model(name: str, recipe: str, args, train_data, test_data) -> dict:
    """Train `name` with `recipe` for each seed; accuracies, learning verdicts, seconds and the probe."""
    import numpy as np
    import torch

    from pytest_kernelbias.analysis._learning import learning_of
    from pytest_kernelbias.intervention._intervene import model_source
    from pytest_kernelbias.training import TrainConfig, preset_for, train
    from pytest_kernelbias.training._lr_probe import lr_probe

    build = model_source(MODELS[name])
    preset = preset_for(build())[0]
    config = TrainConfig.for_model(MODELS[name], **args.changes) if recipe == "preset" else TrainConfig()
    keys = test_data.group_keys(sorted(test_data.attributes))
    names = sorted(set(keys))
    codes = np.array([names.index(k) for k in keys])
    labels = test_data.labels.numpy()
    row = {"model": name, "recipe": recipe, "preset": preset, "config": config, "acc": [], "verdicts": [],
           "seconds": []}
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        model = build()
        started = time.perf_counter()
        train(model, train_data, seed, config)
        row["seconds"].append(time.perf_counter() - started)
        learned = learning_of(f"{name} seed {seed}", recipe, predictions(model, test_data.images), labels, codes,
                              names, 0.95)
        row["acc"].append(learned.accuracy)
        row["majority"] = learned.majority
        weak = learned.score - learned.chance < 0.05 or learned.weak_groups()
        row["verdicts"].append("no" if learned.at_chance else "partly" if weak else "yes")
        print(f"  {name} [{recipe}] seed {seed}: acc {learned.accuracy:.3f} (CI {learned.ci[0]:.3f}-"
              f"{learned.ci[1]:.3f}, majority {learned.majority:.3f}) {row['seconds'][-1]:.0f}s", flush=True)
    if args.probe:
        probe = lr_probe(build, train_data, config, seed=0)
        row["probe"] = probe
        print(f"  {name} [{recipe}] lr_probe: lr {probe.lr:.2g} from "
              + ", ".join(f"{lr:.2g}:{loss:.3f}{'(diverged)' if bad else ''}"
                          for lr, loss, bad in zip(probe.lrs, probe.losses, probe.diverged))
              + f" (chance {probe.chance:.3f}) in {probe.seconds:.1f}s", flush=True)
    return row


def table(rows: list[dict]) -> str:
    head = ("model", "recipe", "preset", "lr", "epochs", "batch", "warmup", "smooth", "acc per seed", "majority",
            "learned", "s/model", "probe lr", "probe steps", "probe s", "probe/train")
    body = []
    for r in rows:
        c, p = r["config"], r.get("probe")
        per_model = sum(r["seconds"]) / len(r["seconds"])
        probe = (f"{p.lr:.2g}", f"{len(p.lrs)}x{p.steps}", f"{p.seconds:.1f}", f"{p.seconds / per_model:.2f}") \
            if p else ("-",) * 4
        body.append((r["model"], r["recipe"], r["preset"], f"{c.lr:g}", c.epochs, c.batch_size, f"{c.warmup:g}",
                     f"{c.label_smoothing:g}", " ".join(f"{a:.3f}" for a in r["acc"]), f"{r['majority']:.3f}",
                     "/".join(r["verdicts"]), f"{per_model:.0f}", *probe))
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(f"{str(v):<{w}}" for v, w in zip(x, widths)).rstrip() for x in [head, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--recipes", default="preset", help="comma-separated: preset, default (default: preset)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a field of the preset, e.g. --set lr=3e-4 (repeatable)")
    parser.add_argument("--no-probe", dest="probe", action="store_false")
    args = parser.parse_args()
    args.changes = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}

    import torch

    from pytest_kernelbias.audit import default_data

    torch.set_num_threads(1)
    train_data, test_data = default_data("planted", n_train=args.n_train, n_test=args.n_test)
    started = time.perf_counter()
    rows = [run_model(name, recipe, args, train_data, test_data)
            for name in args.models.split(",") for recipe in args.recipes.split(",")]
    print(f"\nSynthFaces planted, {args.n_train} train / {args.n_test} test images at "
          f"{tuple(train_data.images.shape[2:])} px, {args.seeds} seed(s), 1 thread, "
          f"{time.perf_counter() - started:.0f}s in all; torch {torch.__version__}")
    print(table(rows))


if __name__ == "__main__":
    main()
