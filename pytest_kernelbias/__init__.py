"""pytest-kernelbias: causal audits of how a CNN's kernel size changes subgroup bias.

The names below are the API the README teaches. Everything else has a home module:
`pytest_kernelbias.stats` (effects, power, the decision procedure), `.errors` (every error and
warning), `.spec` (the sub-specs), `.data`, `.intervention`, `.perturbations`, `.training`,
`.execution` and `.evaluation`.
"""

import importlib as _importlib
import warnings as _warnings
from typing import TYPE_CHECKING

from ._version import __version__ as __version__

if TYPE_CHECKING:  # the names below are imported on first use (see __getattr__); these lines are for type checkers
    from .audit import run_audit
    from .data import (
        SubgroupDataset,
        from_tensors,
        from_torch_dataset,
        load_celeba,
        load_csv_manifest,
        load_fairface,
        load_utkface,
        stratified_split,
        synthfaces,
    )
    from .errors import (
        AuditConfigError,
        AuditFailure,
        KernelAuditWarning,
        KernelBiasError,
        ModelsDidNotLearnError,
    )
    from .execution import VariantCache
    from .intervention import Dilation, KernelIntervention, KernelSize, Select, Stride, conv_layers, each
    from .models import SynthFacesCNN
    from .perturbations import (
        JPEG,
        BandPass,
        Compose,
        Downsample,
        GaussianBlur,
        GaussianNoise,
        HighPass,
        LowPass,
        Perturbation,
    )
    from .result import AuditResult, Verdict
    from .spec import AuditSpec
    from .training import TrainConfig

__all__ = [
    # the audit: spec -> run -> result
    "AuditSpec", "AuditResult", "Verdict", "run_audit",
    # which layer, which levels
    "KernelSize", "Dilation", "Stride", "Select", "KernelIntervention", "conv_layers", "each",
    # perturbations
    "Perturbation", "LowPass", "HighPass", "BandPass", "GaussianBlur", "GaussianNoise", "JPEG", "Downsample",
    "Compose",
    # data
    "SubgroupDataset", "SynthFacesCNN", "synthfaces", "load_fairface", "load_utkface", "load_celeba",
    "load_csv_manifest", "from_tensors", "from_torch_dataset", "stratified_split",
    # training and the cache
    "TrainConfig", "VariantCache",
    # errors and warnings (every one is in pytest_kernelbias.errors)
    "KernelBiasError", "KernelAuditWarning", "AuditFailure", "AuditConfigError", "ModelsDidNotLearnError",
]

# Each exported name's home module. They load on first use: pytest imports this package for the plugin in every
# run of a project that has it installed, and a run without audits must not pay for torch and scipy (docs/ci.md).
_HOMES = {
    **dict.fromkeys(["run_audit"], "audit"), **dict.fromkeys(["AuditSpec"], "spec"),
    **dict.fromkeys(["AuditResult", "Verdict"], "result"), **dict.fromkeys(["SynthFacesCNN"], "models"),
    **dict.fromkeys(["KernelSize", "Dilation", "Stride", "Select", "KernelIntervention", "conv_layers", "each"],
                    "intervention"),
    **dict.fromkeys(["Perturbation", "LowPass", "HighPass", "BandPass", "GaussianBlur", "GaussianNoise", "JPEG",
                     "Downsample", "Compose"], "perturbations"),
    **dict.fromkeys(["SubgroupDataset", "synthfaces", "load_fairface", "load_utkface", "load_celeba",
                     "load_csv_manifest", "from_tensors", "from_torch_dataset", "stratified_split"], "data"),
    **dict.fromkeys(["TrainConfig"], "training"), **dict.fromkeys(["VariantCache"], "execution"),
    **dict.fromkeys(["KernelBiasError", "KernelAuditWarning", "AuditFailure", "AuditConfigError",
                     "ModelsDidNotLearnError"], "errors"),
}

# Names the package root exported before its API was trimmed: still served, with a warning naming their home,
# for one release.
_MOVED = {
    **dict.fromkeys(["Effect", "Estimand", "Outcome", "Outcomes", "SequentialDesign", "benjamini_hochberg",
                     "estimate_effects", "holm", "minimum_detectable_effect", "paired_effect", "power",
                     "run_sequential", "seeds_needed"], "pytest_kernelbias.stats"),
    **dict.fromkeys(["BaselineWarning", "CacheWarning", "CacheWriteError", "DatasetFormatError", "DatasetWarning",
                     "EmptySubgroupError", "InputDataError", "InputDataWarning", "InterventionError",
                     "MissingAttributeError", "ModelOutputError", "NonFiniteLossError", "PerturbationError",
                     "PerturbationSettingError", "ReportWarning", "ResourceWaitWarning", "UnknownLayerError",
                     "WorkerDiedError"], "pytest_kernelbias.errors"),
    **dict.fromkeys(["DataSpec", "ExecutionSpec", "InferenceSpec", "MechanismSpec", "RecipeSpec", "TargetSpec"],
                    "pytest_kernelbias.spec"),
    **dict.fromkeys(["execute", "default_data"], "pytest_kernelbias.audit"),
    **dict.fromkeys(["Intervention", "describe_intervention", "find_stem", "intervene"],
                    "pytest_kernelbias.intervention"),
    **dict.fromkeys(["GaussianLowPass", "Identity"], "pytest_kernelbias.perturbations"),
    **dict.fromkeys(["NULL", "PLANTED", "SynthFacesConfig", "balance"], "pytest_kernelbias.data"),
    "SubgroupLoaders": "pytest_kernelbias.evaluation",
    "MemoryStore": "pytest_kernelbias.execution",
    "train": "pytest_kernelbias.training",
}


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(_importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
        globals()[name] = value  # found directly from now on
        return value
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module 'pytest_kernelbias' has no attribute {name!r}")
    _warnings.warn(f"pytest_kernelbias.{name} moved to {home}.{name}; import it from there (the root alias goes "
                   "in the next release)", DeprecationWarning, stacklevel=2)
    return getattr(_importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
