"""Training a variant: the default recipe (`TrainConfig`, `train`), presets by normalization (`preset_for`) and
seed-batched training (`train_seeds`)."""

from __future__ import annotations

from .._lazy import lazy_api

# Each name this part offers and the module that defines it; loaded on first use (_lazy.py).
_HOMES = {
    **dict.fromkeys(["GRID", "lr_probe_levels"], "._lr_probe"),
    **dict.fromkeys(["preset_for"], "._presets"),
    **dict.fromkeys(["choose_strategy", "train_seeds"], "._seed_batched"),
    **dict.fromkeys(["Progress", "Stepper", "steps_per_epoch", "train", "TrainConfig"], "._trainer"),
}
__getattr__, __dir__ = lazy_api(__name__, _HOMES)
__all__ = sorted(_HOMES)
