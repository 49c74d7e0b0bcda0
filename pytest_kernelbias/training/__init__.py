"""Training a variant: the default recipe (`TrainConfig`, `train`) and seed-batched training (`train_seeds`)."""

from ._seed_batched import choose_strategy, train_seeds
from ._trainer import Progress, Stepper, TrainConfig, train

__all__ = ["Progress", "Stepper", "TrainConfig", "choose_strategy", "train", "train_seeds"]
