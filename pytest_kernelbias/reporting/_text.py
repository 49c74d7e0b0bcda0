"""The terminal summary: one block per audit test, one row per effect, fitted to 120 characters.

A test id names its own line (wrapped at its separators when longer than the width), followed by
what the rows share: the pytest outcome, the reference level k0 with its clean accuracy, and the
threshold and rule; each row then needs only the treated level and its numbers.
"""

from __future__ import annotations

import re
import textwrap
from typing import Iterable, Mapping

from ._records import interval_words, outcome_text, p_text, session_counts, verdict_text

WIDTH = 120
COLUMNS = ("level k", "perturbation", "effect", "CI", "p", "p adj", "verdict", "gap at k0 [CI]",
           "clean acc k")
WRAPPABLE = (0, 1)  # level and perturbation labels may wrap inside their column; numbers never do
INDENT = "  "
LEGEND = ("verdict: pass = within | undecided = CI across | warn = passed, CI past | fail = rule broken | "
          "error = raised")
MARKS = "verdict* = the models learned the task only partly | p° = these seeds allow no p below alpha (floor 2/2^n)"


def _num(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:+.{digits}f}"


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None else f"[{_num(low)}, {_num(high)}]"


def _row(e: Mapping) -> tuple[str, ...]:
    level = e["level"]
    gap = "" if e.get("gap") is None else f"{_num(e['gap'])} {_interval(e['gap_ci_low'], e['gap_ci_high'])}"
    p_adj = "" if e.get("p_adjusted") is None else f"{e['p_adjusted']:.3g}"
    clean = "" if e.get("clean_level") is None else f"{e['clean_level']:.3f}"
    return (level, e["perturbation"], _num(e["effect"]), _interval(e["ci_low"], e["ci_high"]),
            p_text(e), p_adj, verdict_text(e), gap, clean)


def wrap_id(text: str, width: int = WIDTH, indent: str = "    ") -> list[str]:
    """A long test id (or any line) over several lines, broken after '/', '::', '[', '-', '_' or a space
    (inside a word only when a part alone is too long); continuation lines are indented."""
    parts = re.findall(r".+?(?:::|/|\[|-|_| |$)", text) or [text]
    lines, line = [], ""
    for part in parts:
        room = width - (len(indent) if lines else 0)
        if line and len(line) + len(part) > room:
            lines.append(line)
            line = ""
        while len(part) > width - len(indent):  # one part wider than a line: cut it
            cut = width - len(indent) - len(line)
            lines.append(line + part[:cut])
            line, part = "", part[cut:]
        line += part
    lines.append(line)
    return [lines[0]] + [indent + rest for rest in lines[1:]]


def _context(audit: Mapping) -> str:
    """What an audit's rows share: outcome, k0 with its clean accuracy, threshold and rule."""
    first = audit["effects"][0]
    reference = audit.get("reference") or first["reference_level"]
    clean = "" if first.get("clean_reference") is None else (
        f" (clean acc {first['clean_reference']:.3f}, majority class {first['majority']:.3f})")
    level = _level(audit)
    sequential = audit.get("sequential") or {}
    seeds = f", {first['n']} seeds" if first.get("n") and not sequential.get("arms") else ""
    looks = sequential.get("decision")
    early = sequential.get("stopped_for") == "futility"
    design = f" {sequential.get('min_seeds')}-{sequential.get('max_seeds')}" if sequential.get("max_seeds") else ""
    arms = "".join(f"; {a['arm']} {a['verdict']} at {a['seeds']}" for a in sequential.get("arms") or ())
    auto = f" (seeds=auto{design}: {looks}{', futility' if early else ''}{arms})" if looks else ""
    return (f"{audit.get('test_outcome', 'unknown')}; k0 = {reference}{clean}; "
            f"threshold {first['threshold']:g}, rule {first['rule']}{level}{seeds}{auto}")


def _level(audit: Mapping) -> str:
    """The interval level the verdict read: family- and look-adjusted, with what went into it."""
    words = interval_words(audit)
    settings = audit.get("settings") or {}
    strict = "; strict" if settings.get("strict") else ""
    mixed = (settings.get("environments") or {}).get("mixed")
    # Allowed by the user, but the numbers mix nodes' rounding: every report says so beside the verdict.
    strict += "; MIXED numeric environments (allowed)" if mixed else ""
    return f"; {words}{strict}" if words else strict


