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
from ._files import write_atomic
from ._json import SCHEMA_VERSION, environment

FOLDER = Path(".kernel-audit") / "baselines"


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


def save_baseline(root: Path, name: str, audits: list[Mapping]) -> Path:
    """Store the effects of this run as baseline `name` (atomic write)."""
    check_name(name)
    audits = [a for a in audits if a.get("effects")]  # an errored audit has no effects to judge later runs by
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"schema_version": SCHEMA_VERSION, "name": name, "environment": environment(),
           "effects": {_key(a["test"], e): {k: e[k] for k in ("effect", "ci_low", "ci_high", "p_value", "n")}
                       for a in audits for e in a["effects"]},
           "data": {a["test"]: a["data"] for a in audits}}
    return write_atomic(folder / f"{name}.json", json.dumps(doc, indent=2, sort_keys=True), "kernel-audit baseline")


def load_baseline(root: Path, name: str | None) -> dict | None:
    """Baseline `name`, or the newest one when `name` is empty; None (with a warning) when unusable."""
    folder = root / FOLDER
    if name:
        path = folder / f"{check_name(name)}.json"
    else:
        saved = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
        if not saved:
            warnings.warn(BaselineWarning(f"no saved baseline in {folder}; run once with --kernel-audit-save NAME"))
            return None
        path = saved[-1]
    try:
        doc = json.loads(read_regular(path, follow_links=True))  # a FIFO or device is refused, never waited on
    except FileNotFoundError:
        known = sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []
        warnings.warn(BaselineWarning(f"baseline {path} does not exist; saved baselines: {known}"))
        return None
    except (OSError, ValueError) as exc:
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
            value = row.get(field, _MISSING)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"effect {key!r}: {field!r} is {_kind(value)}, not a number"
            # An interval may be infinite (too few seeds); a NaN anywhere, or an infinite estimate, compares
            # as "no growth" and would let every regression pass.
            if math.isnan(value) or (field == "effect" and math.isinf(value)):
                return f"effect {key!r}: {field!r} is {value}, not a finite number"
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
        half_now = (e["ci_high"] - e["ci_low"]) / 2
        half_old = (old["ci_high"] - old["ci_low"]) / 2
        growth = abs(e["effect"]) - abs(old["effect"])
        spread = math.sqrt(half_now ** 2 + half_old ** 2) if math.isfinite(half_now + half_old) else math.inf
        rows.append({"key": _key(audit["test"], e), "then": old["effect"], "now": e["effect"], "growth": growth,
                     "growth_lower": growth - spread})
    return rows


def unmatched(audit: Mapping, baseline: Mapping) -> list[str]:
    """Why effects of `audit` have no counterpart in `baseline` (one line each; empty when all matched)."""
    test = audit["test"]
    then = {k for k in baseline["effects"] if k.startswith(f"{test} | ")}
    now = {_key(test, e) for e in audit["effects"]}
    if not then:
        return [f"{test}: baseline {Path(baseline['path']).name} has no audit of this test (saved before the test "
                "existed, or under another test id); save a new baseline to compare it"]
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
