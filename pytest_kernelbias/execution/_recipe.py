"""The recipe an audit trains with, settled before the first model: a preset, and an optional learning-rate probe.

`train_config="auto"` (the default) takes the preset the architecture's normalization layers pick
(`training.preset_for`): BatchNorm nets and nets without normalization keep the default recipe, nets
normalized per sample (LayerNorm, GroupNorm, as in ConvNeXt) a gentler one. `lr_probe=True` then runs a
short range test on the reference model (`training.lr_probe`) and trains with the lr it picks. The
chosen recipe is what the weights key holds, so a probe's pick is part of every variant's key; the probe
itself is stored in the cache folder under a key of everything that shapes it, so it runs once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .. import __version__
from ..training._lr_probe import GRID, lr_probe
from ..training._presets import preset_for
from ..training._trainer import TrainConfig
from ._records import read_memo, write_memo
from ._store import variant_key
from ._threads import numeric_environment


def choose_config(given: TrainConfig | str, probe_model) -> tuple[TrainConfig, str]:
    """The recipe and where it came from: the user's, or the preset for `probe_model`'s normalization."""
    if isinstance(given, TrainConfig):
        return given, "given"
    name, config = preset_for(probe_model)
    return config, f"preset {name}"


def probe_lr(config: TrainConfig, intervention, reference, train_data, device: str,
             store) -> tuple[TrainConfig, dict[str, Any]]:
    """`config` with the lr the probe picks on the reference model, and the probe's record for the report.

    The probe is read back from the cache folder (a sealed memo) when one with the same inputs ran before:
    the same model behaviour (its fingerprint), reference, data, recipe, device and numeric environment.
    """
    key = variant_key({"probe": "lr", "grid": list(GRID), "package": __version__,
                       "model": intervention.fingerprint(train_data.images), "layers": list(intervention.layers),
                       "reference": str(reference), "data": train_data.fingerprint(), "train": config.recipe(),
                       "device": device, "numeric": numeric_environment(device)})
    path = store.memo_path(f"lr-probe-{key[:32]}.json")
    kept = read_memo(path)
    if isinstance(kept, dict) and kept.get("key") == key and isinstance(kept.get("lr"), (int, float)):
        return dataclasses.replace(config, lr=kept["lr"]), {**kept, "from_cache": True}
    result = lr_probe(lambda: intervention.build(reference, 0), train_data, config, seed=0, device=device)
    # Non-finite losses (a diverged candidate) as null: JSON has no infinity.
    losses = [loss if math.isfinite(loss) else None for loss in result.losses]
    record = {"key": key, "lr": result.lr, "lrs": list(result.lrs), "losses": losses,
              "diverged": list(result.diverged), "steps": result.steps, "seconds": result.seconds,
              "asked_lr": config.lr}
    write_memo(path, record)
    return dataclasses.replace(config, lr=result.lr), {**record, "from_cache": False}
