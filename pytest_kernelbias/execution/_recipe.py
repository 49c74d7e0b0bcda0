"""The recipe an audit trains with, settled before the first model: a preset, and an optional learning-rate probe.

`train_config="auto"` (the default) takes the preset the architecture's normalization layers pick
(`training.preset_for`): BatchNorm nets and nets without normalization keep the default recipe, nets
normalized per sample (LayerNorm, GroupNorm, as in ConvNeXt) a gentler one. `lr_probe=True` then runs a
short range test on every level's model, pooled (`training.lr_probe_levels`), and trains every level with
the lr it picks, whichever level is the reference. The chosen recipe is what the weights key holds, so a
probe's pick is part of every variant's key; the probe itself is stored in the cache folder under a key
of everything that shapes it, so it runs once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .._version import __version__
from ..intervention import level_label
from ..training import GRID, TrainConfig, lr_probe_levels, preset_for
from ._records import read_memo, write_memo
from ._store import variant_key
from ._threads import numeric_environment


def choose_config(given: TrainConfig | str, probe_model) -> tuple[TrainConfig, str]:
    """The recipe and where it came from: the user's, or the preset for `probe_model`'s normalization."""
    if isinstance(given, TrainConfig):
        return given, "given"
    name, config = preset_for(probe_model)
    return config, f"preset {name}"


def probe_lr(config: TrainConfig, intervention, train_data, device: str, store) -> tuple[TrainConfig, dict[str, Any]]:
    """`config` with the lr the probe picks on every level pooled (`lr_probe_levels`), and its record.

    Pooled, the pick is the same whichever level is the reference. The probe is read back from the cache
    folder (a sealed memo) when one with the same inputs ran before: the same model behaviour (its
    fingerprint), levels, data, recipe, device and numeric environment.
    """
    levels = {level_label(level): level for level in intervention.levels}
    key = variant_key({"probe": "lr pooled over levels", "grid": list(GRID), "package": __version__,
                       "model": intervention.fingerprint(train_data.images), "layers": list(intervention.layers),
                       "levels": sorted(levels), "data": train_data.fingerprint(), "train": config.recipe(),
                       "device": device, "numeric": numeric_environment(device)})
    path = store.memo_path(f"lr-probe-{key[:32]}.json")
    kept = read_memo(path)
    if isinstance(kept, dict) and kept.get("key") == key and isinstance(kept.get("lr"), (int, float)):
        return dataclasses.replace(config, lr=kept["lr"]), {**kept, "from_cache": True}
    factories = {name: (lambda level=level: intervention.build(level, 0)) for name, level in sorted(levels.items())}
    result = lr_probe_levels(factories, train_data, config, seed=0, device=device)

    def finite(values):  # a diverged candidate's loss as null: JSON has no infinity
        return [v if math.isfinite(v) else None for v in values]

    record = {"key": key, "lr": result.lr, "lrs": list(result.lrs), "losses": finite(result.losses),
              "diverged": list(result.diverged), "steps": result.steps, "seconds": result.seconds,
              "asked_lr": config.lr, "pooled_over": [name for name, _ in result.by_level],
              "losses_by_level": {name: finite(losses) for name, losses in result.by_level}}
    write_memo(path, record)
    return dataclasses.replace(config, lr=result.lr), {**record, "from_cache": False}
