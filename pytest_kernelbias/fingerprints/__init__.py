"""Fingerprints: what identifies a model factory, a perturbation and a trainer in cache keys.

Keys are made of what things do, never of their names or source text: a model by what its factory
builds and computes on a probe batch, a perturbation by its parameters and its output on a probe batch,
a custom trainer (which cannot be run to be probed) by everything the program can reach from it.
"""

from ._digest import PROBE_SEED, array_digest
from ._model import PROBE_NOISE, PROBE_REAL, model_fingerprint, module_tree, probe_batch, state_digest
from ._perturbation import declared_parameters, perturbation_fingerprint, perturbation_probe
from ._reach import Reach
from ._trainer import trainer_fingerprint

__all__ = ["PROBE_NOISE", "PROBE_REAL", "PROBE_SEED", "Reach", "array_digest", "declared_parameters",
           "model_fingerprint", "module_tree", "perturbation_fingerprint", "perturbation_probe", "probe_batch",
           "state_digest", "trainer_fingerprint"]
