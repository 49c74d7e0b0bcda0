"""The report's figures as PNG data URIs: one colour per level, one line style and marker per subgroup,
legends outside the data, intersectional subgroup labels wrapped at their '&'.

Figures are reduced to a small palette before embedding (flat plot colours survive it untouched),
which keeps the report a few hundred KB; example images are cut from the audit's pixels with PIL,
not drawn through matplotlib.
"""

from __future__ import annotations

import base64
import io
import textwrap
from collections import defaultdict
from typing import Iterable, Mapping

import numpy as np

from ._html_parts import SUBGROUP_MARKERS, SUBGROUP_STYLES, level_colour, levels_of, subgroups_of

DPI = 100
PANEL_COLUMNS = 4  # subgroup panels per row in the severity figure


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def png_width(uri: str) -> int:
    """The pixel width of a PNG data URI (from its IHDR header), to lay narrow figures out side by side."""
    header = base64.b64decode(uri.split(",", 1)[1][:32])
    return int.from_bytes(header[16:20], "big")


def _png(fig, colours: int = 128) -> str:
    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    image = Image.open(buf).convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return _uri(out.getvalue())


def wrap_label(text: str, width: int = 16) -> str:
    """A subgroup label on several lines: one attribute per line, each wrapped at `width` between words
    (an attribute=value pair is never cut inside)."""
    return "\n".join(line for part in text.split("&")
                     for line in textwrap.wrap(part, width, break_long_words=False) or [""])


def _group_style(audit: Mapping, group: str) -> dict:
    groups = subgroups_of(audit)
    i = groups.index(group) if group in groups else 0
    return {"linestyle": SUBGROUP_STYLES[i % len(SUBGROUP_STYLES)],
            "marker": SUBGROUP_MARKERS[i % len(SUBGROUP_MARKERS)]}


def _means(outcomes: Iterable[Mapping], key: str) -> dict:
    acc = defaultdict(list)
    for r in outcomes:
        acc[(r["level"], r["perturbation"], r["subgroup"])].append(r[key])
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0) for k, v in acc.items()}


