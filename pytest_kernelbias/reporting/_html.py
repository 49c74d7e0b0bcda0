"""A self-contained HTML report: the summary table and matplotlib figures embedded as PNG data URIs.

Built from the same audit records as the JSON report, so under pytest-xdist
the controller renders one report from every worker's results. No network
fetches: no scripts, fonts or styles from elsewhere.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ._files import write_atomic
from ._text import COLUMNS, summary_lines


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def forest_plot(audits: list[Mapping]) -> str:
    """Every effect with its CI, against the +-threshold band."""
    import matplotlib.pyplot as plt

    rows = [(f"{a['name']}: {e['contrast']} | {e['perturbation']}", e) for a in audits for e in a["effects"]]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    colours = {"pass": "tab:green", "warn": "tab:orange", "fail": "tab:red"}
    for i, (_label, e) in enumerate(rows):
        lo, hi = e["ci_low"], e["ci_high"]
        lo, hi = (lo if np.isfinite(lo) else -1.0), (hi if np.isfinite(hi) else 1.0)
        ax.plot([lo, hi], [i, i], color=colours.get(e["verdict"], "k"), lw=2)
        ax.plot(e["effect"], i, "o", color=colours.get(e["verdict"], "k"))
        ax.axvspan(-e["threshold"], e["threshold"], ymin=(i + 0.1) / len(rows), ymax=(i + 0.9) / len(rows),
                   color="0.9", zorder=0)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("effect on the bias (metric units); grey band: |effect| <= threshold")
    ax.invert_yaxis()
    return _png(fig)


def _means(outcomes: Iterable[Mapping], key: str) -> dict:
    acc = defaultdict(list)
    for r in outcomes:
        acc[(r["level"], r["perturbation"], r["subgroup"])].append(r[key])
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0) for k, v in acc.items()}


def severity_plot(audit: Mapping) -> str:
    """Each subgroup's perturbed metric per perturbation (severity), one line per level."""
    import matplotlib.pyplot as plt

    means = _means(audit["outcomes"], "perturbed")
    clean = _means(audit["outcomes"], "clean")
    perts = audit["perturbations"]
    levels = list(dict.fromkeys(r["level"] for r in audit["outcomes"]))
    groups = list(dict.fromkeys(r["subgroup"] for r in audit["outcomes"]))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for li, level in enumerate(levels):
        for gi, g in enumerate(groups):
            ys = [clean[(level, perts[0], g)][0]] + [means[(level, p, g)][0] for p in perts]
            ax.plot(range(len(ys)), ys, marker="o", linestyle=["-", "--", ":", "-."][li % 4], color=f"C{gi}",
                    label=f"{level} | {g}")
    ax.set_xticks(range(len(perts) + 1), ["clean", *perts], rotation=20, fontsize=8)
    ax.set_ylabel("metric (mean over seeds)")
    ax.legend(fontsize=7)
    return _png(fig)


def drop_plot(audit: Mapping) -> str:
    """Drop per subgroup and level under the first perturbation, mean +- sd over seeds."""
    import matplotlib.pyplot as plt

    means = _means(audit["outcomes"], "drop")
    pert = audit["perturbation"]
    levels = list(dict.fromkeys(r["level"] for r in audit["outcomes"]))
    groups = list(dict.fromkeys(r["subgroup"] for r in audit["outcomes"]))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(levels)
    for li, level in enumerate(levels):
        xs = np.arange(len(groups)) + li * width
        vals = [means[(level, pert, g)] for g in groups]
        ax.bar(xs, [v[0] for v in vals], width, yerr=[v[1] for v in vals], label=level, capsize=3)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups, fontsize=8)
    ax.set_ylabel(f"drop under {pert}")
    ax.legend(fontsize=8)
    return _png(fig)


def spectra_plot(audit: Mapping) -> str | None:
    """Radial power spectrum of the intervened layer's kernels, per level."""
    if not audit.get("kernel_spectra"):
        return None
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    for level, spectrum in audit["kernel_spectra"].items():
        s = np.asarray(spectrum)
        ax.semilogy(np.linspace(0, 1, len(s)), s + 1e-12, label=level)
    ax.set_xlabel("frequency (fraction of Nyquist)")
    ax.set_ylabel("kernel power")
    ax.legend(fontsize=8)
    return _png(fig)


