"""Content-addressed store of trained variants: safetensors weights plus JSON metadata.

An entry's key hashes everything that changes the weights (the plan makes it:
the model's behavioural fingerprint, the layers and level, the seed, pairing,
the recipe, the training data and trainer fingerprints, the package and torch
versions), and the entry records those fingerprints, which a read must match.
Entries are written to a temporary folder and renamed into place under a
per-key file lock, so readers never see half an entry and two processes
needing one variant train it once. The weights' SHA-256 is stored in the
metadata and checked on every load, every file is read only if it is a
regular file: a damaged entry is removed and retrained with a warning.
Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
import weakref
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from filelock import FileLock
from safetensors import SafetensorError
from safetensors.torch import load, save_file
from torch import nn

from .._version import __version__
from ..errors import CacheWarning, CacheWriteError
from ._records import (
    ensure_folder,
    honour_umask,
    make_temp_folder,
    plain,
    read_regular,
    remove,
    seal,
    sha256_bytes,
    sha256_file,
    unseal,
)

WEIGHTS, META = "weights.safetensors", "meta.json"


TRAINED_ON = "trained_on"  # entry metadata a Ray task adds: its node, host and measured numeric environment


def _check_shapes(state: Mapping[str, torch.Tensor], model: nn.Module) -> None:
    """Stored weights must have the model's names, shapes and dtypes, or they are another model's."""
    want = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    got = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
    if got != want:
        differ = sorted(set(want) ^ set(got)) or sorted(k for k in want if want[k] != got[k])
        raise ValueError(f"its weights have other names or shapes than this audit's model (first: {differ[0]!r})")


def variant_key(spec: Mapping[str, object]) -> str:
    """SHA-256 of the canonical JSON of `spec` plus the package and torch versions."""
    full = {**spec, "package": __version__, "torch": torch.__version__.split("+")[0]}
    return hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()


def _writable(root: Path) -> bool:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{uuid.uuid4().hex}"
        probe.write_text("ok")
        probe.unlink()
        return True
    except OSError:
        return False


class VariantCache:
    """Trained variants under `root`, one folder per key: ``root/ab/abcdef.../``.

    A read-only `root` is still read; new entries then go to a temporary
    folder that is removed when the cache object goes (at the latest at exit).
    """

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        self.read_only: Path | None = None
        if not _writable(root):
            fallback = make_temp_folder("kernel-audit-cache-")
            weakref.finalize(self, shutil.rmtree, str(fallback), True)
            self.read_only = root if root.is_dir() else None
            reading = "its entries are read, and " if self.read_only else ""
            warnings.warn(CacheWarning(f"cache folder {root} is not writable; {reading}new entries go to "
                                       f"{fallback}, removed at exit"), stacklevel=2)
            root = fallback
        self.root = root
        self.hits = 0
        self.trained = 0
        self.temporary = False

    @classmethod
    def temporary_cache(cls) -> "VariantCache":
        """A cache in a new temporary folder, removed when the object goes (at the latest at exit)."""
        cache = cls(make_temp_folder("kernel-audit-run-"))
        weakref.finalize(cache, shutil.rmtree, str(cache.root), True)
        cache.temporary = True
        return cache

    def _own(self, key: str) -> Path:
        return self.root / key[:2] / key

    def _entry(self, key: str) -> Path:
        """Where `key`'s entry is: under `root`, else in the read-only folder when only it has one."""
        own = self._own(key)
        if self.read_only is not None and not (own.exists() or own.is_symlink()):
            theirs = self.read_only / key[:2] / key
            if theirs.exists():
                return theirs
        return own

    def has(self, key: str) -> bool:
        """Whether an entry exists for `key` (intact or not: `load` checks that)."""
        return self._entry(key).exists()

    def holds(self, key: str) -> bool:
        """Whether the key's weights are stored here (for an audit's counts; on disk, reads keep them)."""
        return self.has(key)

    def memo_path(self, name: str) -> Path:
        """Where a measured decision (e.g. seed batching's) is kept for later audits."""
        return self.root / "decisions" / name

    def _lock(self, key: str) -> FileLock:
        locks = self.root / "locks"
        if ensure_folder(locks):
            warnings.warn(CacheWarning(f"{locks} was not a folder; replaced it with one"), stacklevel=3)
        return FileLock(str(locks / f"{key}.lock"))

    def _meta(self, key: str, entry: Path) -> tuple[dict, bytes]:
        """The entry's sealed metadata and its weights' bytes, after checking it belongs to `key` and the
        weights match it. Both are read once, as regular files, so what was checked is what loads."""
        if entry.is_symlink() or entry.parent.is_symlink():
            raise ValueError("the entry folder or its shard folder is a symbolic link, not a folder the cache wrote")
        meta = unseal(entry / META)
        if meta.get("key") != key or meta.get("package") != __version__:
            raise ValueError("metadata does not match this key or package version")
        weights = read_regular(entry / WEIGHTS)
        if sha256_bytes(weights) != meta.get("sha256"):
            raise ValueError("weights checksum mismatch")
        return meta, weights

    @staticmethod
    def _check_recorded(meta: Mapping[str, object], expect: Mapping[str, object] | None) -> None:
        """The entry must record what the audit expects (its model, trainer, data and recipe fingerprints):
        a key that matched by accident or by hand never lends another model's numbers."""
        if expect is None:
            return
        recorded = meta.get("spec")
        if not isinstance(recorded, dict):
            raise ValueError("the entry records no fingerprints")
        differ = sorted(k for k, v in plain(dict(expect)).items() if recorded.get(k) != v)
        if differ:
            raise ValueError(f"it records another {', '.join(differ)} than this audit's (its key matched by accident "
                             "or by hand)")

    def _discard(self, path: Path, why: str) -> None:
        gone = remove(path)
        warnings.warn(CacheWarning(f"{why}" + ("" if gone else f" ({path} cannot be removed; left as it is)")),
                      stacklevel=3)

    def load(self, key: str, model: nn.Module, expect: Mapping[str, object] | None = None) -> dict | None:
        """Load the entry into `model` and return its metadata, or None when absent, damaged or recorded for
        other fingerprints than `expect` (each a `CacheWarning`, then a retrain)."""
        entry = self._entry(key)
        if not (entry.exists() or entry.is_symlink()):
            return None
        try:
            meta, weights = self._meta(key, entry)
            self._check_recorded(meta, expect)
            state = load(weights)
            _check_shapes(state, model)
            model.load_state_dict(state, strict=True)
        except Exception as exc:  # any damage means: retrain, never use doubtful weights
            self._discard(entry, f"cache entry {entry} is unusable ({type(exc).__name__}: {exc}); retraining it")
            return None
        return meta

    def load_state(self, key: str) -> dict[str, torch.Tensor]:
        """The stored weights of an intact entry (checksum verified), without a model to load them into."""
        try:
            return load(self._meta(key, self._entry(key))[1])
        except (OSError, ValueError, TypeError, SafetensorError):
            raise KeyError(f"no intact cache entry for {key[:12]} in {self.root}") from None

    def store(self, key: str, model: nn.Module, meta: Mapping[str, object]) -> Path:
        """Write the entry atomically: a temporary folder, then one rename."""
        return self.store_state(key, model.state_dict(), meta)

    def store_state(self, key: str, state: Mapping[str, torch.Tensor], meta: Mapping[str, object]) -> Path:
        """`store` for weights that arrive without a model (e.g. from a Ray task on another machine)."""
        entry = self._own(key)
        ensure_folder(entry.parent)
        tmp = entry.parent / f".tmp-{key[:12]}-{uuid.uuid4().hex}"
        try:
            tmp.mkdir()
            # clone(): safetensors refuses tensors that share storage (tied weights, views).
            state = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
            save_file(state, str(tmp / WEIGHTS))
            honour_umask(tmp / WEIGHTS)  # safetensors writes 0600
            full = {**meta, "key": key, "package": __version__, "sha256": sha256_file(tmp / WEIGHTS)}
            (tmp / META).write_text(seal(full))
            remove(entry)  # a damaged entry, or a link put in its place
            os.replace(tmp, entry)
        except (OSError, SafetensorError) as exc:
            raise self._write_error(key, meta, exc) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # a failed write (e.g. disk full) leaves nothing behind
        return entry

    def _write_error(self, key: str, meta: Mapping[str, object], exc: Exception) -> CacheWriteError:
        what = meta.get("label", key[:12])
        free = shutil.disk_usage(self.root).free if self.root.exists() else 0
        return CacheWriteError(f"the cache {self.root} could not store the trained variant {what} "
                               f"({type(exc).__name__}: {exc}; {free / 2**20:.0f} MiB free there). Free space or "
                               "point the cache at a disk with room (--kernel-audit-cache PATH, or cache=); every "
                               "entry written before this one is kept, so the rerun trains only what is missing")

    def put(self, key: str, state: Mapping[str, torch.Tensor], meta: Mapping[str, object],
            replace: bool = False) -> bool:
        """Store weights trained elsewhere, under the key's lock; whether they were written.

        An intact entry that another process wrote meanwhile is kept unless
        `replace` (a retrain): the first writer wins, so every process that
        trained the same variant at once goes on to evaluate the same weights.
        """
        with self._lock(key):
            if not replace and self.weights_intact(key, meta.get("spec")):  # type: ignore[arg-type]
                return False
            self.store_state(key, state, meta)
        self.trained += 1
        return True

    def trained_on(self, key: str) -> dict | None:
        """Where the entry's weights were trained (node, host, numeric environment), when a Ray task recorded it."""
        try:
            return self._meta(key, self._entry(key))[0].get(TRAINED_ON)
        except (OSError, ValueError):
            return None

    def weights_intact(self, key: str, expect: Mapping[str, object] | None = None) -> bool:
        try:
            meta, _ = self._meta(key, self._entry(key))
            self._check_recorded(meta, expect)
            return True
        except (OSError, ValueError, TypeError):
            return False

    def has_evaluation(self, key: str, eval_key: str) -> bool:
        """Whether an evaluation of `key` under `eval_key` is stored (it is checked when read)."""
        return (self._entry(key) / f"eval-{eval_key}.json").exists()

    def load_evaluation(self, key: str, eval_key: str, expect: Mapping[str, Mapping] | None = None) -> dict | None:
        """A variant's stored test-set evaluation (predictions per condition plus JSON extras), or None.

        The whole record is sealed, and the predictions' checksum is part of it, so no stored byte reaches a
        number without being checked. With `expect` ({"weights": ..., "evaluation": ...}, the plan's
        fingerprints), the weights' entry and the evaluation must each record the same, or it is measured again.
        """
        expect = expect or {}
        entry = self._entry(key)
        meta_path, arrays_path = entry / f"eval-{eval_key}.json", entry / f"eval-{eval_key}.safetensors"
        if not (meta_path.exists() or meta_path.is_symlink()) or not self.weights_intact(key, expect.get("weights")):
            return None  # damaged or foreign weights are reported and retrained by get_or_train
        try:
            record = unseal(meta_path)
            conditions, extra = record.get("conditions"), record.get("extra")
            if not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions):
                raise ValueError("conditions are not a list of names")
            if not isinstance(extra, dict) or "preds" in extra:
                raise ValueError("extras are not an object of measurements")
            self._check_recorded(record, expect.get("evaluation"))
            arrays = read_regular(arrays_path)
            if sha256_bytes(arrays) != record.get("sha256"):
                raise ValueError("predictions checksum mismatch")
            preds = {k: v.numpy() for k, v in load(arrays).items()}
            if sorted(preds) != sorted(conditions):
                raise ValueError("conditions do not match")
        except Exception as exc:  # recompute rather than trust a damaged evaluation
            for path in (meta_path, arrays_path):
                remove(path)
            self._discard(meta_path, f"cached evaluation {meta_path} is unusable ({type(exc).__name__}: {exc}); "
                                     "evaluating again")
            return None
        return {**extra, "preds": {c: preds[c] for c in conditions}}

    def store_evaluation(self, key: str, eval_key: str, preds: Mapping[str, np.ndarray],
                         extra: Mapping[str, object], spec: Mapping[str, object] | None = None) -> None:
        """Store predictions (safetensors) and the sealed record (JSON, written last, with their checksum and
        `spec`, the evaluation's fingerprints, which a later read must match)."""
        entry = self._own(key)
        if not entry.is_dir() or entry.is_symlink():
            return  # no entry of ours (e.g. it lives in a read-only cache): evaluate again next time
        arrays_path, meta_path = entry / f"eval-{eval_key}.safetensors", entry / f"eval-{eval_key}.json"
        tag = uuid.uuid4().hex
        tmp_arrays, tmp_meta = entry / f".{tag}.safetensors", entry / f".{tag}.json"
        try:
            record = {"extra": dict(extra), "spec": dict(spec or {})}
            self._write_evaluation(preds, record, tmp_arrays, arrays_path, tmp_meta, meta_path)
        except (OSError, SafetensorError) as exc:  # a memo only: the predictions in hand are still used
            warnings.warn(CacheWarning(f"the cache {self.root} could not store an evaluation ({type(exc).__name__}: "
                                       f"{exc}); this audit goes on with the predictions it has, and the next run "
                                       "evaluates that model again. Free space in the cache's disk"), stacklevel=3)
        finally:
            tmp_arrays.unlink(missing_ok=True)
            tmp_meta.unlink(missing_ok=True)

    @staticmethod
    def _write_evaluation(preds, record, tmp_arrays: Path, arrays_path: Path, tmp_meta: Path, meta_path: Path) -> None:
        save_file({c: torch.as_tensor(v).contiguous() for c, v in preds.items()}, str(tmp_arrays))
        honour_umask(tmp_arrays)  # safetensors writes 0600
        remove(arrays_path)
        os.replace(tmp_arrays, arrays_path)
        tmp_meta.write_text(seal({"conditions": list(preds), "sha256": sha256_file(arrays_path), **record}))
        remove(meta_path)
        os.replace(tmp_meta, meta_path)

    def get_or_train(self, key: str, build: Callable[[], nn.Module], train: Callable[[nn.Module], nn.Module],
                     meta: Mapping[str, object], retrain: bool = False) -> tuple[nn.Module, bool]:
        """The trained variant and whether it came from the cache. One process trains; others wait and load."""
        with self._lock(key):
            model = build()
            if not retrain and self.load(key, model, meta.get("spec")) is not None:  # type: ignore[arg-type]
                self.hits += 1
                return model.eval(), True
            trained = train(model)
            self.store(key, trained, meta)
            self.trained += 1
            return trained, False


