"""From evaluations to effects: outcomes, the estimand, paired effects, power, multiplicity, placebos."""