def heat_map_plot(audit: Mapping) -> str | None:
    """Fourier heat maps (error rate) per level and subgroup."""
    maps = audit.get("heat_maps") or {}
    if not maps:
        return None
    import matplotlib.pyplot as plt

    levels = list(maps)
    groups = list(next(iter(maps.values())))
    fig, axes = plt.subplots(len(levels), len(groups), figsize=(2.6 * len(groups), 2.4 * len(levels)), squeeze=False)
    for i, level in enumerate(levels):
        for j, g in enumerate(groups):
            im = axes[i][j].imshow(np.asarray(maps[level][g]), vmin=0, vmax=1, cmap="magma")
            axes[i][j].set_title(f"{level}\n{g}", fontsize=7)
            axes[i][j].axis("off")
    fig.colorbar(im, ax=axes, shrink=0.7, label="error")
    return _png(fig)


def examples_plot(audit: Mapping) -> str | None:
    """A strip of example test images, clean and under each perturbation."""
    examples = audit.get("examples") or {}
    if not examples:
        return None
    import matplotlib.pyplot as plt

    conds = list(examples)
    n = len(examples[conds[0]])
    fig, axes = plt.subplots(len(conds), n, figsize=(1.3 * n, 1.4 * len(conds)), squeeze=False)
    for i, cond in enumerate(conds):
        for j, img in enumerate(examples[cond]):
            axes[i][j].imshow(np.clip(np.asarray(img, dtype=float).transpose(1, 2, 0) / 255, 0, 1))
            axes[i][j].axis("off")
        axes[i][0].set_title(cond, fontsize=7, loc="left")
    return _png(fig)


def render_html(audits: list[Mapping], environment: Mapping, settings: Mapping) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to PNG
    esc = html.escape
    lines = summary_lines(audits)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>kernel audit report</title>",
        "<style>body{font-family:sans-serif;margin:2em;color:#222}pre{background:#f6f6f6;padding:1em;"
        "overflow-x:auto}img{max-width:100%}h2{border-bottom:1px solid #ccc}.fail{color:#b00}"
        ".warn{color:#b60}.pass{color:#070}</style></head><body>",
        "<h1>Kernel audit report</h1>",
        f"<p>{esc(', '.join(f'{k} {v}' for k, v in environment.items()))}</p>",
        f"<p>settings: {esc(', '.join(f'{k}={v}' for k, v in settings.items()))}</p>",
        "<h2>Summary</h2>",
        "<pre>" + esc("\n".join(lines) if lines else "no audits ran") + "</pre>",
    ]
    if audits:
        parts += ["<h2>Effects against the threshold</h2>", f"<img alt='forest plot' src='{forest_plot(audits)}'>"]
    for a in audits:
        parts += [f"<h2 class='{esc(a['verdict'])}'>{esc(a['test'])}: {esc(a['verdict'])}</h2>",
                  f"<p>{esc(a['intervention'])}<br>data: {esc(a['data'])} {esc(str(a['group_counts']))}"
                  f"<br>bias: {esc(a['bias'])}</p>"]
        table = a.get("settings", {}).get("intervention_table") or []
        if table:
            text = "\n".join(f"{r['level']:<24} {r['layer']:<24} {r['class']:<18} {r['old']} -> {r['new']}  "
                             f"params {r['params']}{r['params_change']:+d}  {'; '.join(r['notes'])}" for r in table)
            parts += ["<h3>Layers touched</h3>", f"<pre>{esc(text)}</pre>"]
        for title, img in (("Metric against perturbation, per level", severity_plot(a)),
                           ("Drops by subgroup and level", drop_plot(a)),
                           ("Kernel spectra per level", spectra_plot(a)),
                           ("Fourier heat maps per subgroup", heat_map_plot(a)),
                           ("Example perturbed images", examples_plot(a))):
            if img:
                parts += [f"<h3>{esc(title)}</h3>", f"<img alt='{esc(title)}' src='{img}'>"]
        if a.get("placebos"):
            rows = "".join(f"<li>{esc(p['placebo'])}: effect {p['effect']:+.4f}, CI [{p['ci_low']:+.4f}, "
                           f"{p['ci_high']:+.4f}], p={p['p_value']:.3g}</li>" for p in a["placebos"])
            parts += ["<h3>Placebo checks</h3>", f"<ul>{rows}</ul>", f"<p>{esc(a.get('placebo_meaning', ''))}</p>"]
    parts.append(f"<p style='color:#888'>columns: {esc(', '.join(COLUMNS))}</p></body></html>")
    return "\n".join(parts)


def write_html(path: str | os.PathLike, audits: list[Mapping], environment: Mapping, settings: Mapping) -> Path:
    """Write the report atomically; create the folder if needed."""
    target = Path(path)
    return write_atomic(target, render_html(audits, environment, settings), "kernel-audit HTML report")
