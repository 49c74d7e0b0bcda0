"""The statistics an audit uses, for auditors who compute effects from their own outcomes.

`paired_effect` and `estimate_effects` give `Effect`s with intervals, exact sign-flip p-values
and assertions; `run_sequential` is the one decision procedure every audit uses (a family of
per-seed differences in, the verdict out); `power`, `minimum_detectable_effect` and
`seeds_needed` plan a design; `holm` and `benjamini_hochberg` adjust p-values.
"""

from .analysis import (
           Effect,
           Estimand,
           Outcome,
           Outcomes,
           SequentialDesign,
           benjamini_hochberg,
           estimate_effects,
           holm,
           minimum_detectable_effect,
           paired_effect,
           power,
           run_sequential,
           seeds_needed,
)

__all__ = ["Effect", "Estimand", "Outcome", "Outcomes", "SequentialDesign", "benjamini_hochberg",
           "estimate_effects", "holm", "minimum_detectable_effect", "paired_effect", "power", "run_sequential",
           "seeds_needed"]
