"""The statistics an audit uses, for auditors who compute effects from their own outcomes.

`paired_effect` and `estimate_effects` give `Effect`s with intervals, exact sign-flip p-values
and assertions; `run_sequential` is the one decision procedure every audit uses (a family of
per-seed differences in, the verdict out); `power`, `minimum_detectable_effect` and
`seeds_needed` plan a design; `holm` and `benjamini_hochberg` adjust p-values.
"""

from .analysis._decision import run_sequential
from .analysis._effects import Effect, paired_effect
from .analysis._estimand import Estimand
from .analysis._multiplicity import benjamini_hochberg, holm
from .analysis._outcomes import Outcome, Outcomes, estimate_effects
from .analysis._power import minimum_detectable_effect, power, seeds_needed
from .analysis._sequential import SequentialDesign

__all__ = ["Effect", "Estimand", "Outcome", "Outcomes", "SequentialDesign", "benjamini_hochberg",
           "estimate_effects", "holm", "minimum_detectable_effect", "paired_effect", "power", "run_sequential",
           "seeds_needed"]
