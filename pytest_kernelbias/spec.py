"""`AuditSpec`: everything an audit was asked to do, as frozen, self-validating data.

Each sub-spec checks its own settings when it is built, so a complete
`AuditSpec` is a valid one, and every error names the setting, the value and
the fix before any model trains. `AuditSpec.from_kwargs` maps the flat keyword
arguments of `run_audit` (and of the `kernel_audit` marker) onto the sub-specs.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Literal, Mapping, Sequence, get_args

from torch import nn

from . import _defaults
from ._devices import resolve_device
from .analysis import (
    CORRECTIONS,
    DEFAULT_FUTILITY,
    METHODS,
    Estimand,
    SequentialDesign,
    check_can_decide,
    check_confidence,
    check_rule,
    check_seeds,
    check_threshold,
    look_confidences,
)
from .data import CONFIGS, SubgroupDataset, SynthFacesConfig
from .errors import AuditConfigError
from .evaluation import METRICS, as_perturbations
from .execution import (
    RayOptions,
    RunLedger,
    audit_device,
    check_recipe,
    default_workers,
    executor_names,
    parse_budget,
    ray_options,
)
from .intervention import Each, Select, check_init, check_levels
from .perturbations import LowPass, Perturbation
from .training import Progress, TrainConfig

Trainer = Callable[[nn.Module, SubgroupDataset, int], nn.Module]
Placebo = Literal["shuffle", "aa"]
PLACEBOS: tuple[str, ...] = get_args(Placebo)
HEAT_MAP_KEYS = {"eps": float, "step": int, "images": int}


def _stderr(msg: str) -> None:
    print(f"[kernel-audit] {msg}", file=sys.stderr, flush=True)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_layer_spec(layer: object) -> bool:
    if isinstance(layer, Each):
        return _is_layer_spec(layer.selection)
    if isinstance(layer, str):
        return bool(layer)
    if isinstance(layer, (Select, Sequence)) or callable(layer):
        return not isinstance(layer, Sequence) or (len(layer) > 0 and all(isinstance(n, str) for n in layer))
    return False


@dataclass(frozen=True)
class TargetSpec:
    """What is intervened on: the model, its layer(s), the levels (first = reference unless given) and init."""

    model: object
    layer: object
    levels: tuple
    reference: object = None
    init: str = "fresh"

    def __post_init__(self) -> None:
        if isinstance(self.levels, (str, bytes)) or not isinstance(self.levels, Sequence):
            raise AuditConfigError(f"levels must be a list of kernel sizes or interventions, e.g. [3, 7]; "
                                   f"got {self.levels!r}")
        object.__setattr__(self, "levels", tuple(self.levels))
        check_levels(self.levels, self.reference, layer_map=isinstance(self.layer, Each))
        if not _is_layer_spec(self.layer):
            raise AuditConfigError(f"layer must name the conv(s) to intervene on: a name or glob ('conv1', "
                                   f"'layer1.*.conv2'), a list of those, 'stem', 'all', a Select or a predicate "
                                   f"(name, module) -> bool; got {self.layer!r}")
        check_init(self.init)

    @property
    def reference_level(self) -> object:
        """k0: the level every other level is compared with."""
        return self.levels[0] if self.reference is None else self.reference

    @property
    def treatments(self) -> list:
        if isinstance(self.layer, Each) and len(self.levels) == 1:
            return list(self.levels)  # a map's one level, against the architecture as built (arms come later)
        return [level for level in self.levels if level != self.reference_level]


@dataclass(frozen=True)
class DataSpec:
    """The training and test sets, the subgroup attributes, and the perturbations (name -> perturbation)."""

    data: object = "planted"
    test_data: SubgroupDataset | None = None
    attributes: tuple[str, ...] = ("skin_tone",)
    perturbations: Mapping[str, Perturbation] = field(default_factory=lambda: as_perturbations(LowPass(0.4)))
    min_group_size: int = 30  # test images per subgroup below which the audit warns (or refuses)
    on_small_group: str = "warn"  # "warn" or "error"

    def __post_init__(self) -> None:
        if not _is_int(self.min_group_size) or self.min_group_size < 1:
            raise AuditConfigError(f"min_group_size must be an int >= 1 (test images per subgroup), got "
                                   f"{self.min_group_size!r}")
        if self.on_small_group not in ("warn", "error"):
            raise AuditConfigError(f"on_small_group must be 'warn' or 'error', got {self.on_small_group!r}")
        if isinstance(self.data, str) and self.data not in CONFIGS:
            raise AuditConfigError(f"data={self.data!r} is not a SynthFaces configuration; use one of "
                                   f"{sorted(CONFIGS)}, or data=<training SubgroupDataset> with test_data=")
        if not isinstance(self.data, (str, SynthFacesConfig, SubgroupDataset)):
            raise AuditConfigError(f"data must be a SynthFaces configuration name or a SubgroupDataset, got "
                                   f"{type(self.data).__name__}; wrap a torch Dataset with from_torch_dataset()")
        if isinstance(self.data, SubgroupDataset) and not isinstance(self.test_data, SubgroupDataset):
            raise AuditConfigError("pass test_data= alongside a training dataset (the audit never tests on "
                                   "training images)")
        attrs = (self.attributes,) if isinstance(self.attributes, str) else tuple(self.attributes)
        if not attrs or not all(isinstance(a, str) and a for a in attrs):
            raise AuditConfigError(f"attributes must name one or more subgroup attributes, e.g. 'skin_tone' or "
                                   f"['skin_tone', 'gender']; got {self.attributes!r}")
        object.__setattr__(self, "attributes", attrs)
        object.__setattr__(self, "perturbations", as_perturbations(self.perturbations))


@dataclass(frozen=True)
class RecipeSpec:
    """How each variant is trained: seeds per level, the recipe or a user's trainer, pairing and device."""

    seeds: int | str = _defaults.SEEDS  # min_seeds, then seed_round more per level while undecided; or a fixed count
    train_config: TrainConfig | str = "auto"  # "auto": the preset the model's normalization layers pick
    trainer: Trainer | None = None
    cache_key: str | None = None  # a version the user bumps for what the cache cannot fingerprint (a trainer's)
    seed_offset: int = 0  # the first seed: a follow-up audit on seeds no earlier audit has seen
    paired: bool = True
    device: str = _defaults.DEVICE  # cuda when available, else cpu: the same default as under pytest
    min_seeds: int = 3
    max_seeds: int = 16  # lets a family of a few effects at tau = 0 pass (docs/statistics.md, sequential seeds)
    seed_round: int = 1
    boundary: str = "pocock"  # how the looks share alpha: "pocock", "obrien-fleming" or "bonferroni"
    futility: float = DEFAULT_FUTILITY  # stop undecided early when max_seeds would settle it with less chance
    budget: str | float | None = None  # seeds="auto": max_seeds cut to what trains in this time ("10m")
    lr_probe: bool = False  # a short lr range test on the reference model picks the peak lr (cached)

    def __post_init__(self) -> None:
        if self.seeds == "auto":
            _ = self.design  # building the SequentialDesign checks each setting, naming the fix
        else:
            check_seeds(self.seeds)
        if parse_budget(self.budget) is not None and self.seeds != "auto":
            raise AuditConfigError(f"budget={self.budget!r} sets how many seeds seeds='auto' may train; with a fixed "
                                   f"seeds={self.seeds} drop budget, or use seeds='auto'")
        if not isinstance(self.train_config, TrainConfig) and self.train_config != "auto":
            raise AuditConfigError(f"train_config must be a TrainConfig, e.g. TrainConfig(epochs=4), or 'auto' (the "
                                   f"preset for the model's normalization layers); got {self.train_config!r}")
        if not isinstance(self.lr_probe, bool):
            raise AuditConfigError(f"lr_probe must be True or False, got {self.lr_probe!r}")
        if self.trainer is not None and not callable(self.trainer):
            raise AuditConfigError(f"trainer must be a function train(model, data, seed) -> model, got "
                                   f"{self.trainer!r}")
        if not isinstance(self.paired, bool):
            raise AuditConfigError(f"paired must be True or False, got {self.paired!r}")
        if isinstance(self.seed_offset, bool) or not isinstance(self.seed_offset, int) or self.seed_offset < 0:
            raise AuditConfigError(f"seed_offset is the audit's first seed, a whole number >= 0 (e.g. the seeds an "
                                   f"undecided audit used, for a follow-up on fresh seeds); got {self.seed_offset!r}")
        if self.cache_key is not None and (not isinstance(self.cache_key, str) or not self.cache_key):
            raise AuditConfigError(f"cache_key names a version of your trainer for the cache, a non-empty string "
                                   f"such as 'v2'; got {self.cache_key!r}")
        object.__setattr__(self, "device", resolve_device(self.device))

    @property
    def design(self) -> SequentialDesign | None:
        """The sequential design of seeds="auto", else None."""
        if self.seeds != "auto":
            return None
        return SequentialDesign(self.min_seeds, self.max_seeds, self.seed_round, self.boundary, self.futility)

    @property
    def most_seeds(self) -> int:
        return self.max_seeds if self.seeds == "auto" else self.seeds  # type: ignore[return-value]

    @property
    def decision_design(self) -> SequentialDesign:
        """The design verdicts are decided under: seeds="auto"'s looks, or one look at a fixed seed count."""
        return self.design or SequentialDesign(self.seeds, self.seeds)  # type: ignore[arg-type]


