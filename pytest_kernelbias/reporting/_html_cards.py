"""The report's first screen: run counts, the verdict legend, one card per audit, and every effect in one
table. A reader who stops here knows which audits passed, which warned and why, and each subgroup gap."""

from __future__ import annotations

from collections import Counter
from typing import Mapping

from ..analysis import RULE_MEANING
from ..analysis import VERDICT_RANK as DECIDED_RANK
from ._html_parts import (
    VERDICT_MEANING,
    badge,
    ci_label,
    esc,
    forest_scale,
    forest_svg,
    interval,
    num,
    outcome_badge,
    pval,
    swatch,
    verdict_badge,
)
from ._records import interval_words, verdict_text, worst_first

# Audit verdicts in reading order, the two of records without effects last.
VERDICT_RANK = {**DECIDED_RANK, "error": 4, "not run": 5}
CARD_EFFECTS = 6  # effects a card lists; the summary table below has them all


def _effect_head(a: Mapping) -> str:
    """The mini table's first column: a level against the reference, or a factorial's contrasts (each names its
    own comparison)."""
    return "effect (factorial)" if a.get("factorial") else f"level k vs {esc(a.get('reference', 'k0'))}"


def _mixed(environments: Mapping) -> str:
    """A warning line when the user let an audit compare variants from unlike numeric environments."""
    if not environments.get("mixed"):
        return ""
    nodes = "; ".join(f"{e['variants']} variant(s) on {', '.join(map(str, e['nodes']))}"
                      for e in environments["environments"])
    return (f"<p class='v-warn'><b>Mixed numeric environments</b> (allowed by ray_options): {esc(nodes)}; paired "
            "differences between them include the nodes' rounding</p>")


def _why(a: Mapping) -> str:
    """The verdict in words: what failed and by which rule, what a warning could not rule out, or all clear."""
    effects, outcome = worst_first(a["effects"]), a.get("test_outcome", "")
    worst = effects[0]
    rule = a.get("rule", worst.get("rule", ""))
    meaning = RULE_MEANING.get(rule, "")
    if a["verdict"] == "fail":
        text = (f"{worst['contrast']} under {worst['perturbation']}: effect {num(worst['effect'])} "
                f"{interval(worst)} breaks the threshold {worst['threshold']:g} by rule {rule} "
                f"({meaning}).")
    elif a["verdict"] == "undecided":
        text = (f"Undecided: {worst['contrast']} under {worst['perturbation']}: "
                f"{worst.get('note') or 'its CI contains the threshold'}.")
    elif a["verdict"] == "warn":
        text = f"Passed, but {worst['contrast']} under {worst['perturbation']}: {worst.get('note') or 'see the table'}."
    else:
        text = f"Every effect within the threshold {worst['threshold']:g} by rule {rule} ({meaning})."
    if outcome == "xfailed":
        text += (" The test is marked xfail: this failure was expected." if a["verdict"] == "fail" else
                 " The test failed as its xfail mark expects, though not by this verdict.")
    elif outcome == "passed" and a["verdict"] == "fail":
        text += " Yet the test passed: it did not assert this verdict (no assert_below, or the failure was caught)."
    elif outcome == "failed" and a["verdict"] != "fail":
        text += " The test failed for another reason (see pytest's output): not this verdict."
    return esc(text)


def _gaps(a: Mapping) -> str:
    """The bias at the reference level itself, once per perturbation."""
    seen = {}
    for e in a["effects"]:
        if e.get("gap") is not None:
            seen.setdefault(e["perturbation"], e)
    return "; ".join(f"<b class='n'>{num(e['gap'])}</b> <span class='n'>{interval(e, 'gap_ci_low', 'gap_ci_high')}"
                     f"</span> under {esc(p)}" for p, e in seen.items()) or "not measured"