def _widths(rows: list[tuple[str, ...]], room: int) -> list[int]:
    """Column widths: natural, then the wrappable columns narrowed (widest first) until the row fits."""
    widths = [max(len(r[i]) for r in rows + [COLUMNS]) for i in range(len(COLUMNS))]
    while sum(widths) + 2 * (len(widths) - 1) > room:
        i = max(WRAPPABLE, key=lambda j: widths[j])
        if widths[i] <= 8:
            break  # numbers never wrap: a table still too wide overflows rather than lose digits
        widths[i] -= 1
    return widths


def _table_lines(cells: tuple[str, ...], widths: list[int]) -> list[str]:
    columns = [textwrap.wrap(c, w, break_on_hyphens=False) or [""] if i in WRAPPABLE else [c]
               for i, (c, w) in enumerate(zip(cells, widths))]
    height = max(len(c) for c in columns)
    return [(INDENT + "  ".join((c[k] if k < len(c) else "").ljust(w) for c, w in zip(columns, widths))).rstrip()
            for k in range(height)]


def summary_lines(audits: Iterable[Mapping], width: int = WIDTH) -> list[str]:
    """The terminal summary's body: per audit its test line(s), context line and effect rows (a warned
    row with its note below it), then the verdict legend."""
    audits = list(audits)
    if not audits:
        return []
    rows = [_row(e) for a in audits for e in a.get("effects") or ()]
    widths = _widths(rows, width - len(INDENT)) if rows else []
    lines = _table_lines(COLUMNS, widths) + [INDENT + "  ".join("-" * w for w in widths)] if rows else []
    for audit in audits:
        lines += wrap_id(audit["test"], width)
        if not audit.get("effects"):  # an audit that raised, or a marked test whose audit never ran
            lines += textwrap.wrap(outcome_text(audit), width, initial_indent=INDENT, subsequent_indent=INDENT * 2,
                                   break_on_hyphens=False)
            continue
        lines += textwrap.wrap(_context(audit), width, initial_indent=INDENT, subsequent_indent=INDENT * 2)
        if audit.get("learning_note"):
            lines += textwrap.wrap(f"* {audit['learning_note']}: the verdict may read guessing, not the kernel size",
                                   width, initial_indent=INDENT, subsequent_indent=INDENT * 2, break_on_hyphens=False)
        effects = audit["effects"]
        if audit.get("layer_map"):  # a layer map reads worst first: which layer's kernel moves the gap most
            layers = len({r["layer"] for r in audit["layer_map"]})
            lines.append(f"{INDENT}layer map: {len(effects)} arms over {layers} layers, largest |effect| first")
            effects = sorted(effects, key=lambda e: -abs(e["effect"]))
        for e in effects:
            lines += _table_lines(_row(e), widths)
            if e.get("note"):  # under its row, where the test and contrast are already named
                lines += textwrap.wrap(f"{e['verdict']}: {e['note']}", width, initial_indent=INDENT * 2,
                                       subsequent_indent=INDENT * 3, break_on_hyphens=False)
        for row in audit.get("factorial") or ():  # a factorial audit's answer, in words, after its rows
            lines += textwrap.wrap(f"fix: {row['sentence']}", width, initial_indent=INDENT,
                                   subsequent_indent=INDENT * 2, break_on_hyphens=False)
    marked = any(cell.endswith(("*", "°")) for row in rows for cell in (row[4], row[6]))
    return lines + [LEGEND] + ([MARKS] if marked else [])


def session_tail(records: list[Mapping], baseline_tests: list[str] | None = None) -> list[str]:
    """The lines after the table: the session's counts (errored audits included) and the baseline comparison;
    with `baseline_tests` (the compared baseline's test ids), the ones this run has no audit of."""
    counts = session_counts(records)
    caches = sorted({r["settings"].get("cache") for r in records if r["settings"].get("cache")})
    errored = f" (errored audits included: {counts['errored']})" if counts["errored"] else ""
    tests = f"{len(records)} audit test{'s' if len(records) != 1 else ''}"
    tail = [f"{tests}; models: {counts['trained']} trained, {counts['from_cache']} loaded from the cache, "
            f"{counts['evaluated']} evaluated{errored}" + (f"; cache {', '.join(caches)}" if caches else "")]
    tail += [f"baseline: {row['key']}: effect {row['then']:+.4f} -> {row['now']:+.4f} (|effect| change "
             f"{row['growth']:+.4f})" for r in records for row in (r.get("baseline") or {}).get("rows", [])]
    tail += [f"baseline: {'' if (r.get('baseline') or {}).get('new') else 'no match: '}{line}"
             for r in records for line in (r.get("baseline") or {}).get("unmatched", [])]
    ran = {r["test"] for r in records}
    tail += [f"baseline: removed or not run here: {test} (in the baseline, no audit of it in this run)"
             for test in baseline_tests or () if test not in ran]
    return tail
