"""Do an audit's variants share one numeric environment? On a Ray cluster each task measures its own.

A local audit keys every variant by this machine's numeric environment (`numeric_environment`), so a
variant never meets one trained elsewhere. A Ray audit cannot know before training which node runs which
seed: each task measures its node (CPU capability or GPU model, torch / CUDA / cuDNN versions,
determinism switches) and the entry records it. A paired difference between two variants trained in
different environments mixes the level's effect with the environments' rounding, so such an audit is
refused unless the user allows it, and then the report says so.
"""

from __future__ import annotations

import json
import warnings
from typing import Sequence

from .._variant import Variant
from ..errors import KernelAuditWarning, MixedEnvironmentError

NOT_RECORDED = "not recorded"


def _text(env: object) -> str:
    return json.dumps(env, sort_keys=True) if env is not None else NOT_RECORDED


def _differing(groups: Sequence[dict]) -> list[str]:
    """The environment keys whose values differ between the groups."""
    keys = sorted({k for g in groups for k in (g["environment"] or {})})
    return [k for k in keys if len({json.dumps((g["environment"] or {}).get(k)) for g in groups}) > 1]


def environments(variants: Sequence[Variant], store) -> list[dict]:
    """The distinct environments the variants were trained in, each with its nodes and variants."""
    groups: dict[str, dict] = {}
    for v in variants:
        where = store.trained_on(v.key) or {}
        env = where.get("environment")
        group = groups.setdefault(_text(env), {"environment": env, "nodes": [], "variants": []})
        node = where.get("host") or where.get("node") or "unknown node"
        if node not in group["nodes"]:
            group["nodes"].append(node)
        group["variants"].append(v.label)
    return list(groups.values())


def check_environments(variants: Sequence[Variant], store, allow: bool) -> dict:
    """The report's record of where the variants trained; raises when they mix environments and `allow` is off."""
    groups = environments(variants, store)
    record = {"mixed": len(groups) > 1, "allowed": allow,
              "environments": [{"environment": g["environment"], "nodes": g["nodes"], "variants": len(g["variants"])}
                               for g in groups]}
    if len(groups) <= 1:
        return record
    keys = _differing(groups)
    lines = "; ".join(f"{len(g['variants'])} variant(s) on {', '.join(map(str, g['nodes']))} with "
                      + ", ".join(f"{k}={(g['environment'] or {}).get(k)!r}" for k in keys or ["environment"])
                      + f" (e.g. {g['variants'][0]})" for g in groups)
    message = (f"this audit's variants were trained in {len(groups)} numeric environments ({lines}): a paired "
               f"difference between them mixes the kernel size's effect with how the nodes round")
    if not allow:
        raise MixedEnvironmentError(
            message + ". Pin the tasks to alike nodes (ray_options resources= or scheduling_strategy=), or set "
            "ray_options allow_mixed_environments=True to compare them anyway (the report marks the audit); the "
            "trained variants stay in the cache")
    warnings.warn(KernelAuditWarning(message + "; compared anyway (allow_mixed_environments=True)"), stacklevel=3)
    return record

