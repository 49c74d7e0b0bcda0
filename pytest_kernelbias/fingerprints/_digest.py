"""Exact digests of numbers and tensors, and the fixed conditions every behavioural probe runs under."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

PROBE_SEED = 2_026_12_07  # every probe's noise, dropout masks and backward weights come from this seed


def array_digest(value: torch.Tensor | np.ndarray) -> dict:
    """dtype, shape and SHA-256 of the exact bytes: equal only for bit-identical arrays of one dtype and shape."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16: hash its bits
            value = value.view(torch.int16)
        array = value.contiguous().numpy()
    else:
        array = np.asarray(value)
    if array.dtype == object:
        raise TypeError("an object array has no bytes to hash")
    return {"array": str(array.dtype), "shape": list(array.shape),
            "sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()}


def float_code(value: float) -> dict:
    """A float exactly: repr and :g round, the hex form is the value itself."""
    return {"float": float.hex(float(value))}


@contextmanager
def probe_conditions() -> Iterator[None]:
    """One intra-op thread, the caller's random streams untouched: a probe's bits then depend only on what is
    probed, the package and torch versions and this machine's kernels, never on the thread count or on what
    ran before (one thread is the audit's policy too; see execution/_threads.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(PROBE_SEED)
            yield
    finally:
        torch.set_num_threads(before)


def noise_images(shape: tuple[int, ...], count: int, offset: int = 0) -> torch.Tensor:
    """`count` seeded uniform images in [0, 1] of (C, H, W) `shape`: the same on every machine and run."""
    generator = torch.Generator().manual_seed(PROBE_SEED + offset)
    return torch.rand((count, *shape), generator=generator)


def probe_images(images: torch.Tensor, real: int, noise: int, offset: int = 0) -> torch.Tensor:
    """A probe batch: the first `real` of `images` (real data, on the CPU in float32) and `noise` seeded noise
    images of their shape (`offset` picks another noise stream)."""
    first = images[:real].detach().to("cpu", torch.float32, copy=True)
    return torch.cat([first, noise_images(tuple(images.shape[1:]), noise, offset)])
