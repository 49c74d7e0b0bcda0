"""pytest-kernelbias: causal audits of how a CNN's kernel size changes subgroup bias."""

__version__ = "0.1.0"  # first: the cache key reads it while the package is still importing

from .analysis._decision import run_sequential
from .analysis._effects import Effect, paired_effect
from .analysis._estimand import Estimand
from .analysis._multiplicity import benjamini_hochberg, holm
from .analysis._outcomes import Outcome, Outcomes, estimate_effects
from .analysis._power import minimum_detectable_effect, power, seeds_needed
from .analysis._sequential import SequentialDesign
from .audit import default_data, execute, run_audit
from .data._faces import (
    load_celeba,
    load_csv_manifest,
    load_fairface,
    load_utkface,
)
from .data._in_memory import from_tensors, from_torch_dataset
from .data._splits import balance, stratified_split
from .data._subgroups import SubgroupDataset
from .data._synthfaces import NULL, PLANTED, SynthFacesConfig, synthfaces
from .errors import (
    AuditConfigError,
    AuditFailure,
    BaselineWarning,
    CacheWarning,
    CacheWriteError,
    DatasetFormatError,
    DatasetWarning,
    EmptySubgroupError,
    InputDataError,
    InputDataWarning,
    InterventionError,
    KernelAuditWarning,
    KernelBiasError,
    MissingAttributeError,
    ModelOutputError,
    ModelsDidNotLearnError,
    NonFiniteLossError,
    PerturbationError,
    PerturbationSettingError,
    ReportWarning,
    ResourceWaitWarning,
    UnknownLayerError,
    WorkerDiedError,
)
from .evaluation._loaders import SubgroupLoaders
from .execution._store import MemoryStore, VariantCache
from .intervention import (
    Dilation,
    Intervention,
    KernelIntervention,
    KernelSize,
    Select,
    Stride,
    conv_layers,
    describe_intervention,
    find_stem,
    intervene,
)
from .models import SynthFacesCNN
from .perturbations import (
    JPEG,
    BandPass,
    Compose,
    Downsample,
    GaussianBlur,
    GaussianLowPass,
    GaussianNoise,
    HighPass,
    Identity,
    LowPass,
    Perturbation,
)
from .result import AuditResult, Verdict
from .spec import (
    AuditSpec,
    DataSpec,
    ExecutionSpec,
    InferenceSpec,
    MechanismSpec,
    RecipeSpec,
    TargetSpec,
)
from .training._trainer import TrainConfig, train

__all__ = [
    # the audit: spec -> run -> result
    "AuditResult", "AuditSpec", "DataSpec", "Estimand", "ExecutionSpec", "InferenceSpec", "MechanismSpec",
    "RecipeSpec", "TargetSpec", "Verdict", "default_data", "execute", "run_audit",
    # interventions
    "Dilation", "Intervention", "KernelIntervention", "KernelSize", "Select", "Stride", "conv_layers",
    "describe_intervention", "find_stem", "intervene",
    # perturbations
    "JPEG", "BandPass", "Compose", "Downsample", "GaussianBlur", "GaussianLowPass", "GaussianNoise", "HighPass",
    "Identity", "LowPass", "Perturbation",
    # data
    "NULL", "PLANTED", "SubgroupDataset", "SubgroupLoaders", "SynthFacesCNN", "SynthFacesConfig", "balance",
    "from_tensors", "from_torch_dataset", "load_celeba", "load_csv_manifest", "load_fairface", "load_utkface",
    "stratified_split", "synthfaces",
    # training and stores
    "MemoryStore", "TrainConfig", "VariantCache", "train",
    # statistics
    "Effect", "Outcome", "Outcomes", "SequentialDesign", "benjamini_hochberg", "estimate_effects", "holm",
    "minimum_detectable_effect",
    "paired_effect", "power", "run_sequential", "seeds_needed",
    # errors and warnings
    "AuditConfigError", "AuditFailure", "BaselineWarning", "CacheWarning", "CacheWriteError", "DatasetFormatError",
    "DatasetWarning",
    "EmptySubgroupError", "InputDataError", "InputDataWarning", "InterventionError", "KernelAuditWarning",
    "KernelBiasError", "MissingAttributeError", "ModelOutputError", "ModelsDidNotLearnError", "NonFiniteLossError",
    "PerturbationError", "PerturbationSettingError", "ReportWarning", "ResourceWaitWarning", "UnknownLayerError",
    "WorkerDiedError",
]
