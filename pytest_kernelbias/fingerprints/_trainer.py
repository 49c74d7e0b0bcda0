"""A custom trainer's fingerprint: everything the program can reach from it (it cannot be run to be probed).

Where part of that reach has no stable encoding, the trainer's entries would be keyed by something that
differs in every process: instead its key holds a token of this process (entries are reused within
it, never by a later run) and a `TrainerKeyWarning` names the part and the fix, `cache_key="v1"`, a
version the user bumps when the trainer changes. With `cache_key` set, it replaces those parts.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings

from ..errors import TrainerKeyWarning
from ._reach import Reach

_PROCESS = uuid.uuid4().hex  # keys what this process cannot fingerprint: reused within it, never after
_WARNED: set[str] = set()


def trainer_fingerprint(trainer: object, cache_key: str | None = None) -> dict:
    """{"reach": digest, ...}: the digest of what `trainer` reaches, plus `cache_key` when given; where the
    reach is unstable and no `cache_key` is given, a per-process token and a warning (once per trainer)."""
    reach = Reach()
    encoded = reach.encode(trainer, "trainer")
    digest = hashlib.sha256(json.dumps(encoded, sort_keys=True, default=str).encode()).hexdigest()
    out: dict = {"reach": digest}
    if cache_key is not None:
        out["cache_key"] = cache_key
    elif reach.unstable:
        out["process"] = _PROCESS
        _warn_once(trainer, digest, reach.unstable)
    return out


def _warn_once(trainer: object, digest: str, unstable: list[str]) -> None:
    if digest in _WARNED:
        return
    _WARNED.add(digest)
    name = getattr(trainer, "__qualname__", type(trainer).__qualname__)
    shown = "; ".join(unstable[:3]) + (f"; and {len(unstable) - 3} more" if len(unstable) > 3 else "")
    warnings.warn(TrainerKeyWarning(
        f"the trainer {name!r} reaches values with no stable fingerprint ({shown}), so the cache cannot tell "
        "whether a later run trains alike: its models are reused within this run only and trained again by the "
        "next. Name its version with cache_key='v1' (and change it whenever the trainer changes) to reuse them, "
        "or keep those values out of the trainer's reach"), stacklevel=4)
