"""pytest-kernelbias: causal audits of how a CNN's kernel size changes subgroup bias."""

__version__ = "0.1.0"  # first: the cache key reads it while the package is still importing

from .audit import default_data, run_audit
from .execution._store import VariantCache
from .result import AuditResult
from .data._faces import (
    DatasetFormatError,
    balance,
    from_tensors,
    from_torch_dataset,
    load_celeba,
    load_csv_manifest,
    load_fairface,
    load_utkface,
    stratified_split,
)
from .data._loaders import SubgroupLoaders
from .data._subgroups import SubgroupDataset
from .data._synthfaces import NULL, PLANTED, SynthFacesConfig, synthfaces
from .analysis._effects import Effect, KernelAuditWarning, paired_effect
from .analysis._power import minimum_detectable_effect, power, seeds_needed
from .analysis._multiplicity import benjamini_hochberg, holm
from .errors import (
    AuditConfigError,
    EmptySubgroupError,
    InterventionError,
    KernelBiasError,
    MissingAttributeError,
    NonFiniteLossError,
    UnknownLayerError,
    WorkerDiedError,
)
from .intervention._intervene import (
    Dilation,
    Intervention,
    KernelIntervention,
    KernelSize,
    Stride,
    describe_intervention,
    intervene,
)
from .intervention._select import Select, conv_layers, find_stem
from .models import SynthFacesCNN
from .analysis._outcomes import Outcome, Outcomes, estimate_effects
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
from .training._trainer import TrainConfig, train

__all__ = [
    "AuditConfigError", "AuditResult", "VariantCache", "KernelAuditWarning", "benjamini_hochberg", "holm",
    "minimum_detectable_effect", "power", "seeds_needed", "DatasetFormatError", "balance", "from_tensors", "from_torch_dataset",
    "load_celeba", "load_csv_manifest", "load_fairface", "load_utkface", "stratified_split", "BandPass", "Compose", "Downsample", "GaussianBlur", "GaussianLowPass",
    "GaussianNoise", "HighPass", "JPEG", "Dilation", "Intervention", "KernelSize", "Select", "Stride",
    "describe_intervention", "find_stem", "Effect", "EmptySubgroupError", "Identity", "InterventionError",
    "KernelBiasError", "KernelIntervention", "LowPass", "MissingAttributeError", "NULL", "NonFiniteLossError",
    "Outcome", "Outcomes", "PLANTED", "Perturbation", "SubgroupDataset", "SubgroupLoaders", "SynthFacesCNN", "SynthFacesConfig",
    "TrainConfig", "UnknownLayerError", "WorkerDiedError", "conv_layers", "default_data", "estimate_effects", "intervene",
    "paired_effect", "run_audit", "synthfaces", "train",
]
