"""The audit's checks of data, models and perturbations before any training: spec -> validate -> plan."""

from ._data import check_data, check_device, class_count
from ._models import check_factory, check_model, check_perturbations

__all__ = ["check_data", "check_device", "class_count", "check_factory", "check_model", "check_perturbations"]
