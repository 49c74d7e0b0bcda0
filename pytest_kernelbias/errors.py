"""Every error and warning class of the package. Each message says what to change."""


class KernelBiasError(Exception):
    """Base class of every error this package raises on purpose."""


class KernelAuditWarning(UserWarning):
    """Base class of every warning of this package (so `-W error::pytest_kernelbias.KernelAuditWarning` turns
    them all into errors); raised itself when an audit passed but could not rule out an effect above its
    threshold, or gave no clear verdict."""


class UnknownLayerError(KernelBiasError, LookupError):
    """The named layer is not a convolution of the model."""


class InterventionError(KernelBiasError, ValueError):
    """The intervention cannot be applied as asked (bad kernel size, shape change)."""


class MissingAttributeError(KernelBiasError, KeyError):
    """The dataset has no subgroup attribute of that name."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class EmptySubgroupError(KernelBiasError, ValueError):
    """A subgroup has no test images, so its metric is undefined."""


class NonFiniteLossError(KernelBiasError, FloatingPointError):
    """Training produced a NaN or infinite loss."""


class AuditConfigError(KernelBiasError, ValueError):
    """An audit setting is out of range (seeds, threshold, rule, cutoff)."""


class ModelsDidNotLearnError(KernelBiasError, RuntimeError):
    """The audited models are at chance on the clean test set, so their gaps are noise: no verdict."""


class WorkerDiedError(KernelBiasError, RuntimeError):
    """A training process ended abruptly (killed, out of memory); finished variants stay cached."""


class MixedEnvironmentError(KernelBiasError, RuntimeError):
    """An audit's variants were trained on nodes whose numeric environments differ: their numbers do not compare."""


class ClusterWaitError(KernelBiasError, TimeoutError):
    """The Ray cluster could not start an audit's tasks within its wait_timeout."""


class ResourceWaitWarning(KernelAuditWarning):
    """Training tasks have waited long for free cluster resources; says what is free and what a task asks."""


class InterventionWarning(KernelAuditWarning):
    """An intervention was applied, but part of it may not behave as intended (e.g. a transferred kernel)."""


class BaselineWarning(KernelAuditWarning):
    """A baseline could not be used, or was made under other versions."""


class DatasetWarning(KernelAuditWarning):
    """Files were skipped or a subgroup is small; the data still loaded."""


class DatasetFormatError(KernelBiasError, ValueError):
    """A label file, column, value or file name is not in the dataset's documented format."""


class MissingLabelFileError(DatasetFormatError, FileNotFoundError):
    """The dataset's label / manifest file is not where the loader expects it."""


class CorruptImageError(DatasetFormatError):
    """`strict=True` and some files were unreadable or badly named; lists every one."""


class SmallSubgroupError(EmptySubgroupError):
    """A subgroup has fewer images than `min_group_size`."""


class CacheWriteError(KernelBiasError, OSError):
    """The cache could not write an entry (disk full, quota, permissions); entries already written are kept."""


class DatasetSaveError(KernelBiasError, OSError):
    """A dataset save could not be written (full disk, no permission); the folder is left as it was."""


class CacheWarning(KernelAuditWarning):
    """A cache entry was unusable (and is being retrained) or the cache folder fell back."""


class TrainerKeyWarning(CacheWarning):
    """A custom trainer reaches values with no stable fingerprint: its models are not reused by later runs
    unless `cache_key=` names its version."""


class AuditFailure(AssertionError):
    """An audit that failed its rule; `.verdict` is what was reached: the audit's `Verdict`, or the verdict
    word ("fail") for one effect's or the spectral shift's assertion."""

    def __init__(self, message: str, verdict: object):
        super().__init__(message)
        self.verdict = verdict


class InputDataError(KernelBiasError, ValueError):
    """Images, labels or subgroups cannot be audited as given (dtype, range, size, non-finite)."""


class ModelOutputError(KernelBiasError, TypeError):
    """The model factory or the model's forward pass does not give what an audit needs."""


class PerturbationError(KernelBiasError, ValueError):
    """A perturbation cannot be applied at this setting to images of this size."""


class PerturbationSettingError(PerturbationError, AuditConfigError):
    """A perturbation built with a setting out of range; also an AuditConfigError, so either `except` works."""


class ReportWarning(KernelAuditWarning):
    """A report or baseline was not written, or was written marked incomplete."""


class InputDataWarning(KernelAuditWarning):
    """The data can be audited, but something about it weakens the result (small subgroup, unseen label)."""
