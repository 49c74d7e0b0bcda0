"""The terminal summary table: one row per audit effect."""

from __future__ import annotations

from typing import Iterable, Mapping

COLUMNS = ("test", "contrast", "perturbation", "effect", "95% CI", "p", "p adj", "threshold", "verdict",
           "gap at k0", "clean acc k0/k (majority)")


def _context(e: Mapping) -> tuple[str, str]:
    """The gap at the reference level and the clean accuracies, shown beside the effect of k."""
    gap = "" if e.get("gap") is None else f"{e['gap']:+.4f} [{e['gap_ci_low']:+.4f}, {e['gap_ci_high']:+.4f}]"
    if e.get("clean_reference") is None:
        return gap, ""
    return gap, f"{e['clean_reference']:.3f}/{e['clean_level']:.3f} ({e['majority']:.3f})"


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
                f"{e['threshold']:g} ({e['rule']})", verdict, *_context(e),
            ))
            if e.get("note"):
                notes.append(f"warn: {audit['test']} {e['contrast']}: passed; {e['note']}")
    if not rows:
        return []
    widths = [max(len(str(r[i])) for r in rows + [COLUMNS]) for i in range(len(COLUMNS))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*COLUMNS), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows]
    return [line.rstrip() for line in lines] + notes
