"""Tables of every number an audit computed: its effects, the dose-response slope, per-subgroup and
pairwise effects, spectral effects and the high-frequency shares they rest on, and the placebos."""

from __future__ import annotations

from collections import defaultdict
from typing import Mapping

import numpy as np

from ..analysis import chance_text
from ._html_parts import ci_label, esc, forest_scale, forest_svg, interval, num, pval, swatch, table


def _stat_headers(audit: Mapping, adjusted: bool = False) -> tuple[str, ...]:
    return ("effect", ci_label(audit, adjusted), "p", "p adj", "p method", "seeds")


def _stats(row: Mapping) -> list[str]:
    """An effect's cells: estimate, CI, raw and adjusted p, the p's method, seeds."""
    return [f"<span class='n'>{num(row['effect'], 4)}</span>", f"<span class='n'>{interval(row)}</span>",
            pval(row.get("p_value")), pval(row.get("p_adjusted")), esc(row.get("p_method", "")), esc(row.get("n", ""))]


def _level(audit: Mapping, level: str) -> str:
    """A treated level with its plot colour, from a level or a 'k vs k0' contrast."""
    return swatch(audit, level)


def _section(title: str, body: str, note: str = "") -> str:
    return f"<h3>{esc(title)}</h3>" + (f"<p class='note'>{note}</p>" if note else "") + body


