"""Saved audit runs and comparison against them: catch an effect that grew since last time.

Baselines live in ``<rootdir>/.kernel-audit/baselines/NAME.json`` (JSON, schema
version 1): per audit and effect, the estimate and its interval, plus the
environment of the run that saved them.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Mapping

from .._stored import read_regular
from ..errors import AuditConfigError, BaselineWarning
from ._files import strict_json, write_atomic
from ._json import SCHEMA_VERSION, environment

FOLDER = Path(".kernel-audit") / "baselines"
MAX_BYTES = 64 * 2 ** 20  # a baseline of every audit of a large suite is well under 1 MiB
MAX_EFFECT = 4.0  # |tau| of any estimand of metrics in [0, 1] (a contrast of drops differs by at most 4)
MAX_BOUND = 1e3  # a finite interval end beyond this is not an interval the package wrote


def _key(test: str, effect: Mapping) -> str:
    return f"{test} | {effect['contrast']} | {effect['perturbation']}"


def check_name(name: object, option: str = "baseline name") -> str:
    """A baseline name is a plain file name inside FOLDER; anything that could point elsewhere is refused."""
    text = name if isinstance(name, str) else ""
    seps = {"/", "\\", os.sep, os.altsep or "/"}
    problem = ("it is empty" if not text.strip() else
               "it contains a path separator" if any(sep in text for sep in seps) else
               "it contains '..'" if ".." in text else
               "it starts with '.'" if text.startswith(".") else
               "it contains a control character" if any(ord(c) < 32 for c in text) else "")
    if problem:
        raise AuditConfigError(
            f"{option} {name!r} is not a baseline name: {problem}. A baseline name is a plain name such as main "
            f"or before-refactor, saved as {FOLDER.as_posix()}/NAME.json under the rootdir; to keep a copy "
            "elsewhere, copy that file after the run.")
    return text


def save_baseline(root: Path, name: str, audits: list[Mapping], merge: bool = False) -> Path:
    """Store the effects of this run as baseline `name` (atomic write); `write_baseline` also says what it wrote."""
    return write_baseline(root, name, audits, merge)[0]


def write_baseline(root: Path, name: str, audits: list[Mapping], merge: bool = False) -> tuple[Path, str]:
    """Store the effects of this run as baseline `name` (atomic write): the path and what was written.

    With `merge`, the audits of tests this run did not run are kept from the saved `name` (when it is usable),
    so a pull request's new audits join a baseline without rerunning every audit.
    """
    check_name(name)
    audits = [a for a in audits if a.get("effects")]  # an errored audit has no effects to judge later runs by
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    effects = {_key(a["test"], e): {k: e[k] for k in ("effect", "ci_low", "ci_high", "p_value", "n")}
               for a in audits for e in a["effects"]}
    data = {a["test"]: a["data"] for a in audits}
    kept = _kept(root, name, {a["test"] for a in audits}) if merge else ({}, {})
    doc = {"schema_version": SCHEMA_VERSION, "name": name, "environment": environment(),
           "effects": {**kept[0], **effects}, "data": {**kept[1], **data}}
    # Strict JSON: an unbounded interval end (too few seeds) is written as null and read back as infinite.
    path = write_atomic(folder / f"{name}.json", strict_json(doc), "kernel-audit baseline")
    more = f", {len(kept[1])} more kept from the earlier save" if merge else ""
    return path, f"baseline {name!r} saved to {path}: {len(data)} audit tests, {len(effects)} effects{more}"


def _kept(root: Path, name: str, ran: set[str]) -> tuple[dict, dict]:
    """The effects and data of the saved `name` for tests not in `ran` (none when there is no usable one)."""
    if not (root / FOLDER / f"{name}.json").exists():
        return {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)  # an unusable earlier save is replaced, not merged
        old = load_baseline(root, name)
    if old is None:
        return {}, {}
    effects = {k: v for k, v in old["effects"].items() if k.split(" | ", 1)[0] not in ran}
    return effects, {t: d for t, d in old.get("data", {}).items() if t not in ran}


def baseline_tests(baseline: Mapping) -> list[str]:
    """The test ids a baseline holds audits of."""
    return sorted({key.split(" | ", 1)[0] for key in baseline["effects"]})


def in_baseline(audit: Mapping, baseline: Mapping) -> bool:
    """Whether the baseline holds any effect of this audit's test (else the audit is new to it)."""
    return any(key.startswith(f"{audit['test']} | ") for key in baseline["effects"])


