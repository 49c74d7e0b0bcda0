"""From evaluations to effects: outcomes, the estimand, paired effects, power, multiplicity, placebos."""

from __future__ import annotations

from .._lazy import lazy_api

# Each name this part offers and the module that defines it; loaded on first use (_lazy.py).
_HOMES = {
    **dict.fromkeys(["FollowUp", "open_note"], "._advice"),
    **dict.fromkeys(["Analysis", "analyze"], "._analyze"),
    **dict.fromkeys(["Decision", "EffectKey", "OPEN"], "._checks"),
    **dict.fromkeys(["check_confidence", "check_rule", "check_seeds", "check_threshold", "level_text", "RULE_MEANING",
                     "VERDICT_RANK"], "._checks"),
    **dict.fromkeys(["run_sequential", "SequentialPath"], "._decision"),
    **dict.fromkeys(["check_can_decide", "narrowest_half_width", "seeds_to_pass_upper"], "._design"),
    **dict.fromkeys(["Effect", "METHODS", "paired_effect"], "._effects"),
    **dict.fromkeys(["Estimand"], "._estimand"),
    **dict.fromkeys(["hierarchical_bootstrap"], "._estimators"),
    **dict.fromkeys(["chance_text", "DEFAULT_FUTILITY"], "._futility"),
    **dict.fromkeys(["broken", "is_layer_map", "layer_map_rows"], "._layer_map"),
    **dict.fromkeys(["partial_learning"], "._learning"),
    **dict.fromkeys(["benjamini_hochberg", "CORRECTIONS", "holm"], "._multiplicity"),
    **dict.fromkeys(["estimate_effects", "Outcome", "Outcomes"], "._outcomes"),
    **dict.fromkeys(["minimum_detectable_effect", "power", "seeds_needed"], "._power"),
    **dict.fromkeys(["look_confidences", "SequentialDesign"], "._sequential"),
}
__getattr__, __dir__ = lazy_api(__name__, _HOMES)
__all__ = sorted(_HOMES)