def effects_table(audit: Mapping) -> str:
    """The effects the verdict rests on, with the forest row, MDE, verdict and the gap at k0; a warned
    effect's note on a row of its own beneath it."""
    rows, scale = [], forest_scale(audit["effects"])
    headers = (f"level k (vs {esc(audit.get('reference', 'k0'))})", "perturbation", "effect vs ±threshold",
               *_stat_headers(audit, adjusted=True), "MDE (80% power)", "verdict",
               f"gap at k0 [{ci_label(audit, adjusted=False)}]")
    for e in audit["effects"]:
        cells = [_level(audit, e["level"]), f"<span class='lbl'>{esc(e['perturbation'])}</span>",
                 forest_svg(e, scale, width=150), *_stats(e),
                 f"<span class='n'>{num(e.get('mde'), 3, sign=False)}</span>",
                 f"<span class='v-{esc(e['verdict'])}'>{esc(e['verdict'])}</span>",
                 f"<span class='n'>{num(e.get('gap'))}</span> <span class='n'>"
                 f"{interval(e, 'gap_ci_low', 'gap_ci_high')}</span>"]
        note = e.get("note")
        rows.append(f"<tr{' class=hn' if note else ''}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        if note:
            rows.append(f"<tr class='noterow'><td></td><td colspan='{len(headers) - 1}'><span class='v-warn'>warn:"
                        f"</span> passed; {esc(note)}</td></tr>")
    return _section("Effects on the bias", table(headers, rows),
                    f"{esc(audit.get('bias', ''))}: the change the level causes, paired by seed. MDE: the smallest "
                    "effect these seeds detect with 80% power. Gap at k0: the bias at the reference level itself.")


def _pivot(audit: Mapping, rows: list[Mapping], keys: tuple[str, ...], title: str, note: str) -> str:
    """Effects per subgroup as a grid: a row per (perturbation,) level, a column per subgroup; each cell
    the estimate (bold when its CI excludes 0), the CI and the p values."""
    groups = list(dict.fromkeys(r["subgroup"] for r in rows))
    cells: dict = {}
    for r in rows:
        cells[tuple(r[k] for k in keys)] = cells.get(tuple(r[k] for k in keys), {}) | {r["subgroup"]: r}
    body = []
    for key, by_group in cells.items():
        lead = [esc(k) if name != "level" else swatch(audit, k) for name, k in zip(keys, key)]
        body.append(lead + [_cell(by_group[g]) if g in by_group else "" for g in groups])
    first = next(iter(rows))
    method = f" p: {esc(first.get('p_method', ''))} over {esc(first.get('n', ''))} seeds; p adj within the family."
    headers = (*("level k" if k == "level" else k for k in keys),
               *(f"<span class='lbl'>{esc(g)}</span>" for g in groups))
    return _section(title, table(headers, body, "grid"), note + method + " Bold: the CI excludes 0.")


def _cell(r: Mapping) -> str:
    excludes = r["ci_low"] > 0 or r["ci_high"] < 0
    estimate = f"<b>{num(r['effect'])}</b>" if excludes else num(r["effect"])
    adj = "" if r.get("p_adjusted") is None else f" (adj {pval(r['p_adjusted'])})"
    return (f"<span class='n'>{estimate}</span><br><span class='n dim'>{interval(r)}</span><br>"
            f"<span class='n dim'>p {pval(r.get('p_value'))}{adj}</span>")


def dose_response_table(audit: Mapping) -> str:
    rows = audit.get("dose_response") or []
    if not rows:
        return ""
    body = [[esc(r["perturbation"]), *_stats(r), esc(r.get("method", ""))] for r in rows]
    return _section("Dose-response", table(("perturbation", *_stat_headers(audit), "method"), body),
                    "Slope of the bias per unit of the level, across all levels (seed fixed effects).")


def subgroup_tables(audit: Mapping) -> str:
    """Per-subgroup effects (a grid) and the pairwise differences-in-differences (folded: they are many)."""
    out = ""
    rows = audit.get("subgroup_effects") or []
    if rows:
        out += _pivot(audit, rows, ("perturbation", "level"), "Effects on each subgroup's drop",
                      "How much the level changed each subgroup's drop, paired by seed.")
    pairs = audit.get("pairwise") or []
    if pairs:
        body = [[esc(r["perturbation"]), _level(audit, r["level"]),
                 " − ".join(f"<span class='lbl'>{esc(g)}</span>" for g in r["subgroups"]), *_stats(r)] for r in pairs]
        out += (f"<details><summary>Pairwise differences between subgroups ({len(pairs)} rows)</summary>"
                + table(("perturbation", "level k", "subgroups", *_stat_headers(audit)), body) + "</details>")
    return out


def spectral_tables(audit: Mapping) -> str:
    """The level's effect on each subgroup's activation high-frequency share, and the shares themselves."""
    out = ""
    rows = audit.get("spectral_effects") or []
    if rows:
        cutoff = audit.get("settings", {}).get("spectral_cutoff")
        out += _pivot(audit, rows, ("level",), "Spectral effects per subgroup",
                      "Paired change in the high-frequency share of the intervened layer's activations"
                      + (f" (above {cutoff:g} of Nyquist)." if isinstance(cutoff, (int, float)) else "."))
    shares = audit.get("spectral") or []
    if shares:
        acc = defaultdict(list)
        for r in shares:
            acc[(r["level"], r.get("layer", ""), r["subgroup"])].append(r["hf_ratio"])
        groups = list(dict.fromkeys(r["subgroup"] for r in shares))
        keys = list(dict.fromkeys((lv, layer) for lv, layer, _g in acc))
        body = [[swatch(audit, lv), esc(layer)] + [f"<span class='n'>{num(np.mean(acc[(lv, layer, g)]), 3, False)}"
                                                   "</span>" if (lv, layer, g) in acc else "" for g in groups]
                for lv, layer in keys]
        headers = ("level", "layer", *(f"<span class='lbl'>{esc(g)}</span>" for g in groups))
        out += ("<details open><summary>High-frequency share of activations, mean over seeds</summary>"
                + table(headers, body) + "</details>")
    return out


def sequential_table(audit: Mapping) -> str:
    """seeds="auto": every look (seeds per level, interval level, decision, each effect's interval) and why
    the audit stopped where it did."""
    seq = audit.get("sequential") or {}
    if not seq:
        return ""
    body = [[str(i), esc(look["seeds"]), f"{look['confidence']:.2%}", f"<b>{esc(look['decision'])}</b>",
             "" if look.get("settle_chance") is None else chance_text(look['settle_chance']),
             "<br>".join(f"<span class='lbl'>{esc(label)}</span> <span class='n'>[{num(lo)}, {num(hi)}]</span>"
                         + (" <span class='dim'>(arm stopped earlier: its last interval)</span>"
                            if label in look.get("stopped", ()) else "")
                         for label, (lo, hi) in look.get("intervals", {}).items())]
            for i, look in enumerate(seq.get("looks", []), 1)]
    design = (f"{esc(seq.get('min_seeds'))} to {esc(seq.get('max_seeds'))} seeds per level in rounds of "
              f"{esc(seq.get('round'))}, {esc(seq.get('boundary'))} boundary, futility "
              f"{esc(seq.get('futility', 0))} (stop undecided when max_seeds would settle it with less chance). "
              f"{esc(seq.get('reason', ''))}"
              + (f" A fixed design would need about {esc(seq['fixed_seeds'])} seeds per level."
                 if seq.get("fixed_seeds") and "fixed design" not in seq.get("reason", "") else ""))
    return _section(f"Sequential seeds (seeds=auto): {seq.get('decision', '')}",
                    table(("look", "seeds per level", "interval level", "decision", "chance max_seeds settles it",
                           "intervals"), body), design)


def placebo_table(audit: Mapping) -> str:
    rows = audit.get("placebos") or []
    if not rows:
        return ""
    body = [[esc(r["placebo"]), *_stats(r)] for r in rows]
    return _section("Placebo checks", table(("placebo", *_stat_headers(audit)), body),
                    esc(audit.get("placebo_meaning", "")))


def _hf_cell(shift: Mapping) -> str:
    """Per subgroup, the arm's shift in its layer's activation high-frequency share, with its interval."""
    return "<br>".join(f"<span class='lbl'>{esc(g)}</span> <span class='n'>{num(v['effect'], 4)}</span> "
                       f"<span class='n'>{interval(v)}</span>" for g, v in shift.items())


def layer_map_table(audit: Mapping) -> str:
    """A layer map's arms in network order, each a forest row against +-threshold, beside the layer's position
    among the selected convs and its kernel as built: which layer's kernel size moves the gap."""
    rows = audit.get("layer_map") or []
    if not rows:
        return ""
    threshold = audit["effects"][0]["threshold"]
    forest = [{**r, "threshold": threshold} for r in rows]
    scale = forest_scale(forest)
    body = [[esc(r["position"]), f"<span class='lbl'>{esc(r['layer'])}</span>", esc(r.get("input") or ""),
             esc(r["own_kernel"]),
             esc(r["level"]), f"<span class='lbl'>{esc(r['perturbation'])}</span>", forest_svg(r, scale, width=200),
             f"<span class='n'>{num(r['effect'], 4)}</span> <span class='n'>{interval(r)}</span>",
             pval(r.get("p_adjusted")), f"<span class='v-{esc(r['verdict'])}'>{esc(r['verdict'])}</span>",
             _hf_cell(r.get("hf_shift") or {})]
            for r in forest]
    headers = ("#", "layer", "input (H x W)", "kernel as built", "level", "perturbation", f"effect vs ±{threshold:g}",
               f"effect [{ci_label(audit)}]", "p adj", "verdict", "high-frequency share shift of the layer")
    return _section("Layer map", table(headers, body),
                    "One arm per selected conv, in network order: do(level) on that layer alone against the "
                    "architecture as built (trained once per seed, shared by every arm). Every arm is in the "
                    "audit's one family, so the intervals hold together.")
