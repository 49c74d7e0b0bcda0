"""Records of audit tests that gave no verdict: an audit that raised, or a marked test whose audit never ran.

Every report shows them beside the audits that finished, so a reader can tell "passed" from "never
decided", and the session's counts include what an errored audit trained before it stopped.
"""

from __future__ import annotations

import re
from typing import Mapping

from ..analysis import VERDICT_RANK, level_text

# What an error record keeps of the settings in force: the ones a reader needs to judge the audit.
SHOWN_SETTINGS = ("seeds", "max_seeds", "threshold", "rule", "strict", "device", "executor", "workers", "confidence",
                  "metric", "bias")
NO_VERDICT = ("error", "not run")  # the verdict field of a record without effects
MESSAGE_CHARS = 2000  # an error message long enough to act on, short enough for every report


def _plain(value: object) -> object:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def error_record(test: str, name: str, options: Mapping, exc: BaseException, counts: Mapping | None) -> dict:
    """The record of an audit that raised: its error class and message, the settings asked, what it trained."""
    counts = dict(counts or {"models": 0, "trained": 0, "from_cache": 0, "cache": None})
    settings = {k: _plain(options[k]) for k in SHOWN_SETTINGS if k in options}
    message = str(exc)
    return {"test": test, "name": name, "verdict": "error", "effects": [],
            "threshold": settings.get("threshold"), "rule": settings.get("rule"),
            "error": {"class": type(exc).__name__, "message": message[:MESSAGE_CHARS]
                      + ("…" if len(message) > MESSAGE_CHARS else "")},
            "settings": {**settings, **counts}}


def not_run_record(test: str, outcome: str, reason: str) -> dict:
    """The record of a marked test whose audit gave no result (skipped, or failed before calling it)."""
    return {"test": test, "name": test.rpartition("::")[2], "verdict": "not run", "effects": [],
            "threshold": None, "rule": None, "error": None, "reason": reason, "settings": {},
            "test_outcome": outcome}


def ran(record: Mapping) -> bool:
    """Whether the audit ran (to a verdict or to an error): a record a report must show."""
    return record.get("verdict") != "not run"


def session_counts(records: list[Mapping]) -> dict:
    """Models trained, loaded from the cache and measured over the session, errored audits included."""
    totals = {"trained": 0, "from_cache": 0, "evaluated": 0, "errored": 0}
    for r in records:
        s = r.get("settings") or {}
        for key in ("trained", "from_cache", "evaluated"):
            totals[key] += int(s.get(key) or 0)
        totals["errored"] += r.get("verdict") == "error"
    return totals


def outcome_text(record: Mapping) -> str:
    """One line for a record without effects: what happened, and what was trained before it."""
    if record.get("verdict") == "error":
        err, s = record["error"], record.get("settings") or {}
        asked = ", ".join(f"{k} {s[k]:g}" if isinstance(s[k], float) else f"{k} {s[k]}"
                          for k in ("seeds", "threshold", "rule") if s.get(k) is not None)
        return (f"error, no verdict: {err['class']}: {err['message']} ({s.get('trained', 0)} models trained and "
                f"{s.get('from_cache', 0)} in the cache before it stopped{'; ' + asked if asked else ''})")
    return f"{record.get('test_outcome', 'unknown')}, audit not run: {record.get('reason') or 'no reason given'}"


def interval_words(audit: Mapping) -> str:
    """The level the verdict's intervals were read at, and why it is not the nominal one, e.g.
    "98.19% CI (3 effects, sequential looks, test-set noise)"."""
    settings = audit.get("settings") or {}
    level = settings.get("effect_confidence")
    if not isinstance(level, float):
        level = settings.get("confidence")
        return f"{level_text(level)} CI" if isinstance(level, float) else ""
    family = settings.get("family", 1)
    parts = [f"{family} effects" if family > 1 else "", "sequential looks" if audit.get("sequential") else "",
             "test-set noise" if settings.get("test_noise") else ""]
    within = ", ".join(p for p in parts if p)
    return f"{level_text(level)} CI" + (f" ({within})" if within else "")


def worst_first(effects: list[Mapping]) -> list[Mapping]:
    """Effect rows by verdict (fail before undecided, warn, pass), then by |effect|: the reports' reading order."""
    return sorted(effects, key=lambda e: (-VERDICT_RANK.get(e["verdict"], 0), -abs(e["effect"])))


def p_text(e: Mapping) -> str:
    """p, marked with a degree sign where its floor at this seed count lies above alpha: it could not be small."""
    floor, alpha = e.get("p_floor"), 1 - (e.get("confidence") or 0.95)
    return f"{e['p_value']:.3g}" + ("°" if floor is not None and floor > alpha else "")


def verdict_text(e: Mapping) -> str:
    """The verdict, starred when the models learned the task only partly (the audit's line says how)."""
    return e["verdict"] + ("*" if e.get("learned_partly") else "")


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: object) -> str:
    """`text` with every character XML 1.0 cannot hold written as \\xNN: one control character in a name
    would make JUnit XML not well-formed, and CI would lose every test result with it."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def report_reason(report) -> str:
    """Why a test (a pytest report) skipped or failed, in one line: the skip reason, or the error's last line."""
    if report.passed:
        return ""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = str(getattr(report, "longreprtext", "") or report.longrepr or "")
    errors = [line.strip()[1:].strip() for line in text.splitlines() if line.strip().startswith("E ")]
    last = errors[-1] if errors else (text.strip().splitlines() or [""])[-1]
    return last[:300]