@dataclass(frozen=True)
class InferenceSpec:
    """How effects are estimated and judged: metric, interval, multiplicity, threshold, rule, placebos."""

    metric: str = "accuracy"
    confidence: float = 0.95
    interval: str = "t"
    correction: str = "holm"
    threshold: float = _defaults.THRESHOLD
    rule: str = _defaults.RULE
    warn_tier: bool = True
    strict: bool = _defaults.STRICT  # a "warn" or "undecided" verdict fails the test too (for merge gates)
    test_noise: bool = True  # the t interval counts the finite test set's noise (analysis/_test_noise.py)
    placebos: tuple[str, ...] = ("shuffle",)
    require_learning: bool = True  # no verdict on models whose clean accuracy is at the majority-class rate
    learning_gain: float = 0.05  # warn when clean accuracy is less than this above the majority-class rate

    def __post_init__(self) -> None:
        for name, value, allowed in (("metric", self.metric, METRICS), ("interval", self.interval, METHODS),
                                     ("correction", self.correction, CORRECTIONS)):
            if value not in allowed:
                raise AuditConfigError(f"{name} must be one of {allowed}, got {value!r}")
        check_confidence(self.confidence)
        object.__setattr__(self, "threshold", check_threshold(self.threshold))
        check_rule(self.rule)
        placebos = (self.placebos,) if isinstance(self.placebos, str) else tuple(self.placebos)
        unknown = [p for p in placebos if p not in PLACEBOS]
        if unknown:
            raise AuditConfigError(f"unknown placebo {unknown[0]!r}; choose from {PLACEBOS}")
        object.__setattr__(self, "placebos", placebos)
        for name in ("require_learning", "strict", "test_noise", "warn_tier"):
            if not isinstance(getattr(self, name), bool):
                raise AuditConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.learning_gain, bool) or not isinstance(self.learning_gain, (int, float)) \
                or not 0 <= self.learning_gain < 1:
            raise AuditConfigError(f"learning_gain must lie in [0, 1) (accuracy above the majority-class rate), "
                                   f"got {self.learning_gain!r}")


