"""Measuring trained variants on the test set: per-subgroup loaders, predictions per condition, metrics, spectra,
heat maps."""

from ._loaders import SubgroupLoaders

__all__ = ["SubgroupLoaders"]
