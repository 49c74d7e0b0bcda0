"""Fingerprints: what identifies a model factory, a perturbation and a trainer in cache keys.

Keys are made of what things do, never of their names or source text: a model by what its factory
builds and computes on a probe batch, a perturbation by its parameters and its output on a probe batch,
a custom trainer (which cannot be run to be probed) by everything the program can reach from it.
"""

from __future__ import annotations

from .._lazy import lazy_api

# Each name this part offers and the module that defines it; loaded on first use (_lazy.py).
_HOMES = {
    **dict.fromkeys(["array_digest", "PROBE_SEED", "probe_conditions"], "._digest"),
    **dict.fromkeys(["model_fingerprint", "module_tree", "probe_batch", "PROBE_NOISE", "PROBE_REAL",
                     "state_digest"], "._model"),
    **dict.fromkeys(["declared_parameters", "perturbation_fingerprint", "perturbation_probe"], "._perturbation"),
    **dict.fromkeys(["Reach"], "._reach"),
    **dict.fromkeys(["trainer_fingerprint"], "._trainer"),
}
__getattr__, __dir__ = lazy_api(__name__, _HOMES)
__all__ = sorted(_HOMES)