@dataclass(frozen=True)
class MechanismSpec:
    """What of the mechanism is measured: activation spectra above `spectral_cutoff`, Fourier heat maps."""

    spectral_cutoff: float | None = 0.5  # a fraction of Nyquist; None measures no spectra
    heat_map: Mapping[str, float] | None = None  # e.g. dict(eps=4.0, step=4, images=256)

    def __post_init__(self) -> None:
        c = self.spectral_cutoff
        if c is not None and (isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c <= 1):
            raise AuditConfigError(f"spectral_cutoff must be a fraction of Nyquist in (0, 1], or None to skip "
                                   f"spectra; got {c!r}")
        if self.heat_map is None:
            return
        if not isinstance(self.heat_map, Mapping):
            raise AuditConfigError(f"heat_map must be a dict like dict(eps=4.0, step=4, images=256), got "
                                   f"{self.heat_map!r}")
        unknown = sorted(set(self.heat_map) - set(HEAT_MAP_KEYS))
        if unknown:
            raise AuditConfigError(f"heat_map has unknown key {unknown[0]!r}; valid keys are {sorted(HEAT_MAP_KEYS)}")
        for key, value in self.heat_map.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                    or not math.isfinite(value):
                raise AuditConfigError(f"heat_map[{key!r}] must be a positive number, got {value!r}")
        full = {"eps": 4.0, "step": 4, "images": 256, **self.heat_map}
        object.__setattr__(self, "heat_map", {k: HEAT_MAP_KEYS[k](v) for k, v in full.items()})


