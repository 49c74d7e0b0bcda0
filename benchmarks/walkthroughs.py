"""The three walkthroughs of docs/walkthroughs.md, run exactly as written there, with their time and verdicts.

    python benchmarks/walkthroughs.py [--only torchvision convnext custom] [--budget 5m]

1. torchvision resnet18: the stem `conv1` (7x7) against 3x3 and 5x5, the classifier built for 2 classes.
2. timm convnext_atto: the depthwise 7x7 convs of the first stage (`stages.0.blocks.*.conv_dw`) against 3x3.
3. A custom module (`TwoBranchNet` below): one named conv of a user's own architecture.

Each runs the default path (no recipe given: the preset the architecture's normalization layers pick),
`seeds="auto"` within `--budget`, on the planted SynthFaces data (2,000 training and 1,000 test images at
32x32), and prints: the preset, seconds, models trained, clean accuracy per level against the majority
rate, and the verdict with the worst effect's interval.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from pytest_kernelbias import LowPass, run_audit
from pytest_kernelbias.audit import default_data


def resnet18_two_classes() -> nn.Module:
    """torchvision's resnet18 with a 2-class head (its default is ImageNet's 1,000)."""
    import torchvision

    return torchvision.models.resnet18(weights=None, num_classes=2)


class TwoBranchNet(nn.Module):
    """A user's own architecture: a stem, two parallel branches, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.fine = nn.Conv2d(16, 16, 3, padding=1)
        self.coarse = nn.Conv2d(16, 16, 5, padding=2)
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.head(torch.cat([self.fine(x), self.coarse(x)], dim=1))


WALKS = {
    "torchvision": (resnet18_two_classes, "conv1", [7, 3, 5]),
    "convnext": ("convnext_atto", "stages.0.blocks.*.conv_dw", [7, 3]),
    "custom": (TwoBranchNet, "fine", [3, 7]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(WALKS), default=list(WALKS))
    parser.add_argument("--budget", default="5m")
    args = parser.parse_args()
    train, test = default_data("planted", n_train=2000, n_test=1000)
    for name in args.only:
        model, layer, levels = WALKS[name]
        started = time.time()
        result = run_audit(model, layer, levels, data=train, test_data=test, perturbation=LowPass(0.4),
                           budget=args.budget, progress=None)
        seconds = time.time() - started
        clean = result.clean_accuracy()
        worst = max(result.all_effects.values(), key=lambda e: abs(e.estimate))
        print(f"{name}: {seconds:.0f} s, {result.run.trained} models trained, preset lr "
              f"{result.spec.recipe.train_config.lr:g} epochs {result.spec.recipe.train_config.epochs}; clean "
              + ", ".join(f"{k} {v:.3f}" for k, v in clean.items())
              + f"; verdict {result.verdict} ({result.path.seeds} seeds): worst {worst.label} {worst.estimate:+.3f} "
              f"[{worst.ci[0]:+.3f}, {worst.ci[1]:+.3f}] at {worst.confidence:.2%}")


if __name__ == "__main__":
    main()