def load_baseline(root: Path, name: str | None) -> dict | None:
    """Baseline `name`, or the newest one when `name` is empty; None (with a warning) when unusable."""
    folder = root / FOLDER
    if name:
        path = folder / f"{check_name(name)}.json"
    else:
        saved = sorted(_saved(folder), key=lambda p: p.lstat().st_mtime)
        if not saved:
            warnings.warn(BaselineWarning(f"no saved baseline in {folder}; run once with --kernel-audit-save NAME"))
            return None
        path = saved[-1]
    try:
        doc = _parse(path)
    except FileNotFoundError:
        known = sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []
        warnings.warn(BaselineWarning(f"baseline {path} does not exist; saved baselines: {known}"))
        return None
    except (OSError, ValueError, RecursionError) as exc:
        warnings.warn(BaselineWarning(f"baseline {path} is not valid JSON ({exc}); comparison skipped, "
                                      "this run's results are still reported. Save a new one with --kernel-audit-save"))
        return None
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if isinstance(doc, dict) and (type(version) is not int or version != SCHEMA_VERSION):
        warnings.warn(BaselineWarning(f"baseline {path} has schema version {version!r}, this "
                                      f"package writes {SCHEMA_VERSION}; comparison skipped. Save a new baseline."))
        return None
    problem = shape_problem(doc)
    if problem:
        # Hand-edited or written by something else: compare() would fail inside the audit test instead.
        warnings.warn(BaselineWarning(f"baseline {path} is malformed ({problem}); comparison skipped, this run's "
                                      "results are still reported. Save a new one with --kernel-audit-save"))
        return None
    now = environment()
    package = doc.get("environment", {}).get("package")
    if package != now["package"]:
        warnings.warn(BaselineWarning(f"baseline {path.name} was saved by pytest-kernelbias {package}, this is "
                                      f"{now['package']}: differences may come from the package, not the model"))
    doc["path"] = str(path)
    return doc


def _saved(folder: Path) -> list[Path]:
    """The baselines in `folder` that are regular files (a dangling link, a FIFO or a folder is skipped)."""
    if not folder.is_dir():
        return []
    return [p for p in folder.glob("*.json") if p.is_file() and not p.is_symlink()]


def _parse(path: Path) -> object:
    """The parsed baseline, read as untrusted input: a regular file (a FIFO or device is refused, never waited
    on), at most MAX_BYTES, nested no deeper than JSON's parser can go (a RecursionError is a bad file)."""
    return json.loads(read_regular(path, follow_links=True, max_bytes=MAX_BYTES))


def _kind(value: object) -> str:
    """A value's JSON type, for messages about a malformed baseline."""
    if value is _MISSING:
        return "missing"
    for kind, types in (("null", type(None)), ("a boolean", bool), ("a number", (int, float)), ("a string", str),
                        ("an array", list), ("an object", dict)):
        if isinstance(value, types):
            return kind
    return type(value).__name__


_MISSING = object()


def _number_problem(field: str, value: object) -> str:
    """Why one number of an effect row cannot be trusted ("" when it can). An interval end may be null or
    infinite (too few seeds); a NaN, an infinite or out-of-range estimate, or a huge finite bound would
    compare as "no growth" (or overflow) and let every regression pass."""
    if value is None and field != "effect":
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{field!r} is {_kind(value)}, not a number"
    if math.isnan(value) or (field == "effect" and not abs(value) <= MAX_EFFECT):
        return f"{field!r} is {value}, not a finite effect within +-{MAX_EFFECT:g}"
    if math.isfinite(value) and abs(value) > MAX_BOUND:
        return f"{field!r} is {value}, beyond any interval the package writes (+-{MAX_BOUND:g})"
    return ""


