"""A perturbation's fingerprint: its declared parameters and what it outputs on a fixed probe batch.

The output digest sees what no parameter list can: a setting kept in a private attribute, a module
global, a closure, an inherited `apply` from an edited base class, a class attribute changed at run time.
The declared parameters (public attributes, encoded exactly, nested perturbations and callables followed)
add what the probe batch may not exercise. The class name and code are not in it: two perturbations that
compute alike share their stored predictions.
"""

from __future__ import annotations

import hashlib

import torch

from ._digest import array_digest, probe_conditions, probe_images
from ._reach import Reach

PROBE_REAL, PROBE_NOISE = 4, 4  # test images and seeded noise images in the probe batch


def perturbation_probe(test_images: torch.Tensor) -> torch.Tensor:
    """The probe: the first test images and seeded noise images of their shape, on the CPU in float32."""
    return probe_images(test_images, PROBE_REAL, PROBE_NOISE, offset=1)


def declared_parameters(perturbation: object) -> tuple[dict, list[str]]:
    """The public attributes of `perturbation`, encoded exactly, and where an encoding is not stable."""
    reach = Reach()
    params = {k: reach.encode(v, f"{type(perturbation).__name__}.{k}")
              for k, v in sorted(vars(perturbation).items()) if not k.startswith("_")}
    return params, reach.unstable


def perturbation_fingerprint(perturbation, probe: torch.Tensor) -> dict:
    """{"declared": parameters, "output": digest of its output on `probe`} (see the module docstring).

    The perturbation restarts its random stream before and after, so the audit draws what it would have.
    """
    declared, _ = declared_parameters(perturbation)
    with probe_conditions():
        perturbation.reset()
        try:
            out = perturbation(probe.clone())
        finally:
            perturbation.reset()
    digest = hashlib.sha256(repr(array_digest(out)).encode()).hexdigest()
    return {"declared": declared, "output": digest}
