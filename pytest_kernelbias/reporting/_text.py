"""The terminal summary table: one row per audit effect."""

from __future__ import annotations

from typing import Iterable, Mapping

COLUMNS = ("test", "contrast", "perturbation", "effect", "95% CI", "p", "p adj", "threshold", "verdict")


def summary_lines(audits: Iterable[Mapping]) -> list[str]:
    """One row per (audit, treated level): the terminal summary's body."""
    rows, notes = [], []
    for audit in audits:
        for e in audit["effects"]:
            verdict = e["verdict"]
            if audit.get("test_outcome") in ("xfailed", "xpassed"):
                verdict += f" ({audit['test_outcome']})"
            p_adj = "" if e.get("p_adjusted") is None else f"{e['p_adjusted']:.3g}"
            rows.append((
                audit["test"], e["contrast"], e["perturbation"], f"{e['effect']:+.4f}",
                f"[{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]", f"{e['p_value']:.3g}", p_adj,
                f"{e['threshold']:g} ({e['rule']})", verdict,
            ))
            if e.get("note"):
                notes.append(f"warn: {audit['test']} {e['contrast']}: passed; {e['note']}")
    if not rows:
        return []
    widths = [max(len(str(r[i])) for r in rows + [COLUMNS]) for i in range(len(COLUMNS))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*COLUMNS), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows]
    return [line.rstrip() for line in lines] + notes