@dataclass(frozen=True)
class ExecutionSpec:
    """Where and how variants train: executor, workers, Ray address, cache, retrain; and progress output."""

    executor: str = _defaults.EXECUTOR
    workers: int | None = _defaults.WORKERS  # None: one per usable core (shared out under pytest-xdist)
    ray_address: str | None = None
    ray_options: RayOptions | Mapping | str | None = None  # per-task Ray settings (execution/_ray_options.py)
    cache: str | os.PathLike | object | None = None
    retrain: bool = _defaults.RETRAIN
    progress: Progress | None = _stderr
    ledger: RunLedger | None = None  # filled with what the audit trained, for the report of one that raises

    def __post_init__(self) -> None:
        if self.executor not in executor_names():
            raise AuditConfigError(f"executor must be one of {executor_names()}, got {self.executor!r}")
        if self.workers is None:
            object.__setattr__(self, "workers", default_workers())
        if not _is_int(self.workers) or self.workers < 1:
            raise AuditConfigError(f"workers must be an int >= 1, or None for one per usable core; got "
                                   f"{self.workers!r}")
        object.__setattr__(self, "ray_options", ray_options(self.ray_options))
        if self.ray_address is not None and not isinstance(self.ray_address, str):
            raise AuditConfigError(f"ray_address must be HOST:PORT, ray://HOST:PORT or 'auto', got "
                                   f"{self.ray_address!r}")
        if not isinstance(self.retrain, bool):
            raise AuditConfigError(f"retrain must be True or False, got {self.retrain!r}")
        if self.ledger is not None and not isinstance(self.ledger, RunLedger):
            raise AuditConfigError(f"ledger must be an execution.RunLedger or None; got {self.ledger!r}")
        if self.progress is not None and not callable(self.progress):
            raise AuditConfigError(f"progress must be a function of one message string, or None; got "
                                   f"{self.progress!r}")