class MemoryStore:
    """The store of an audit run without a cache: weights trained ahead wait here until evaluation reads them.

    Each variant is read once per audit, so a read releases its weights and a
    variant trained during evaluation is never kept: memory holds at most the
    variants trained ahead. Evaluations are not kept either.
    """

    root = None

    def __init__(self) -> None:
        self._states: dict[str, dict[str, torch.Tensor]] = {}
        self._done: set[str] = set()  # keys trained or stored by this audit (a read releases the weights)
        self._trained_on: dict[str, dict] = {}

    def trained_on(self, key: str) -> dict | None:
        return self._trained_on.get(key)

    def has(self, key: str) -> bool:
        return key in self._states

    def holds(self, key: str) -> bool:
        """Whether this audit has stored or trained the key's weights here, read or not (for its counts)."""
        return key in self._states or key in self._done

    def memo_path(self, name: str) -> None:
        return None  # nothing outlives the audit: decisions are measured again next time

    def put(self, key: str, state: Mapping[str, torch.Tensor], meta: Mapping[str, object],
            replace: bool = False) -> bool:
        self._states[key] = {k: v.detach().cpu().clone() for k, v in state.items()}
        self._done.add(key)
        if TRAINED_ON in meta:
            self._trained_on[key] = meta[TRAINED_ON]  # type: ignore[assignment]
        return True

    def get_or_train(self, key: str, build: Callable[[], nn.Module], train: Callable[[nn.Module], nn.Module],
                     meta: Mapping[str, object], retrain: bool = False) -> tuple[nn.Module, bool]:
        model = build()
        state = None if retrain else self._states.pop(key, None)
        if state is None:
            trained = train(model)
            self._done.add(key)
            return trained, False
        model.load_state_dict(state, strict=True)
        return model.eval(), True

    def load_evaluation(self, key: str, eval_key: str, expect: Mapping[str, Mapping] | None = None) -> dict | None:
        return None

    def store_evaluation(self, key: str, eval_key: str, preds: Mapping[str, np.ndarray],
                         extra: Mapping[str, object], spec: Mapping[str, object] | None = None) -> None:
        return None
