"""The layer map's table: one row per arm (layer, level, perturbation), in network order or worst first.

Every arm's effect is one member of the audit's family (its interval is adjusted with all the others),
so the table reads the effects and verdicts the audit already has; it adds each layer's own kernel,
its position among the selected layers and what its reference is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

from ..intervention import AsBuilt, as_intervention


def is_layer_map(reference: object) -> bool:
    """Whether an audit is a layer map: its reference is the architecture as built."""
    return isinstance(reference, AsBuilt)


def layer_map_rows(all_effects: Mapping, verdicts: Mapping, own_kernels: Mapping[str, int],
                   inputs: Mapping[str, Sequence[int]] | None = None, spectral: Mapping | None = None) -> list[dict]:
    """One row per arm, in network order (the selection's order), each with its effect, interval, adjusted p
    and verdict; `own_kernels` maps each selected layer to its kernel as built, `inputs` to the (H, W) it sees.

    `spectral` (level -> subgroup -> Effect) adds `hf_shift`: per subgroup, the arm's effect on the
    high-frequency share of its own layer's activations, the mechanism beside the outcome.
    """
    order = {name: i for i, name in enumerate(own_kernels)}
    rows = []
    for (perturbation, level), e in all_effects.items():
        change = as_intervention(level)
        layer = change.layer
        rows.append({
            "layer": layer, "position": order[layer] + 1, "own_kernel": own_kernels[layer],
            "input": "x".join(map(str, (inputs or {}).get(layer, ()))) or None,
            "level": str(replace(change, layer=None)), "perturbation": perturbation,
            "reference": f"as built (kernel_size={own_kernels[layer]})",
            "effect": e.estimate, "ci_low": e.ci[0], "ci_high": e.ci[1], "confidence": e.confidence, "seeds": e.n,
            "p_adjusted": e.p_adjusted, "verdict": verdicts[(perturbation, level)],
            "hf_shift": {g: {"effect": s.estimate, "ci_low": s.ci[0], "ci_high": s.ci[1], "confidence": s.confidence}
                         for g, s in (spectral or {}).get(level, {}).items()},
        })
    return sorted(rows, key=lambda r: (r["position"], r["level"], r["perturbation"]))


def broken(rows: list[dict]) -> list[str]:
    """The layers with an arm whose verdict is fail, in network order, once each."""
    return list(dict.fromkeys(r["layer"] for r in rows if r["verdict"] == "fail"))
