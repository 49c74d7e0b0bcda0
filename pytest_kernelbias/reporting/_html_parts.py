"""Small HTML pieces every part of the report uses: text, numbers, tables, badges, colours, forest rows.

Every piece of report data (test ids, subgroup values, perturbation names) is escaped here: it is
text, never markup.
"""

from __future__ import annotations

import html
import math
from typing import Iterable, Mapping, Sequence

from ..analysis import level_text

# One colour per level and one line style and marker per subgroup, by their order in the audit: the
# tables' swatches and every plot use these. The reference level is near-black; no level is green, orange
# or red, which mean pass, warn and fail here.
LEVEL_COLOURS = ("#222222", "#0072B2", "#AA3377", "#56B4E9", "#8C564B", "#7F3C8D", "#44AA99", "#999999")
SUBGROUP_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 3)), (0, (3, 1, 3, 4)))
SUBGROUP_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
VERDICT_COLOURS = {"pass": "#1a7f37", "warn": "#b35900", "undecided": "#6f42c1", "fail": "#c62828"}
VERDICT_MEANING = {
    "pass": "within the threshold under the rule",
    "warn": "passed, but the CI reaches past the threshold: an effect that large is not ruled out",
    "undecided": "the CI contains the threshold: too few seeds to show the effect inside or beyond it",
    "fail": "the rule is broken: the test fails",
    "xfailed": "the audit failed, as the test's xfail mark expects",
    "error": "the audit raised before it reached a verdict: no verdict, whatever pytest's outcome",
}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def num(value: object, digits: int = 3, sign: bool = True) -> str:
    """A number for a table cell: fixed digits, signed; '' when absent, the word for inf and nan."""
    if value is None or isinstance(value, str):
        return esc(value or "")
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def pval(value: object) -> str:
    return "" if value is None else f"{value:.3g}"


def ci_label(audit: Mapping, adjusted: bool = True) -> str:
    """The level of an audit's intervals, e.g. "98.19% CI": the verdict's adjusted level (family and looks),
    or with `adjusted=False` the nominal level of its other intervals (gaps, subgroups, placebos)."""
    settings = audit.get("settings") or {}
    level = settings.get("effect_confidence") if adjusted else None
    level = level if isinstance(level, float) else settings.get("confidence", 0.95)
    return f"{level_text(level)} CI"


def interval(row: Mapping, low: str = "ci_low", high: str = "ci_high") -> str:
    return "" if row.get(low) is None else f"[{num(row[low])}, {num(row[high])}]"


def levels_of(audit: Mapping) -> list[str]:
    """The audit's levels in its own order (reference first), for colours that match across plots."""
    levels = list(audit.get("settings", {}).get("levels") or [])
    for r in audit.get("outcomes", []):
        if r["level"] not in levels:
            levels.append(r["level"])
    return levels


def subgroups_of(audit: Mapping) -> list[str]:
    groups = list(audit.get("group_counts") or {})
    for r in audit.get("outcomes", []):
        if r["subgroup"] not in groups:
            groups.append(r["subgroup"])
    return groups


def level_colour(audit: Mapping, level: str) -> str:
    levels = levels_of(audit)
    return LEVEL_COLOURS[levels.index(level) % len(LEVEL_COLOURS)] if level in levels else "#777777"


def swatch(audit: Mapping, level: str) -> str:
    """A level's name with its plot colour beside it; the colour never wraps away from the name's first word."""
    first, space, rest = str(level).partition(" ")
    return (f"<span class='lv'><span class='sw' style='background:{level_colour(audit, level)}'></span>"
            f"{esc(first)}</span>{space}{esc(rest)}")


def badge(text: str, kind: str, title: str = "") -> str:
    tip = f" title='{esc(title)}'" if title else ""
    return f"<span class='badge b-{esc(kind)}'{tip}>{esc(text)}</span>"


def verdict_badge(verdict: str) -> str:
    kind = {"error": "fail", "not run": "other"}.get(verdict, verdict)
    return badge(f"verdict: {verdict}", kind, VERDICT_MEANING.get(verdict, ""))


def outcome_badge(outcome: str) -> str:
    kind = {"passed": "ok", "failed": "bad", "xfailed": "expected"}.get(outcome, "other")
    return badge(f"pytest: {outcome}", kind, VERDICT_MEANING.get(outcome, ""))


def table(headers: Sequence[str], rows: Iterable[Sequence[str] | str], cls: str = "", caption: str = "") -> str:
    """A table whose cells are HTML already (escape data with esc/num first), inside a wrapper that
    scrolls it on its own, never the page, should a narrow window not hold it. A row given as one
    string is a whole ``<tr>`` already (a note spanning the columns)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(row if isinstance(row, str) else "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return (f"<div class='tw'><table class='{cls}'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            "</table></div>")


def forest_scale(rows: Iterable[Mapping]) -> float:
    """The half-width of a forest axis that holds every finite bound and threshold of `rows`."""
    values = [0.01]
    for r in rows:
        values += [abs(v) for v in (r.get("effect"), r.get("ci_low"), r.get("ci_high"), r.get("threshold"))
                   if isinstance(v, (int, float)) and math.isfinite(v)]
    return max(values) * 1.08


def forest_svg(row: Mapping, scale: float, width: int = 180, height: int = 18) -> str:
    """One effect as an inline forest row: its CI (verdict colour) and estimate against the +-threshold band
    (grey) and 0; an infinite bound runs to the edge with an arrow."""
    def x(value: float) -> float:
        value = max(-scale, min(scale, value))
        return round(4 + (value + scale) / (2 * scale) * (width - 8), 1)

    colour = VERDICT_COLOURS.get(row.get("verdict", ""), "#555")
    t = row.get("threshold") or 0.0
    lo, hi, mid = row["ci_low"], row["ci_high"], height / 2
    parts = [f"<rect x='{x(-t)}' y='1' width='{round(x(t) - x(-t), 1)}' height='{height - 2}' fill='#e3e3e3'/>",
             f"<line x1='{x(0)}' y1='0' x2='{x(0)}' y2='{height}' stroke='#888' stroke-width='1'/>",
             f"<line x1='{x(lo)}' y1='{mid}' x2='{x(hi)}' y2='{mid}' stroke='{colour}' stroke-width='2.5'/>",
             f"<circle cx='{x(row['effect'])}' cy='{mid}' r='4' fill='{colour}'/>"]
    for bound, tip in ((lo, 4), (hi, width - 4)):
        if not math.isfinite(bound) or abs(bound) > scale:
            d = -1 if tip < width / 2 else 1
            parts.append(f"<path d='M{tip} {mid} l{-6 * d} -4 v8 z' fill='{colour}'/>")
    tip = (f"effect {num(row['effect'])}, CI {interval(row)}, threshold ±{t:g}; axis ±{scale:.3g}; "
           f"verdict {row.get('verdict', '')}")
    return (f"<svg class='forest' width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
            f"aria-label='{esc(tip)}'><title>{esc(tip)}</title>{''.join(parts)}</svg>")