def audit_card(a: Mapping, anchor: str) -> str:
    effects = worst_first(a["effects"])
    scale = forest_scale(effects)
    rows = "".join(
        f"<tr><td>{swatch(a, e['level'])}<br>"
        f"<span class='dim lbl'>{esc(e['perturbation'])}</span></td>"
        f"<td>{forest_svg(e, scale, width=140)}</td><td><span class='n'>{num(e['effect'])}</span> "
        f"<span class='n dim'>{interval(e)}</span></td>"
        f"<td class='v-{esc(e['verdict'])}'>{esc(verdict_text(e))}</td></tr>"
        for e in effects[:CARD_EFFECTS])
    more = len(effects) - CARD_EFFECTS
    settings = a.get("settings", {})
    levels = settings.get("levels", [])
    seq = a.get("sequential") or {}
    count = len(seq.get("looks", []))
    arms = "; arms: " + ", ".join(f"{a['arm']} {a['verdict']} at {a['seeds']}" for a in seq["arms"]) \
        if seq.get("arms") else ""
    looks = (f" (seeds=auto: {esc(seq.get('decision', ''))} after {count} look{'s' if count != 1 else ''}"
             f"{esc(arms)})" if seq else "")
    return "".join([
        f"<article class='card ov ov-{esc(a['verdict'])}'>",
        f"<h3><a class='id' href='#{anchor}'>{esc(a['test'])}</a></h3>",
        f"<p class='badges'>{outcome_badge(a.get('test_outcome', 'unknown'))} {verdict_badge(a['verdict'])}</p>",
        f"<p class='why'>{_why(a)}</p>",
        f"<p class='warnline'><b>Models learned partly.</b> {esc(a['learning_note'])}: the verdict may read "
        "guessing, not the kernel size.</p>" if a.get("learning_note") else "",
        "".join(f"<p class='fix'><span class='k'>Fix</span> {esc(row['sentence'])}</p>"
                for row in a.get("factorial") or ()),
        f"<div class='tw'><table class='mini'><thead><tr><th>{_effect_head(a)}</th>"
        f"<th>effect vs ±{a['effects'][0]['threshold']:g}</th><th>effect [{ci_label(a)}]</th><th>verdict</th>"
        "</tr></thead>"
        f"<tbody>{rows}</tbody></table></div>",
        f"<p class='dim'>and {more} more effects in the table below</p>" if more > 0 else "",
        f"<p><span class='k'>Subgroup gap at k0</span> ({esc(a.get('bias', ''))}): {_gaps(a)}</p>",
        f"<p><span class='k'>Seeds</span> {'up to ' if seq.get('arms') else ''}{esc(settings.get('seeds', '?'))} "
        f"per level{looks} × {len(levels)} levels"
        f" ({esc(', '.join(levels))}); threshold {a['effects'][0]['threshold']:g}, rule {esc(a.get('rule', ''))}; "
        f"intervals at {esc(interval_words(a))}</p>",
        _mixed(settings.get("environments") or {}),
        "</article>",
    ])


def problem_card(a: Mapping) -> str:
    """The card of an audit test without a verdict: the error it raised and what trained before it, or why
    its audit never ran."""
    settings = a.get("settings") or {}
    asked = ", ".join(f"{k} {esc(f'{settings[k]:g}' if isinstance(settings[k], float) else settings[k])}"
                      for k in ("seeds", "threshold", "rule", "device") if settings.get(k) is not None)
    if a.get("verdict") == "error":
        body = (f"<p class='why'><b>{esc(a['error']['class'])}</b>: <span class='id'>{esc(a['error']['message'])}"
                f"</span></p><p><span class='k'>Before it stopped</span> {esc(settings.get('trained', 0))} models "
                f"trained, {esc(settings.get('from_cache', 0))} already in the cache"
                f"{'; asked for ' + asked if asked else ''}</p>")
    else:
        body = f"<p class='why'>The audit did not run: {esc(a.get('reason') or 'no reason recorded')}</p>"
    kind = "fail" if a.get("verdict") == "error" else "other"
    return (f"<article class='card ov ov-{kind}'><h3 class='id'>{esc(a['test'])}</h3><p class='badges'>"
            f"{outcome_badge(a.get('test_outcome', 'unknown'))} {verdict_badge(a['verdict'])}</p>{body}</article>")


