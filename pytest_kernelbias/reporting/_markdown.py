"""A Markdown summary for a CI job page (GitHub's job summary, GitLab or Jenkins Markdown views).

One row per audit test: a verdict badge, the worst effect with its interval and level, the gap at
k0, the seeds, the threshold and rule, and what to do next in words. Audits that raised are rows
too, with the error. Written to `--kernel-audit-md PATH`; when `GITHUB_STEP_SUMMARY` is set and no
path is given, appended to that file, which other steps of the job share.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

from ..analysis import level_text
from ._files import write_atomic
from ._json import COMPLETE
from ._records import session_counts, worst_first

BADGES = {"pass": "🟢 **pass**", "warn": "🟡 **warn**", "undecided": "🟠 **undecided**", "fail": "🔴 **fail**",
          "error": "⛔ **error**", "not run": "⚪ not run"}
GITHUB_SUMMARY = "GITHUB_STEP_SUMMARY"


MARKDOWN_SPECIAL = "\\`*_[]{}()#+!~<>&"


def _plain(text: object) -> str:
    """Text the package did not write (test ids, names, messages) as literal Markdown: every character that
    Markdown or inline HTML would act on is backslash-escaped, so `<img src=...>` stays text."""
    return "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in " ".join(str(text).split()))


def _code(text: object) -> str:
    """A code span that holds any text: its fence is longer than the longest run of backticks inside."""
    flat = " ".join(str(text).split())
    run = max((len(r) for r in re.findall("`+", flat)), default=0)
    fence, pad = "`" * (run + 1), " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _cell(text: object) -> str:
    """Table-cell text: pipes escaped (GFM reads \\| as a pipe even in a code span), no line breaks."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _todo(a: Mapping, worst: Mapping | None) -> str:
    """What a reader should do about this audit, in a sentence."""
    if a["verdict"] == "error":
        return f"fix the audit: {_plain(a['error']['class'])}: {_plain(a['error']['message'])}"
    if a["verdict"] == "not run":
        return f"the audit did not run: {_plain(a.get('reason') or 'see pytest output')}"
    outcome = a.get("test_outcome", "")
    if worst is None or worst["verdict"] == "pass":
        return "nothing: every effect is inside the threshold"
    if worst["verdict"] == "fail":
        expected = " (expected: the test is marked xfail)" if outcome == "xfailed" else ""
        return (f"{_plain(worst['contrast'])} under {_plain(worst['perturbation'])} moves the gap beyond "
                f"±{worst['threshold']:g}"
                f"{expected}; choose another kernel size or accept the gap")
    return _plain(worst.get("note") or "more seeds would settle it")


def _row(a: Mapping) -> str:
    effects = a.get("effects") or []
    worst = worst_first(effects)[0] if effects else None
    settings = a.get("settings") or {}
    if worst is None:
        effect = gap = level = ""
    else:
        effect = (f"{worst['effect']:+.3f} [{worst['ci_low']:+.3f}, {worst['ci_high']:+.3f}] "
                  f"({_plain(worst['level'])}, {_plain(worst['perturbation'])})")
        level = level_text(worst.get("confidence") or settings.get("effect_confidence") or 0.95)
        gap = "" if worst.get("gap") is None else f"{worst['gap']:+.3f}"
    seeds = (worst or {}).get("n") or settings.get("seeds", "")
    rule = f"{a.get('threshold'):g} / {a.get('rule')}" if a.get("threshold") is not None else ""
    badge = BADGES.get(a["verdict"], a["verdict"]) + (" (models learned partly)" if a.get("learning_note") else "")
    todo = _todo(a, worst) + (f". Note: {_plain(a['learning_note'])}" if a.get("learning_note") else "")
    cells = (_code(a["test"]), badge, _plain(a.get("test_outcome", "")), effect, level, gap, seeds, rule, todo)
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def render_markdown(audits: list[Mapping], status: Mapping = COMPLETE) -> str:
    counts = session_counts(audits)
    verdicts: dict[str, int] = {}
    for a in audits:
        verdicts[a["verdict"]] = verdicts.get(a["verdict"], 0) + 1
    lines = ["## Kernel audit", ""]
    if not status["complete"]:
        lines += [f"> **INCOMPLETE**: {_plain(status.get('incomplete_reason') or 'the run did not finish')}. Only the "
                  "audits that finished are listed.", ""]
    lines += [f"**{len(audits)} audit tests** · " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
              + f" · models: {counts['trained']} trained, {counts['from_cache']} loaded from the cache", "",
              "| test | verdict | pytest | worst effect [CI] | CI level | gap at k0 | seeds | threshold / rule | "
              "what to do |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [_row(a) for a in audits]
    fixes = [f"- {_code(a['test'])}: {_plain(row['sentence'])}" for a in audits for row in a.get("factorial") or ()]
    lines += ["", "**Fixes** (factorial audits):", "", *fixes] if fixes else []
    lines += ["", "Effect: the change the kernel size causes in the subgroup gap; the CI level is adjusted for "
              "the family of effects and the sequential looks. Gap at k0: the gap at the reference itself.", ""]
    return "\n".join(lines)


def write_markdown(path: str | os.PathLike, audits: list[Mapping], settings: Mapping,
                   status: Mapping = COMPLETE) -> Path:
    """Write the summary; GitHub's step summary file is appended to, any other path replaced atomically."""
    target = Path(path)
    text = render_markdown(audits, status)
    if appends(target):
        with open(target, "a", encoding="utf-8") as out:
            out.write(text + "\n")
        return target
    return write_atomic(target, text, "kernel-audit Markdown summary")


def appends(path: str | os.PathLike) -> bool:
    """Whether `path` is the CI job summary that other steps write too (appended to, never replaced)."""
    shared = os.environ.get(GITHUB_SUMMARY)
    return bool(shared) and Path(path).resolve() == Path(shared).resolve()