# run_audit's keyword argument -> (sub-spec, its field); the only place the flat names are mapped.
_KEYWORDS: dict[str, tuple[str, str]] = {
    **{f.name: ("target", f.name) for f in fields(TargetSpec) if f.name not in ("model", "layer", "levels")},
    **{f.name: ("data", f.name) for f in fields(DataSpec) if f.name != "perturbations"},
    "perturbation": ("data", "perturbations"),
    **{f.name: ("recipe", f.name) for f in fields(RecipeSpec)},
    "bias": ("estimand", "form"), "contrast": ("estimand", "contrast"), "outcome": ("estimand", "outcome"),
    **{f.name: ("inference", f.name) for f in fields(InferenceSpec)},
    **{f.name: ("mechanism", f.name) for f in fields(MechanismSpec)},
    **{f.name: ("execution", f.name) for f in fields(ExecutionSpec)},
    "name": ("audit", "name"),
}
AUDIT_KEYWORDS: tuple[str, ...] = tuple(sorted(_KEYWORDS))


def check_keywords(names: Sequence[str], where: str = "run_audit") -> None:
    """Refuse keyword arguments that are not audit settings, naming the closest valid one."""
    for name in names:
        if name not in _KEYWORDS:
            close = difflib.get_close_matches(name, AUDIT_KEYWORDS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise AuditConfigError(f"{where} got an unknown setting {name!r}; {hint}valid settings are "
                                   f"{', '.join(AUDIT_KEYWORDS)}")


@dataclass(frozen=True)
class AuditSpec:
    """One audit, fully specified and validated: build it, then `run_audit(spec)` or `execute(spec)`."""

    target: TargetSpec
    data: DataSpec = DataSpec()
    recipe: RecipeSpec = RecipeSpec()
    estimand: Estimand = Estimand()
    inference: InferenceSpec = InferenceSpec()
    mechanism: MechanismSpec = MechanismSpec()
    execution: ExecutionSpec = ExecutionSpec()
    name: str = "audit"

    def with_arms(self, levels: Sequence, reference: object) -> "AuditSpec":
        """This spec with a layer map's arms as its levels and the architecture as built as its reference: what the
        audit runs once the model has told which layers the selection picks (the design is checked again)."""
        target = TargetSpec(self.target.model, self.target.layer, tuple(levels), reference, self.target.init)
        return AuditSpec(target, self.data, self.recipe, self.estimand, self.inference, self.mechanism,
                         self.execution, self.name)

    @property
    def family(self) -> int:
        """The effects the verdict rests on: treated levels x perturbations."""
        return len(self.target.treatments) * len(self.data.perturbations)

    def __post_init__(self) -> None:
        inference = self.inference
        # seeds="auto" is checked at its last look, at that look's level.
        level = look_confidences(self.recipe.decision_design, inference.confidence, self.family)[-1]
        check_can_decide(inference.rule, inference.interval, self.recipe.most_seeds, self.family, level)
        check_recipe(self.execution.executor, self.recipe.trainer)

    @classmethod
    def from_kwargs(cls, model: object, layer: object, levels: Sequence, **kwargs: Any) -> "AuditSpec":
        """The spec of `run_audit(model, layer, levels, **kwargs)`; unknown or invalid settings are refused."""
        check_keywords(list(kwargs))
        parts: dict[str, dict[str, Any]] = {}
        for key, value in kwargs.items():
            part, name = _KEYWORDS[key]
            parts.setdefault(part, {})[name] = value
        execution = parts.get("execution", {})
        if "executor" in execution:  # remote tasks' GPUs, not this machine's, decide device="auto" there
            recipe = parts.setdefault("recipe", {})
            recipe["device"] = audit_device(execution["executor"], execution.get("ray_options"),
                                            recipe.get("device", "auto"))
        if parts.get("data", {}).get("perturbations", 0) is None:
            del parts["data"]["perturbations"]  # perturbation=None means the default LowPass(0.4)
        built = {"target": TargetSpec(model, layer, levels, **parts.get("target", {}))}
        for part, kind in (("data", DataSpec), ("recipe", RecipeSpec), ("estimand", Estimand),
                           ("inference", InferenceSpec), ("mechanism", MechanismSpec),
                           ("execution", ExecutionSpec)):
            if part in parts:
                built[part] = kind(**parts[part])
        return cls(**built, **parts.get("audit", {}))
