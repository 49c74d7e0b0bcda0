"""One audit's section of the HTML report: how it was run, whether its models learned, every result,
its baseline comparison and its figures."""

from __future__ import annotations

from collections import defaultdict
from typing import Mapping

from ..analysis import RULE_MEANING
from . import _html_plots as plots
from ._html_parts import esc, num, outcome_badge, swatch, table, verdict_badge
from ._html_results import (
    dose_response_table,
    effects_table,
    layer_map_table,
    placebo_table,
    sequential_table,
    spectral_tables,
    subgroup_tables,
)

# Settings the design table names one by one; any other key is listed under "other settings", so
# nothing an audit records is left out.
SHOWN = {"seeds", "levels", "intervention_table", "layers", "attributes", "train", "device", "paired", "metric",
         "interval", "confidence", "contrast", "outcome", "placebos", "spectral_cutoff", "models", "from_cache",
         "trained", "cache", "executor", "executor_used", "workers", "threads", "seconds"}


HALF_WIDTH = 570  # px: the widest figure that sits beside another in a section at 1280 px


def anchor(index: int) -> str:
    return f"audit-{index}"


def _pairs(mapping: Mapping) -> str:
    # Floats at four significant digits: 0.9833, not 0.9833333333333333.
    return " · ".join(f"{esc(k)} {esc(f'{v:.4g}' if isinstance(v, float) else v)}" for k, v in mapping.items())


def _execution(s: Mapping) -> str:
    ran = s.get("executor_used", s.get("executor", ""))
    return (f"device {esc(s.get('device', ''))}; executor {esc(s.get('executor', ''))} (ran {esc(ran)}); workers "
            f"{esc(s.get('workers', ''))}, torch threads {esc(s.get('threads', ''))}; {esc(s.get('seconds', ''))} s; "
            f"cache {esc(s.get('cache') or 'none')}")


