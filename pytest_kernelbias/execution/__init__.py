"""Turning a plan into trained weights: the `Executor` registry (serial, seed-batched, pool, Ray) and stores."""

from __future__ import annotations

from .._lazy import lazy_api

# Each name this part offers and the module that defines it; loaded on first use (_lazy.py).
_HOMES = {
    **dict.fromkeys(["check_recipe", "choose_executor", "Executor", "executor_names", "pending",
                     "trains_remotely"], "._base"),
    **dict.fromkeys(["fit_max_seeds", "minutes", "parse_budget", "read_estimate", "write_estimate"], "._budget"),
    **dict.fromkeys(["eta_text", "StepTimes"], "._estimate"),
    **dict.fromkeys(["TrainingJob"], "._job"),
    **dict.fromkeys(["RunLedger"], "._ledger"),
    **dict.fromkeys(["audit_device", "ray_options", "RayOptions", "report_options"], "._ray_options"),
    **dict.fromkeys(["choose_config", "probe_lr"], "._recipe"),
    **dict.fromkeys(["MemoryStore", "variant_key", "VariantCache"], "._store"),
    **dict.fromkeys(["AUDIT_THREADS", "audit_threads", "default_workers", "key_environment"], "._threads"),
}
__getattr__, __dir__ = lazy_api(__name__, _HOMES)
__all__ = sorted(_HOMES)