def _level_legend(fig, audit: Mapping, levels: list[str]) -> None:
    """The levels' colours in one row above the panels, outside every axis."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=level_colour(audit, lv), lw=2.5) for lv in levels]
    fig.legend(handles, levels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(levels), 6),
               frameon=False, fontsize=9, title="level (colour)", title_fontsize=9)


def severity_plot(audit: Mapping) -> str | None:
    """The metric clean and under each perturbation: one panel per subgroup (its line style), one line per
    level (its colour), mean over seeds."""
    import matplotlib.pyplot as plt

    outcomes = audit.get("outcomes") or []
    if not outcomes:
        return None
    perturbed, clean = _means(outcomes, "perturbed"), _means(outcomes, "clean")
    perts, levels, groups = audit["perturbations"], levels_of(audit), subgroups_of(audit)
    cols = min(PANEL_COLUMNS, len(groups))
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 0.6, 2.5 * rows), sharey=True, squeeze=False)
    for ax, g in zip(axes.flat, groups):
        for level in levels:
            if (level, perts[0], g) not in clean:
                continue
            ys = [clean[(level, perts[0], g)][0]] + [perturbed[(level, p, g)][0] for p in perts]
            ax.plot(range(len(ys)), ys, color=level_colour(audit, level), **_group_style(audit, g), ms=4)
        ax.set_title(wrap_label(g, 24), fontsize=9)
        ax.set_xticks(range(len(perts) + 1), [wrap_label(t, 12) for t in ["clean", *perts]], rotation=30,
                      ha="right", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(f"{audit.get('settings', {}).get('metric', 'metric')}\n(mean over seeds)", fontsize=9)
    fig.tight_layout()
    _level_legend(fig, audit, levels)
    return _png(fig)


def drop_plot(audit: Mapping) -> str | None:
    """Each subgroup's drop (mean +- sd over seeds) per level, one panel per perturbation."""
    import matplotlib.pyplot as plt

    outcomes = audit.get("outcomes") or []
    if not outcomes:
        return None
    means = _means(outcomes, "drop")
    perts, levels, groups = audit["perturbations"], levels_of(audit), subgroups_of(audit)
    width = 0.8 / max(1, len(levels))
    cols = min(2, len(perts))  # two panels a row at most, so each subgroup keeps room for its label
    rows = -(-len(perts) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(min(11.0, 1.0 + cols * (1.1 * len(groups) + 0.8)), 3.2 * rows),
                             sharey=True, squeeze=False)
    for ax, pert in zip(axes.flat, perts):
        for li, level in enumerate(levels):
            for gi, g in enumerate(groups):
                if (level, pert, g) not in means:
                    continue
                mean, sd = means[(level, pert, g)]
                style = _group_style(audit, g)
                bars = ax.errorbar(gi + (li - (len(levels) - 1) / 2) * width, mean, yerr=sd, fmt=style["marker"],
                                   color=level_colour(audit, level), ms=5, capsize=3, elinewidth=1.6)
                bars[2][0].set_linestyle(style["linestyle"])
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(range(len(groups)), [wrap_label(g, 14) for g in groups], fontsize=8)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_title(f"under {pert}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(perts):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("drop (clean - perturbed)\nmean ± sd over seeds", fontsize=9)
    fig.tight_layout()
    _level_legend(fig, audit, levels)
    return _png(fig)


def spectra_plot(audit: Mapping) -> str | None:
    """Radial power spectrum of the intervened layer's kernels, one line per level (its colour)."""
    spectra = audit.get("kernel_spectra") or {}
    if not spectra:
        return None
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    fig, ax = plt.subplots(figsize=(4.8, 2.6))
    values = []
    for level, spectrum in spectra.items():
        s = np.asarray(spectrum, dtype=float) + 1e-12
        values += list(s)
        ax.plot(np.linspace(0, 1, len(s)), s, color=level_colour(audit, level), lw=2, label=level)
    if max(values) / max(min(values), 1e-12) > 20:  # a log axis only where the powers span decades
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        # Plain tick labels: the log axis' default ones are mathtext, which PLAIN_TEXT turns off.
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("frequency (fraction of Nyquist)")
    ax.set_ylabel("kernel power")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _level_legend(fig, audit, list(spectra))
    return _png(fig)


def heat_map_plot(audit: Mapping) -> str | None:
    """Fourier heat maps (error rate under a plane wave per frequency): a row per level, a column per subgroup."""
    maps = audit.get("heat_maps") or {}
    if not maps:
        return None
    import matplotlib.pyplot as plt

    levels, groups = list(maps), list(next(iter(maps.values())))
    size = 1.7 if len(groups) > 3 else 2.2
    fig, axes = plt.subplots(len(levels), len(groups), figsize=(size * len(groups) + 1.6, size * len(levels) + 0.4),
                             squeeze=False)
    for i, level in enumerate(levels):
        for j, g in enumerate(groups):
            ax = axes[i][j]
            im = ax.imshow(np.asarray(maps[level][g], dtype=float), vmin=0, vmax=1, cmap="magma")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(wrap_label(g, 16), fontsize=8)
            if j == 0:
                ax.set_ylabel(level, fontsize=8, color=level_colour(audit, level))
            for spine in ax.spines.values():
                spine.set_edgecolor(level_colour(audit, level))
                spine.set_linewidth(2)
    fig.colorbar(im, ax=axes, shrink=0.8, label="error rate")
    return _png(fig, colours=160)


def example_strips(audit: Mapping, height: int = 64) -> dict[str, str]:
    """Condition -> one PNG row of its example test images, each scaled to `height` pixels."""
    from PIL import Image

    strips = {}
    for condition, images in (audit.get("examples") or {}).items():
        tiles = []
        for img in images:
            array = np.clip(np.asarray(img, dtype=float), 0, 255).astype(np.uint8)
            array = array.transpose(1, 2, 0) if array.ndim == 3 else array
            tile = Image.fromarray(array.squeeze())
            scale = height / tile.height
            # Nearest-neighbour when enlarging: the perturbation's own blur is the thing to see.
            resample = Image.NEAREST if scale >= 1 else Image.LANCZOS
            tiles.append(tile.convert("RGB").resize((max(1, round(tile.width * scale)), height), resample))
        if not tiles:
            continue
        strip = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), height), "white")
        x = 0
        for tile in tiles:
            strip.paste(tile, (x, 0))
            x += tile.width + 4
        buf = io.BytesIO()
        strip.save(buf, format="PNG", optimize=True)
        strips[condition] = _uri(buf.getvalue())
    return strips