def _design(a: Mapping) -> str:
    s = a.get("settings", {})
    reference = a.get("reference")
    levels = ", ".join(swatch(a, lv) + (" <b>(reference k0)</b>" if lv == reference else "")
                       for lv in s.get("levels", []))
    groups = "".join(f"<li class='lbl'>{esc(g)}: {esc(n)}</li>" for g, n in a.get("group_counts", {}).items())
    models = (f"{esc(s.get('seeds', '?'))} per level; {esc(s.get('models', '?'))} models "
              f"({esc(s.get('trained', 0))} trained, {esc(s.get('from_cache', 0))} from the cache)")
    confidence = s.get("confidence")
    rule = a.get("rule", "")
    rows = [
        ("Intervention", esc(a.get("intervention", ""))),
        ("Levels", levels),
        ("Layers", esc(", ".join(map(str, s.get("layers", []))))),
        ("Seeds", models),
        ("Training data", esc(a.get("data", ""))),
        ("Test subgroups (images)", f"{esc(', '.join(s.get('attributes', [])))}<ul class='inline'>{groups}</ul>"),
        ("Perturbations", esc(", ".join(a.get("perturbations", [a.get("perturbation", "")])))),
        ("Training recipe", _pairs(s.get("train", {}))),
        ("Estimand", f"{esc(a.get('bias', ''))}; outcome {esc(s.get('outcome', ''))}; metric {esc(s.get('metric', ''))}"
                     + (f"; contrast {esc(' vs '.join(s['contrast']))}" if s.get("contrast") else "")),
        ("Inference", f"{esc(s.get('interval', ''))} interval"
                      + (f" at {confidence:.0%}" if isinstance(confidence, float) else "")
                      + f", paired {esc(s.get('paired', ''))}, p adjusted by {esc(a.get('correction', ''))}; threshold "
                        f"{esc(a.get('threshold', ''))}, rule {esc(rule)}: {esc(RULE_MEANING.get(rule, ''))}"),
        ("Placebos, spectra", f"placebos {esc(', '.join(s.get('placebos', [])) or 'none')}; spectral cutoff "
                              f"{esc(s.get('spectral_cutoff'))}"),
        ("Execution", _execution(s)),
    ]
    other = {k: v for k, v in s.items() if k not in SHOWN}
    if other:
        rows.append(("Other settings", _pairs(other)))
    body = "".join(f"<tr><th scope='row'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<div class='tw'><table class='kv'><tbody>{body}</tbody></table></div>"


def _layers(a: Mapping) -> str:
    rows = a.get("settings", {}).get("intervention_table") or []
    if not rows:
        return ""
    body = [[swatch(a, r["level"]), esc(r["layer"]), esc(r["class"]), esc(r["old"]), esc(r["new"]),
             f"{esc(r['params'])} ({r['params_change']:+d})", esc("; ".join(r.get("notes", [])))] for r in rows]
    return "<h3>Layers touched</h3>" + table(("level", "layer", "class", "before", "after", "parameters (change)",
                                              "notes"), body)


def _learning(a: Mapping) -> str:
    """Clean accuracy per level against the majority-class rate (did the models learn?), then per model."""
    clean = dict(a.get("clean_accuracy") or {})
    majority = clean.pop("majority", None)
    if not clean:
        return ""
    per_level = defaultdict(list)
    for m in a.get("learning", []):
        level = next((lv for lv in clean if f" {lv} " in f" {m['model']} "), "")
        per_level[level].append(m)
    body = [[swatch(a, lv), f"<span class='n'>{num(acc, 3, False)}</span>",
             f"<span class='n'>{num(acc - majority) if majority is not None else ''}</span>",
             f"<span class='n'>{num(min((m['accuracy'] for m in per_level[lv]), default=None), 3, False)}</span>"]
            for lv, acc in clean.items()]
    models = [[esc(m["model"]), f"<span class='n'>{num(m['accuracy'], 3, False)}</span>",
               f"<span class='n'>[{num(m['ci_low'], 3, False)}, {num(m['ci_high'], 3, False)}]</span>"]
              for m in a.get("learning", [])]
    return ("<h3>Did the models learn? Clean accuracy per level</h3>"
            f"<p class='note'>Majority-class rate (always guessing the commonest label): "
            f"{num(majority, 3, False)}.</p>"
            + table(("level", "mean clean accuracy", "above the majority rate", "lowest seed"), body)
            + (f"<details><summary>Every model ({len(models)})</summary>"
               + table(("model", "clean accuracy", "exact 95% CI"), models) + "</details>" if models else ""))


def _baseline(a: Mapping) -> str:
    base = a.get("baseline") or {}
    if not base:
        return ""
    body = [[esc(r["key"]), num(r["then"], 4), num(r["now"], 4), num(r["growth"], 4), num(r["growth_lower"], 4)]
            for r in base.get("rows", [])]
    limit = base.get("compare_fail")
    return (f"<h3>Against baseline {esc(base.get('path', ''))}</h3>"
            + table(("effect", "then", "now", "|effect| change", "change beyond both intervals"), body)
            + f"<p class='note'>Fails when the change beyond both intervals exceeds "
              f"{esc(limit) if limit is not None else 'a limit (none set)'}.</p>")


def _figures(a: Mapping) -> str:
    out = []
    for title, img in (("Metric against perturbation, per level", plots.severity_plot(a)),
                       ("Drops by subgroup and level", plots.drop_plot(a)),
                       ("Kernel spectra per level", plots.spectra_plot(a)),
                       ("Fourier heat maps per subgroup", plots.heat_map_plot(a))):
        if img:
            # A figure wider than half the section takes a row of its own; narrower ones sit side by side.
            wide = " class='wide'" if plots.png_width(img) > HALF_WIDTH else ""
            out.append(f"<figure{wide}><figcaption>{esc(title)}</figcaption><img alt='{esc(title)}' src='{img}'>"
                       "</figure>")
    strips = plots.example_strips(a)
    if strips:
        rows = "".join(f"<div class='strip'><div class='dim'>{esc(c)}</div><img class='px' alt='{esc(c)}' "
                       f"src='{uri}'></div>" for c, uri in strips.items())
        wide = " class='wide'" if max(plots.png_width(u) for u in strips.values()) > HALF_WIDTH else ""
        out.append(f"<figure{wide}><figcaption>Example perturbed images</figcaption>{rows}</figure>")
    return "<div class='figs'>" + "".join(out) + "</div>" if out else ""


def audit_section(a: Mapping, index: int) -> str:
    """The whole section of one audit, headed by its test id, pytest outcome and verdict."""
    outcome = a.get("test_outcome", "unknown")
    return "".join([
        f"<section class='audit card' id='{anchor(index)}'>",
        f"<h2><span class='id'>{esc(a['test'])}</span></h2>",
        f"<p class='badges'>{outcome_badge(outcome)} {verdict_badge(a['verdict'])} "
        f"<span class='dim'>audit name: {esc(a.get('name', ''))}</span></p>",
        "<h3>How it was run</h3>", _design(a), _layers(a), _learning(a),
        layer_map_table(a), effects_table(a), sequential_table(a), dose_response_table(a), subgroup_tables(a),
        spectral_tables(a), placebo_table(a),
        _baseline(a), _figures(a), "</section>",
    ])
