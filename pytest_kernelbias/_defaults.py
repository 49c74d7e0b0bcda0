"""The defaults of the settings a pytest option can set, in one leaf module (standard library only).

The spec dataclasses and the pytest options both read them here, so the two never disagree, and the
plugin reads them without importing torch (a pytest run without audits loads none of the audit).
"""

SEEDS = "auto"  # RecipeSpec.seeds
DEVICE = "auto"  # RecipeSpec.device
THRESHOLD = 0.05  # InferenceSpec.threshold
RULE = "evidence"  # InferenceSpec.rule
STRICT = False  # InferenceSpec.strict
EXECUTOR = "local"  # ExecutionSpec.executor
WORKERS = None  # ExecutionSpec.workers: one per usable core
RETRAIN = False  # ExecutionSpec.retrain