def shape_problem(doc: object) -> str:
    """What is wrong with the types of a parsed baseline ("" when every field compare() reads has its type)."""
    if not isinstance(doc, dict):
        return f"the document is {_kind(doc)}, not an object"
    effects = doc.get("effects", _MISSING)
    if not isinstance(effects, dict):
        return f'"effects" is {_kind(effects)}, not an object of effect rows'
    for key, row in effects.items():
        if not isinstance(row, dict):
            return f"effect {key!r} is {_kind(row)}, not an object"
        for field in ("effect", "ci_low", "ci_high"):
            problem = _number_problem(field, row.get(field, _MISSING))
            if problem:
                return f"effect {key!r}: {problem}"
    for field in ("data", "environment"):
        if not isinstance(doc.get(field, {}), dict):
            return f"{field!r} is {_kind(doc[field])}, not an object"
    return ""


def compare(audit: Mapping, baseline: Mapping) -> list[dict]:
    """Per effect of `audit`: the change in |effect| since the baseline and a conservative lower bound.

    The bound subtracts the two intervals' half-widths combined in quadrature,
    so an effect only counts as grown when both runs' uncertainty allows it.
    """
    rows = []
    for e in audit["effects"]:
        old = baseline["effects"].get(_key(audit["test"], e))
        if old is None:
            continue
        if baseline.get("data", {}).get(audit["test"]) not in (None, audit["data"]):
            warnings.warn(BaselineWarning(f"{audit['test']}: baseline data {baseline['data'][audit['test']]!r} "
                                          f"differs from {audit['data']!r}"))
        half_now = (_bound(e["ci_high"], 1) - _bound(e["ci_low"], -1)) / 2
        half_old = (_bound(old["ci_high"], 1) - _bound(old["ci_low"], -1)) / 2
        growth = abs(e["effect"]) - abs(old["effect"])
        spread = math.sqrt(half_now ** 2 + half_old ** 2) if math.isfinite(half_now + half_old) else math.inf
        rows.append({"key": _key(audit["test"], e), "then": old["effect"], "now": e["effect"], "growth": growth,
                     "growth_lower": growth - spread})
    return rows


def _bound(value: float | None, side: int) -> float:
    """An interval end; null (strict JSON's unbounded end) is infinite on its side."""
    return side * math.inf if value is None else float(value)


def unmatched(audit: Mapping, baseline: Mapping) -> list[str]:
    """Why effects of `audit` have no counterpart in `baseline` (one line each; empty when all matched)."""
    test = audit["test"]
    then = {k for k in baseline["effects"] if k.startswith(f"{test} | ")}
    now = {_key(test, e) for e in audit["effects"]}
    if not then:
        return [f"{test}: new, not in baseline {Path(baseline['path']).name} (saved before the test existed, or "
                f"under another test id): judged by its own verdict only; --kernel-audit-save "
                f"{Path(baseline['path']).stem} --kernel-audit-save-merge adds it"]
    missing = sorted(k.removeprefix(f"{test} | ") for k in now - then)
    if not missing:
        return []
    other = sorted(k.removeprefix(f"{test} | ") for k in then - now) or "none other"
    return [f"{test}: {len(missing)} of {len(now)} effects have no match in baseline {Path(baseline['path']).name} "
            f"(the levels or perturbations changed): now {missing}, the baseline has {other}"]


def regression_message(rows: list[dict], delta: float | None, path: str) -> str:
    """The failure text for effects that grew by more than `delta` beyond both intervals ("" when none did)."""
    grown = [r for r in rows if delta is not None and r["growth_lower"] > delta]
    if not grown:
        return ""
    return f"kernel audit regression against baseline {path}:\n" + "\n".join(
        f"  {r['key']}: |effect| {abs(r['then']):.4f} -> {abs(r['now']):.4f} (+{r['growth']:.4f}; "
        f"beyond both intervals by at least {r['growth_lower']:.4f} > {delta:g})" for r in grown)
