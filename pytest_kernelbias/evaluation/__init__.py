"""Measuring trained variants on the test set: per-subgroup loaders, predictions per condition, metrics, spectra,
heat maps."""

from __future__ import annotations

from .._lazy import lazy_api

# Each name this part offers and the module that defines it; loaded on first use (_lazy.py).
_HOMES = {
    **dict.fromkeys(["evaluate_plan", "Evaluation", "EvaluationJob", "Evaluations", "example_images"], "._evaluate"),
    **dict.fromkeys(["as_perturbations", "SubgroupLoaders"], "._loaders"),
    **dict.fromkeys(["SPECTRAL_IMAGES", "spectral_layers", "SPECTRAL_METHOD"], "._mechanism"),
    **dict.fromkeys(["check_defined", "group_metric", "METRICS"], "._metrics"),
    **dict.fromkeys(["eval_batch"], "._predict"),
}
__getattr__, __dir__ = lazy_api(__name__, _HOMES)
__all__ = sorted(_HOMES)
