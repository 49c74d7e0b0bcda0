"""Training a variant: the default recipe (`TrainConfig`, `train`), presets by normalization (`preset_for`) and
seed-batched training (`train_seeds`)."""

from ._presets import preset_for
from ._seed_batched import choose_strategy, train_seeds
from ._trainer import Progress, Stepper, TrainConfig, train

__all__ = ["Progress", "Stepper", "TrainConfig", "choose_strategy", "preset_for", "train", "train_seeds"]