def status_line(audits: list[Mapping]) -> str:
    outcomes = Counter(a.get("test_outcome", "unknown") for a in audits)
    verdicts = Counter(a["verdict"] for a in audits)
    return (f"<p class='status'><b>{len(audits)} audit{'s' if len(audits) != 1 else ''}</b> · pytest: "
            + ", ".join(f"{n} {esc(o)}" for o, n in outcomes.items()) + " · verdicts: "
            + ", ".join(f"<span class='v-{esc(v)}'>{n} {esc(v)}</span>" for v, n in sorted(
                verdicts.items(), key=lambda kv: VERDICT_RANK.get(kv[0], 3))) + "</p>")


def legend() -> str:
    """What each verdict means, in one line; xfailed is a pytest outcome, the others audit verdicts."""
    items = [badge(v, v if v in VERDICT_RANK else "expected") + f" {esc(meaning)}"
             for v, meaning in VERDICT_MEANING.items()]
    return "<p class='legend'>" + " <span class='dim'>|</span> ".join(items) + "</p>"


def summary_table(audits: list[Mapping], anchors: list[str]) -> str:
    """Every effect of every audit against its threshold, grouped by test (a header row per test)."""
    scale = forest_scale([e for a in audits for e in a["effects"]])
    headers = ("level k", "perturbation", "effect vs ±threshold", "effect [CI]", "p", "p adj", "MDE",
               "verdict", "gap at k0 [CI]", "clean acc k0 / k (majority)")
    groups = []
    for a, anchor in zip(audits, anchors):
        e0 = a["effects"][0]
        head = (f"<tr class='grp'><th colspan='{len(headers)}'><a class='id' href='#{anchor}'>{esc(a['test'])}</a> "
                f"{outcome_badge(a.get('test_outcome', 'unknown'))} {verdict_badge(a['verdict'])} "
                f"<span class='dim'>k0 {esc(a.get('reference', ''))}; threshold {e0['threshold']:g}, rule "
                f"{esc(e0['rule'])}; effects at {ci_label(a)}, gaps at {ci_label(a, adjusted=False)}</span></th></tr>")
        rows = [head] + [
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                swatch(a, e["level"]), f"<span class='lbl'>{esc(e['perturbation'])}</span>",
                forest_svg(e, scale),
                f"<span class='n'>{num(e['effect'])}</span> <span class='n'>{interval(e)}</span>",
                pval(e.get("p_value")), pval(e.get("p_adjusted")), num(e.get("mde"), 3, sign=False),
                f"<span class='v-{esc(e['verdict'])}'>{esc(e['verdict'])}</span>",
                f"<span class='n'>{num(e.get('gap'))}</span> <span class='n'>"
                f"{interval(e, 'gap_ci_low', 'gap_ci_high')}</span>", _clean(e))) + "</tr>"
            for e in a["effects"]]
        groups.append("<tbody>" + "".join(rows) + "</tbody>")
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return (f"<div class='tw'><table class='summary'><thead><tr>{head}</tr></thead>{''.join(groups)}</table></div>"
            "<p class='note'>Forest rows share one axis across the table: grey band |effect| ≤ threshold, line the "
            "CI at the audit's level (in its header row), dot the estimate, an arrow a bound off the axis.</p>")


def _clean(e: Mapping) -> str:
    if e.get("clean_reference") is None:
        return ""
    return (f"<span class='n'>{num(e['clean_reference'], 3, False)} / {num(e['clean_level'], 3, False)}</span> "
            f"<span class='n dim'>({num(e['majority'], 3, False)})</span>")
