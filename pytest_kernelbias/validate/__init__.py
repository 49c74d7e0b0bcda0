"""The audit's checks of data, models and perturbations before any training: spec -> validate -> plan."""

from __future__ import annotations

from .._lazy import lazy_api

# Each name this part offers and the module that defines it; loaded on first use (_lazy.py).
_HOMES = {
    **dict.fromkeys(["check_data", "check_device", "class_count"], "._data"),
    **dict.fromkeys(["check_factory", "check_model", "check_perturbations"], "._models"),
}
__getattr__, __dir__ = lazy_api(__name__, _HOMES)
__all__ = sorted(_HOMES)
