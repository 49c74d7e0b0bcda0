"""A self-contained HTML report built for reading: verdict cards first, then every effect in one table,
then one section per audit with its design, every result it computed and its figures.

Built from the same audit records as the JSON report, so under pytest-xdist the controller renders
one report from every worker's results. Nothing is fetched from elsewhere: the styles are inline,
figures are PNG data URIs and forest rows inline SVG. The layout wraps rather than scrolls: at 1280 px
or wider nothing is clipped and the page never scrolls sideways; a table too wide for a narrower
window scrolls inside its own card.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from ._files import write_atomic
from ._html_audit import anchor, audit_section
from ._html_cards import audit_card, legend, problem_card, status_line, summary_table
from ._html_parts import esc
from ._json import COMPLETE

# Report text (test ids, subgroup values, perturbation names) is data, never markup: with "$" in it,
# matplotlib would parse it as mathtext (or LaTeX under a user's usetex) and fail or garble it. The rc
# default reaches every Text the figures create: titles, axis and tick labels, legends, colour bars.
PLAIN_TEXT = {"text.parse_math": False, "text.usetex": False}

STYLE = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#1f2328;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1240px;margin:0 auto;padding:12px 20px 40px}
h1{font-size:1.6em;margin:.4em 0 .2em}
h2{font-size:1.25em;margin:.2em 0 .4em}
h3{font-size:1.05em;margin:1.1em 0 .35em}
.card{background:#fff;border:1px solid #d6d9de;border-radius:8px;padding:12px 16px;margin:14px 0;min-width:0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,540px),1fr));gap:14px;margin:12px 0}
.cards .card{margin:0;border-left:6px solid #8c959f}
.ov-pass{border-left-color:#1a7f37!important}.ov-warn{border-left-color:#d97a00!important}
.ov-fail{border-left-color:#c62828!important}
.ov h3{margin:0 0 .3em}.ov p{margin:.35em 0}
.id,.lbl{overflow-wrap:anywhere}
a.id{color:inherit}
.tw{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:13.5px;margin:.2em 0 .6em}
th,td{padding:4px 7px;border-bottom:1px solid #e3e5e8;text-align:left;vertical-align:top}
thead th{background:#f0f2f5;font-weight:600}
tr.hn td{border-bottom:none}tr.noterow td{padding-top:0;color:#555;font-size:.92em}
tr.grp th{background:#f8f9fb;border-top:2px solid #c9ced4;font-weight:600;padding-top:7px}
table.kv th{width:12em;background:none;font-weight:600;color:#444}
table.mini td,table.mini th{padding:3px 6px}
.strip{margin-bottom:6px}
.n{white-space:nowrap;font-variant-numeric:tabular-nums}
.dim{color:#656d76}.note{color:#555;font-size:.92em;margin:.15em 0 .45em}.k{font-weight:600}
.badge{display:inline-block;padding:0 8px;border-radius:10px;border:1px solid;font-size:.86em;font-weight:600;
  white-space:nowrap}
.b-pass{background:#dafbe1;color:#116329;border-color:#1a7f37}.b-warn{background:#fff1d6;color:#8a4600;border-color:#d97a00}
.b-fail{background:#ffe3e3;color:#b42318;border-color:#c62828}.b-ok{background:#eef1f4;color:#24292f;border-color:#8c959f}
.b-bad{background:#b42318;color:#fff;border-color:#b42318}.b-expected{background:#f1e8ff;color:#5a32a3;border-color:#8250df}
.b-other{background:#fff;color:#57606a;border-color:#8c959f}
.v-pass{color:#1a7f37;font-weight:600}.v-warn{color:#b35900;font-weight:600}.v-fail{color:#c62828;font-weight:600}
.warnline{background:#fff1d6;border-left:3px solid #d97a00;padding:4px 8px;color:#5c3100}
.lv{white-space:nowrap}.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.35em;vertical-align:-.05em}
.forest{vertical-align:middle;max-width:100%}
img{max-width:100%;height:auto}img.px{image-rendering:pixelated}
figure{margin:0;min-width:0}figcaption{font-weight:600;margin-bottom:4px}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,540px),1fr));gap:18px 24px;margin-top:16px}
.figs .wide{grid-column:1/-1}
details summary{cursor:pointer;font-weight:600;margin:.6em 0 .3em}
ul.inline{display:block;margin:.2em 0 0;padding:0}ul.inline li{display:inline-block;margin-right:1.2em}
.incomplete{background:#fdd;border:2px solid #b00;padding:1em;font-weight:bold;border-radius:8px}
.legend,.status{margin:.3em 0}
"""


def render_html(audits: list[Mapping], environment: Mapping, settings: Mapping,
                status: Mapping = COMPLETE) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to PNG
    with matplotlib.rc_context(PLAIN_TEXT):
        return _render(audits, environment, settings, status)


def _banner(status: Mapping) -> list[str]:
    """A banner no reader can miss when the run was not whole."""
    if status["complete"]:
        return []
    return ["<p class='incomplete'>"
            f"INCOMPLETE REPORT: {esc(status.get('incomplete_reason') or 'the run did not finish')}. "
            "Only the audits that finished are shown; do not read this as the whole suite's result.</p>"]


def _run_card(environment: Mapping, settings: Mapping) -> str:
    env = " · ".join(f"{esc(k)} {esc(v)}" for k, v in environment.items())
    defaults = " · ".join(f"{esc(k)}={esc(v)}" for k, v in settings.items())
    return ("<section class='card'><h2>Run</h2>"
            f"<p><span class='k'>Environment</span> <span class='id'>{env}</span></p>"
            f"<p><span class='k'>Session defaults</span> <span class='id'>{defaults or 'none recorded'}</span></p>"
            "<p class='note'>A test's @pytest.mark.kernel_audit(...) or its own keyword arguments override these "
            "defaults; each audit's section lists the seeds, levels and recipe it actually used.</p></section>")


def _render(audits: list[Mapping], environment: Mapping, settings: Mapping, status: Mapping) -> str:
    title = "kernel audit report" + ("" if status["complete"] else " (INCOMPLETE)")
    problems = [a for a in audits if not a.get("effects")]  # errored, or never ran: a card, nothing to plot
    every, audits = audits, [a for a in audits if a.get("effects")]
    anchors = [anchor(i) for i in range(1, len(audits) + 1)]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{title}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{title[0].upper()}{title[1:]}</h1>", *_banner(status),
    ]
    if every:
        parts += [status_line(every), legend(), "<div class='cards'>", *(problem_card(a) for a in problems),
                  *(audit_card(a, anc) for a, anc in zip(audits, anchors)), "</div>"]
    if audits:
        parts += ["<section class='card'><h2>All effects against the threshold</h2>",
                  summary_table(audits, anchors), "</section>",
                  *(audit_section(a, i) for i, a in enumerate(audits, 1))]
    elif not every:
        parts.append("<p>No audit ran.</p>")
    parts += [_run_card(environment, settings), "</main></body></html>"]
    return "\n".join(parts)


def write_html(path: str | os.PathLike, audits: list[Mapping], environment: Mapping, settings: Mapping,
               status: Mapping = COMPLETE) -> Path:
    """Write the report atomically; create the folder if needed."""
    target = Path(path)
    return write_atomic(target, render_html(audits, environment, settings, status), "kernel-audit HTML report")
